"""LanceDB's model rerankers, with the model hosted by the embed service: `table.search("q").rerank(
CrossEncoderReranker())` sends the reranker with the search, and the store has the embed service score each
result's `column` text against the query (`Rerank` in the contract). Nothing is computed in the client, so
their `rerank_*` methods are not for direct calls here."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from google.protobuf import struct_pb2

from vectorlane.rerankers.base import Reranker
from vectorlane_contract.store.v1 import store_service_pb2 as pb


class ModelReranker(Reranker):
    """A reranker whose model the embed service hosts (`function`, with `settings`)."""

    function = ""

    def __init__(self, column: str = "text", return_score: str = "relevance", **settings: Any) -> None:
        super().__init__(return_score)
        self.column = column
        self.settings = {k: v for k, v in settings.items() if v is not None}

    def to_proto(self, query: str | None = None) -> pb.Rerank:
        """The contract's Rerank for this reranker (`query`: the text to score against, when not the
        search's own)."""
        settings = struct_pb2.Struct()
        settings.update(self.settings)
        return pb.Rerank(name=self.function, settings=settings, column=self.column, query=query or "",
                         return_all_scores=self.score == "all")

    def _in_the_store(self) -> NotImplementedError:
        return NotImplementedError(f"{type(self).__name__} reranks in the store: pass it to a query's "
                                   ".rerank(...) (its model runs in the embed service)")

    def rerank_vector(self, query: str, vector_results: pa.Table) -> pa.Table:
        raise self._in_the_store()

    def rerank_fts(self, query: str, fts_results: pa.Table) -> pa.Table:
        raise self._in_the_store()

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        raise self._in_the_store()


class CrossEncoderReranker(ModelReranker):
    """A sentence-transformers cross-encoder scoring (query, text) pairs: the embed service's `cross-encoder`
    function. `model_name` is a model folder under the embed service's model roots, or a hub id."""

    function = "cross-encoder"

    def __init__(self, model_name: str = "cross-encoder/ms-marco-TinyBERT-L-6", column: str = "text",
                 device: str | None = None, return_score: str = "relevance",
                 trust_remote_code: bool | None = None) -> None:
        super().__init__(column, return_score, name=model_name, device=device,
                         trust_remote_code=trust_remote_code or None)
        self.model_name = model_name

    def __str__(self) -> str:
        return f"CrossEncoderReranker(model_name={self.model_name})"


class ColbertReranker(ModelReranker):
    """ColBERT's late interaction (each query token's best match among the text's tokens, summed): the embed
    service's `colbert` function. `model_name` is a ColBERT checkpoint folder under the embed service's model
    roots, or a hub id."""

    function = "colbert"

    def __init__(self, model_name: str = "colbert-ir/colbertv2.0", column: str = "text",
                 return_score: str = "relevance", **kwargs: Any) -> None:
        super().__init__(column, return_score, name=model_name, **kwargs)
        self.model_name = model_name

    def __str__(self) -> str:
        return f"ColbertReranker(model_name={self.model_name})"


class AnswerdotaiRerankers(ModelReranker):
    """LanceDB's reranker over AnswerDotAI's `rerankers` models, with the kinds the embed service hosts:
    `model_type="colbert"` (its `colbert` function) and `"cross-encoder"` (its `cross-encoder`)."""

    HOSTED = {"colbert": "colbert", "cross-encoder": "cross-encoder"}

    def __init__(self, model_type: str = "colbert", model_name: str = "answerdotai/answerai-colbert-small-v1",
                 column: str = "text", return_score: str = "relevance", **kwargs: Any) -> None:
        if model_type not in self.HOSTED:
            raise ValueError(f"model_type {model_type!r} is not hosted by the embed service; hosted: "
                             f"{', '.join(self.HOSTED)}")
        super().__init__(column, return_score, name=model_name, **kwargs)
        self.function = self.HOSTED[model_type]
        self.model_type, self.model_name = model_type, model_name

    def __str__(self) -> str:
        return f"AnswerdotaiRerankers(model_type={self.model_type}, model_name={self.model_name})"


class _ApiReranker(ModelReranker):
    """A provider's rerank API the embed service calls; `api_key` only as a `$var:name` reference (else the
    service's own key for that provider)."""

    def __init__(self, model_name: str, column: str = "text", top_n: int | None = None,
                 return_score: str = "relevance", api_key: str | None = None, **settings: Any) -> None:
        if api_key is not None and not str(api_key).startswith("$var:"):
            raise ValueError("api_key must be a secret reference ('$var:name'): the embed service resolves it, and "
                             "a key never travels in a request")
        super().__init__(column, return_score, name=model_name, api_key=api_key, **settings)
        self.model_name = model_name
        self.top_n = top_n

    def __str__(self) -> str:
        return f"{type(self).__name__}(model_name={self.model_name})"


class CohereReranker(_ApiReranker):
    """Cohere's rerank API through the embed service (`cohere-rerank`)."""

    function = "cohere-rerank"

    def __init__(self, model_name: str = "rerank-english-v2.0", column: str = "text", top_n: int | None = None,
                 return_score: str = "relevance", api_key: str | None = None) -> None:
        super().__init__(model_name, column, top_n, return_score, api_key)


class JinaReranker(_ApiReranker):
    """Jina's rerank API through the embed service (`jina-rerank`)."""

    function = "jina-rerank"

    def __init__(self, model_name: str = "jina-reranker-v2-base-multilingual", column: str = "text",
                 top_n: int | None = None, return_score: str = "relevance", api_key: str | None = None) -> None:
        super().__init__(model_name, column, top_n, return_score, api_key)


class VoyageAIReranker(_ApiReranker):
    """Voyage AI's rerank API through the embed service (`voyageai-rerank`)."""

    function = "voyageai-rerank"

    def __init__(self, model_name: str = "rerank-2", column: str = "text", top_n: int | None = None,
                 return_score: str = "relevance", api_key: str | None = None, truncation: bool | None = True) -> None:
        super().__init__(model_name, column, top_n, return_score, api_key, truncation=truncation)


__all__ = ["AnswerdotaiRerankers", "CohereReranker", "ColbertReranker", "CrossEncoderReranker", "JinaReranker",
           "ModelReranker", "VoyageAIReranker"]
