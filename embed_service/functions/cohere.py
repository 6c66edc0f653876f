"""cohere: Cohere's embed API (v2), or any server speaking it through `base_url`.

Settings as in LanceDB (`name`, `source_input_type`, `query_input_type`): rows are embedded as
`search_document`, queries as `search_query` unless said otherwise. The key: `api_key: '$var:name'`, else the
service's own COHERE_API_KEY (see `http_api`). One request carries at most 96 texts (Cohere's limit).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import numpy as np
import pydantic

from embed_service.functions.base import Modality, Purpose
from embed_service.functions.http_api import KeyedApiFunction, batches
from embed_service.functions.registry import register

InputType = Literal["search_document", "search_query", "classification", "clustering", "semantic_similarity"]
KNOWN_DIMENSIONS = {
    "embed-english-v3.0": 1024, "embed-multilingual-v3.0": 1024, "embed-english-light-v3.0": 384,
    "embed-multilingual-light-v3.0": 384, "embed-english-v2.0": 4096, "embed-english-light-v2.0": 1024,
    "embed-multilingual-v2.0": 768, "embed-v4.0": 1536,
}
MAX_TEXTS = 96


@register("cohere")
class CohereEmbeddings(KeyedApiFunction):
    description = "Cohere embed API (v2), or a server speaking it through base_url"
    modalities = frozenset({Modality.TEXT})
    default_url: ClassVar[str] = "https://api.cohere.com"
    key_variable: ClassVar[str] = "COHERE_API_KEY"

    name: str = pydantic.Field("embed-multilingual-v2.0", max_length=256, description="the model")
    source_input_type: InputType = pydantic.Field("search_document", description="input type of rows")
    query_input_type: InputType = pydantic.Field("search_query", description="input type of queries")
    batch_size: int = pydantic.Field(MAX_TEXTS, ge=1, le=MAX_TEXTS, description="texts per API request")

    def ndims(self) -> int:
        return KNOWN_DIMENSIONS.get(self.name) or self.probe_ndims()

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        input_type = self.query_input_type if purpose is Purpose.QUERY else self.source_input_type
        parts = []
        for chunk in batches(texts, self.batch_size):
            answer = self.post(f"{self.api_root}/v2/embed", {"model": self.name, "texts": list(chunk),
                                                         "input_type": input_type, "embedding_types": ["float"]},
                               headers=self.bearer(), inputs=len(chunk))
            parts.append(self.vectors(_floats(answer), len(chunk)))
        return np.concatenate(parts)


def _floats(answer: object) -> object:
    """v2's `{"embeddings": {"float": [...]}}`, or v1's `{"embeddings": [...]}` from servers that answer it."""
    embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
    return embeddings.get("float") if isinstance(embeddings, dict) else embeddings
