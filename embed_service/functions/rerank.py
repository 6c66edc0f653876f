"""Rerank functions: a model that scores (query, document) pairs, hosted like an embedding function.

A rerank function is a registry function with settings (validated, secrets as references), loaded once per
model and held within the service's model bounds, with the same retry of transient failures; what it does
is `rerank(query, documents)`: one relevance score per document, higher is more relevant. It embeds
nothing (no modalities), so `Embed` refuses it, and `Rerank` refuses embedding functions.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable
from typing import ClassVar

import numpy as np
import pydantic

from embed_service.errors import Cancelled, UpstreamUnavailable
from embed_service.functions.base import EmbeddingFunction, FunctionRuntime, Modality


class RerankFunction(EmbeddingFunction):
    """Base of every rerank function: subclasses implement `score_pairs`."""

    modalities: ClassVar[frozenset[Modality]] = frozenset()

    # One call at a time per loaded model (variants sharing a model share it, `share_model`): a tokenizer used
    # from several threads at once fails ("Already borrowed"), and concurrent forward passes multiply memory.
    _calls: threading.Lock = pydantic.PrivateAttr(default_factory=threading.Lock)
    # The model's own thread, made when it loads and shared by its variants: every call runs there. Called from
    # whichever of gRPC's worker threads served the request, the same CrossEncoder predict ran at 0.75-0.81x
    # of a process calling it from one thread; from its own thread, at 0.97-1.07x (alternating rounds, measured
    # on these 2-core machines with a MiniLM-shaped model).
    _worker: ThreadPoolExecutor | None = pydantic.PrivateAttr(None)

    def load(self, runtime: FunctionRuntime) -> None:
        super().load(runtime)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"rerank-{self.registry_name}")

    def release(self) -> None:
        if self._worker is not None:
            self._worker.shutdown(wait=False)

    def ndims(self) -> int:
        return 0  # it gives scores, not vectors

    def rerank(self, query: str, documents: list[str], is_active: Callable[[], bool] = lambda: True) -> np.ndarray:
        """One float32 score per document, transient failures retried."""
        if not documents:
            return np.empty(0, dtype=np.float32)
        with self._calls:
            if not is_active():
                raise Cancelled("the caller went away before its documents were scored", reason="CALLER_GONE")
            scores = np.asarray(self._on_model_thread(query, documents), dtype=np.float32).reshape(-1)
        if scores.shape != (len(documents),) or not np.isfinite(scores).all():
            raise UpstreamUnavailable(f"{self.registry_name}: gave {scores.shape[0]} scores (or non-finite ones) "
                                      f"for {len(documents)} documents", reason="UPSTREAM_BAD_RESPONSE",
                                      function=self.registry_name)
        return scores

    def _on_model_thread(self, query: str, documents: list[str]) -> np.ndarray:
        worker = self._worker
        if worker is not None:
            try:
                return worker.submit(self._with_retry, self.score_pairs, query, documents).result()
            except RuntimeError as exc:  # evicted meanwhile (its thread stopped): this call runs here instead
                if "shutdown" not in str(exc):
                    raise
        return np.asarray(self._with_retry(self.score_pairs, query, documents))

    def score_pairs(self, query: str, documents: list[str]) -> np.ndarray:
        raise NotImplementedError
