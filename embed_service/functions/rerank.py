"""Rerank functions: a model that scores (query, document) pairs, hosted like an embedding function.

A rerank function is a registry function with settings (validated, secrets as references), loaded once per
model and held within the service's model bounds, with the same retry of transient failures; what it does
is `rerank(query, documents)`: one relevance score per document, higher is more relevant. It embeds
nothing (no modalities), so `Embed` refuses it, and `Rerank` refuses embedding functions.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pydantic

from embed_service.errors import Cancelled, UpstreamUnavailable
from embed_service.functions.base import EmbeddingFunction, Modality


class RerankFunction(EmbeddingFunction):
    """Base of every rerank function: subclasses implement `score_pairs`."""

    modalities: ClassVar[frozenset[Modality]] = frozenset()

    # One call at a time per loaded model (variants sharing a model share it, `share_model`): a tokenizer used
    # from several threads at once fails ("Already borrowed"), and concurrent forward passes multiply memory.
    _calls: threading.Lock = pydantic.PrivateAttr(default_factory=threading.Lock)

    def ndims(self) -> int:
        return 0  # it gives scores, not vectors

    def rerank(self, query: str, documents: list[str], is_active: Callable[[], bool] = lambda: True) -> np.ndarray:
        """One float32 score per document, transient failures retried."""
        if not documents:
            return np.empty(0, dtype=np.float32)
        with self._calls:
            if not is_active():
                raise Cancelled("the caller went away before its documents were scored", reason="CALLER_GONE")
            scores = np.asarray(self._with_retry(self.score_pairs, query, documents), dtype=np.float32).reshape(-1)
        if scores.shape != (len(documents),) or not np.isfinite(scores).all():
            raise UpstreamUnavailable(f"{self.registry_name}: gave {scores.shape[0]} scores (or non-finite ones) "
                                      f"for {len(documents)} documents", reason="UPSTREAM_BAD_RESPONSE",
                                      function=self.registry_name)
        return scores

    def score_pairs(self, query: str, documents: list[str]) -> np.ndarray:
        raise NotImplementedError
