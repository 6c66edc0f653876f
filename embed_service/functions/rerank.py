"""Rerank functions: a model that scores (query, document) pairs, hosted like an embedding function.

A rerank function is a registry function with settings (validated, secrets as references), loaded once per
model and held within the service's model bounds, with the same retry of transient failures; what it does
is `rerank(query, documents)`: one relevance score per document, higher is more relevant. It embeds
nothing (no modalities), so `Embed` refuses it, and `Rerank` refuses embedding functions.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from embed_service.errors import UpstreamUnavailable
from embed_service.functions.base import EmbeddingFunction, Modality


class RerankFunction(EmbeddingFunction):
    """Base of every rerank function: subclasses implement `score_pairs`."""

    modalities: ClassVar[frozenset[Modality]] = frozenset()
    is_reranker: ClassVar[bool] = True

    def ndims(self) -> int:
        return 0  # it gives scores, not vectors

    def rerank(self, query: str, documents: list[str]) -> np.ndarray:
        """One float32 score per document, transient failures retried."""
        if not documents:
            return np.empty(0, dtype=np.float32)
        scores = np.asarray(self._with_retry(self.score_pairs, query, documents), dtype=np.float32).reshape(-1)
        if scores.shape != (len(documents),) or not np.isfinite(scores).all():
            raise UpstreamUnavailable(f"{self.registry_name}: gave {scores.shape[0]} scores (or non-finite ones) "
                                      f"for {len(documents)} documents", reason="UPSTREAM_BAD_RESPONSE",
                                      function=self.registry_name)
        return scores

    def score_pairs(self, query: str, documents: list[str]) -> np.ndarray:
        raise NotImplementedError
