"""Hosted providers' rerank APIs as rerank functions (LanceDB's CohereReranker, JinaReranker and
VoyageAIReranker): one request scores up to a provider's limit of documents against the query, on the shared
HTTP client (`http_api`: the endpoint allow-list, the key as a `$var:` reference or the service's own, retries,
bounded answers). An answer must give one finite score per document, by index, else UPSTREAM_BAD_RESPONSE.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pydantic

from embed_service.functions.http_api import BadAnswer, KeyedApiFunction, batches
from embed_service.functions.registry import register
from embed_service.functions.rerank import RerankFunction

ANSWER_BYTES_PER_DOCUMENT = 512  # an index and a score, with a provider's padding (and maybe the text echoed)


class ApiRerank(RerankFunction, KeyedApiFunction):
    """A provider's rerank endpoint: `route` under the API root, results under `results_key`."""

    route: ClassVar[str] = ""
    results_key: ClassVar[str] = "results"
    max_documents: ClassVar[int] = 1000

    def answer_limit(self, inputs: int | None) -> int:
        return (1 << 20) + (inputs or 0) * ANSWER_BYTES_PER_DOCUMENT

    def body(self, query: str, documents: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def score_pairs(self, query: str, documents: list[str]) -> np.ndarray:
        scores = []
        for chunk in batches(documents, self.max_documents):
            answer = self.post(f"{self.api_root}{self.route}", self.body(query, list(chunk)), headers=self.bearer(),
                               inputs=len(chunk))
            scores.append(_scores(answer, self.results_key, len(chunk)))
        return np.concatenate(scores)


def _scores(answer: Any, key: str, expected: int) -> np.ndarray:
    """The answer's `relevance_score`s in document order (the API orders its results by score)."""
    results = answer.get(key) if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != expected:
        raise BadAnswer(f"not {expected} results under {key!r}")
    scores = np.full(expected, np.nan, dtype=np.float32)
    for item in results:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if not isinstance(index, int) or not 0 <= index < expected or not np.isnan(scores[index]) or \
                not isinstance(score, (int, float)) or isinstance(score, bool):
            raise BadAnswer("the results are not one score per document, by index")
        scores[index] = float(score)
    if not np.isfinite(scores).all():
        raise BadAnswer("the scores hold NaN or infinite numbers")
    return scores


@register("cohere-rerank")
class CohereRerank(ApiRerank):
    description = "Cohere's rerank API (v2), or a server speaking it through base_url (LanceDB's CohereReranker)"
    default_url: ClassVar[str] = "https://api.cohere.com"
    key_variable: ClassVar[str] = "COHERE_API_KEY"
    route: ClassVar[str] = "/v2/rerank"

    name: str = pydantic.Field("rerank-english-v2.0", max_length=256, description="the model")

    def body(self, query: str, documents: list[str]) -> dict[str, Any]:
        return {"model": self.name, "query": query, "documents": documents, "top_n": len(documents)}


@register("jina-rerank")
class JinaRerank(ApiRerank):
    description = "Jina's rerank API, or a server speaking it through base_url (LanceDB's JinaReranker)"
    default_url: ClassVar[str] = "https://api.jina.ai"
    key_variable: ClassVar[str] = "JINA_API_KEY"
    route: ClassVar[str] = "/v1/rerank"

    name: str = pydantic.Field("jina-reranker-v2-base-multilingual", max_length=256, description="the model")

    def body(self, query: str, documents: list[str]) -> dict[str, Any]:
        return {"model": self.name, "query": query, "documents": documents, "top_n": len(documents)}


@register("voyageai-rerank")
class VoyageRerank(ApiRerank):
    description = "Voyage AI's rerank API, or a server speaking it through base_url (LanceDB's VoyageAIReranker)"
    default_url: ClassVar[str] = "https://api.voyageai.com"
    key_variable: ClassVar[str] = "VOYAGE_API_KEY"
    route: ClassVar[str] = "/v1/rerank"
    results_key: ClassVar[str] = "data"

    name: str = pydantic.Field("rerank-2", max_length=256, description="the model")
    truncation: bool = pydantic.Field(True, description="let the API cut texts past the model's window")

    def body(self, query: str, documents: list[str]) -> dict[str, Any]:
        return {"model": self.name, "query": query, "documents": documents, "top_k": len(documents),
                "truncation": self.truncation}
