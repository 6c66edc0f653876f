"""gemini-text: Google's Gemini embeddings API (POST /v1beta/models/{model}:batchEmbedContents).

Settings as in LanceDB: `name` (default gemini-embedding-001), `dim` (output dimensions, 768 unless said),
`query_task_type` and `source_task_type` (retrieval_query / retrieval_document unless said; a document gets
LanceDB's title), and `api_key` (`$var:name`, else the service's own GOOGLE_API_KEY; see `http_api`), sent
in the `x-goog-api-key` header. One request carries at most 100 texts (the API's limit).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pydantic

from embed_service.functions.base import Modality, Purpose
from embed_service.functions.http_api import BadAnswer, KeyedApiFunction, batches
from embed_service.functions.registry import register

TaskType = Literal["retrieval_query", "retrieval_document", "semantic_similarity", "classification",
                   "clustering", "question_answering", "fact_verification", "code_retrieval_query"]
DEFAULT_DIMENSIONS = 768
MAX_TEXTS = 100
DOCUMENT_TITLE = "Embedding of a document"  # what LanceDB gives a retrieval_document as its title
MODEL_NAME = r"^(models/)?[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # it goes into the URL's path


@register("gemini-text")
class GeminiText(KeyedApiFunction):
    description = "Google Gemini text embeddings API"
    modalities = frozenset({Modality.TEXT})
    default_url: ClassVar[str] = "https://generativelanguage.googleapis.com"
    key_variable: ClassVar[str] = "GOOGLE_API_KEY"

    name: str = pydantic.Field("gemini-embedding-001", pattern=MODEL_NAME, description="the model")
    dim: int | None = pydantic.Field(None, ge=1, le=65536, description="output dimensions (768 unless said)")
    query_task_type: TaskType = pydantic.Field("retrieval_query", description="task type of queries")
    source_task_type: TaskType = pydantic.Field("retrieval_document", description="task type of rows")
    batch_size: int = pydantic.Field(MAX_TEXTS, ge=1, le=MAX_TEXTS, description="texts per API request")

    def ndims(self) -> int:
        return self.dim or DEFAULT_DIMENSIONS

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        model = self.name if self.name.startswith("models/") else f"models/{self.name}"
        task = self.query_task_type if purpose is Purpose.QUERY else self.source_task_type
        headers = {"x-goog-api-key": self._key} if self._key else {}
        parts = []
        for chunk in batches(texts, self.batch_size):
            requests: list[dict[str, Any]] = []
            for text in chunk:
                request: dict[str, Any] = {"model": model, "content": {"parts": [{"text": text}]},
                                           "taskType": task.upper(), "outputDimensionality": self.ndims()}
                if task == "retrieval_document":
                    request["title"] = DOCUMENT_TITLE
                requests.append(request)
            answer = self.post(f"{self.api_root}/v1beta/{model}:batchEmbedContents", {"requests": requests},
                               headers=headers, inputs=len(requests))
            embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
            if not isinstance(embeddings, list) or not all(isinstance(e, dict) for e in embeddings):
                raise BadAnswer("no list of embeddings under 'embeddings'")
            parts.append(self.vectors([e.get("values") for e in embeddings], len(chunk)))
        return np.concatenate(parts)
