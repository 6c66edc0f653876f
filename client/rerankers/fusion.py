"""LanceDB's rerankers that need no model: reciprocal rank fusion (the hybrid search's default), a linear
combination of the normalized scores, and mean reciprocal rank.

In a hybrid search (`table.search("q", query_type="hybrid").rerank(RRFReranker())`) they run in the store,
which fuses the two result lists in one call (`Fusion` in the contract; what grpcurl and the TypeScript client
send too). Their methods here (`rerank_hybrid`, `rerank_multivector`, `merge_results`) do the same on result
tables in the client, for code that calls them directly; a subclass that overrides `rerank_hybrid` runs in the
client, as any reranker of your own does.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pyarrow as pa

from vectorlane.rerankers.base import DISTANCE, RELEVANCE, ROW_ID, SCORE, Reranker, _require_row_ids, _tables
from vectorlane_contract.store.v1 import store_service_pb2 as pb


class FusionReranker(Reranker):
    """A reranker the store can run in a hybrid search (unless a subclass changed how it reranks)."""

    _method = pb.FUSION_METHOD_UNSPECIFIED

    def fusion(self, normalize: str) -> pb.Fusion | None:
        """The contract's Fusion for this reranker; None when a subclass reranks its own way (in the client)."""
        if type(self).rerank_hybrid is not _BUILT_IN[type(self)._method]:
            return None
        fusion = pb.Fusion(method=self._method, return_all_scores=self.score == "all",
                           normalize=pb.NORMALIZATION_RANK if normalize == "rank" else pb.NORMALIZATION_SCORE)
        self._settings(fusion)
        return fusion

    def _settings(self, fusion: pb.Fusion) -> None:
        raise NotImplementedError

    def _by_rank(self, results: list[pa.Table], scores: dict[Any, float]) -> pa.Table:
        combined = self._deduplicate(pa.concat_tables(results, **self._concat_tables_args))
        relevance = [scores[row] for row in combined.column(ROW_ID).to_pylist()]
        combined = combined.append_column(RELEVANCE, pa.array(relevance, type=pa.float32()))
        return self._keep_relevance_score(combined.sort_by([(RELEVANCE, "descending")]))


class RRFReranker(FusionReranker):
    """Reciprocal rank fusion: a row's `_relevance_score` is the sum, over the lists it is in, of
    1 / (K + its rank there)."""

    _method = pb.FUSION_METHOD_RRF

    def __init__(self, K: int = 60, return_score: str = "relevance") -> None:  # noqa: N803 - LanceDB's name
        if K <= 0:
            raise ValueError("K must be greater than 0")
        super().__init__(return_score)
        self.K = K

    def __str__(self) -> str:
        return f"RRFReranker(K={self.K})"

    def _settings(self, fusion: pb.Fusion) -> None:
        fusion.k = float(self.K)

    def _scores(self, lists: list[list[Any]]) -> dict[Any, float]:
        scores: dict[Any, float] = defaultdict(float)
        for ids in lists:
            for rank, row in enumerate(ids, 1):
                scores[row] += 1 / (rank + self.K)
        return scores

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        scores = self._scores([t.column(ROW_ID).to_pylist() for t in (vector_results, fts_results) if t])
        return self._by_rank([vector_results, fts_results], scores)

    def rerank_multivector(self, vector_results: list[Any], query: str | None = None,
                           deduplicate: bool = True) -> pa.Table:
        results = _tables(vector_results)
        _require_row_ids(results)
        return self._by_rank(results, self._scores([t.column(ROW_ID).to_pylist() for t in results]))


class MRRReranker(FusionReranker):
    """Mean reciprocal rank: weight_vector / vector rank + weight_fts / full-text rank (0 where a row is
    absent); over several vector searches, the mean of the reciprocal ranks."""

    _method = pb.FUSION_METHOD_MRR

    def __init__(self, weight_vector: float = 0.5, weight_fts: float = 0.5, return_score: str = "relevance") -> None:
        if not 0.0 <= weight_vector <= 1.0:
            raise ValueError("weight_vector must be between 0.0 and 1.0")
        if not 0.0 <= weight_fts <= 1.0:
            raise ValueError("weight_fts must be between 0.0 and 1.0")
        if abs(weight_vector + weight_fts - 1.0) > 1e-6:
            raise ValueError("weight_vector + weight_fts must equal 1.0")
        super().__init__(return_score)
        self.weight_vector = weight_vector
        self.weight_fts = weight_fts

    def __str__(self) -> str:
        return f"MRRReranker(weight_vector={self.weight_vector}, weight_fts={self.weight_fts})"

    def _settings(self, fusion: pb.Fusion) -> None:
        fusion.weight_vector, fusion.weight_fts = self.weight_vector, self.weight_fts

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        scores: dict[Any, float] = defaultdict(float)
        for weight, table in ((self.weight_vector, vector_results), (self.weight_fts, fts_results)):
            for rank, row in enumerate(table.column(ROW_ID).to_pylist() if table else [], 1):
                scores[row] += weight / rank
        return self._by_rank([vector_results, fts_results], scores)

    def rerank_multivector(self, vector_results: list[Any], query: str | None = None,
                           deduplicate: bool = True) -> pa.Table:
        results = _tables(vector_results)
        _require_row_ids(results)
        scores: dict[Any, float] = defaultdict(float)
        for table in results:
            for rank, row in enumerate(table.column(ROW_ID).to_pylist(), 1):
                scores[row] += 1.0 / rank / len(results)
        return self._by_rank(results, scores)


class LinearCombinationReranker(FusionReranker):
    """weight x (1 - normalized distance) + (1 - weight) x normalized score; a row one list lacks counts
    `fill` as its distance (and 1 - fill as its score)."""

    _method = pb.FUSION_METHOD_LINEAR

    def __init__(self, weight: float = 0.7, fill: float = 1.0, return_score: str = "relevance") -> None:
        if weight < 0 or weight > 1:
            raise ValueError("weight must be between 0 and 1.")
        super().__init__(return_score)
        self.weight = weight
        self.fill = fill

    def __str__(self) -> str:
        return f"LinearCombinationReranker(weight={self.weight}, fill={self.fill})"

    def _settings(self, fusion: pb.Fusion) -> None:
        fusion.weight, fusion.fill = self.weight, self.fill

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        return self.merge_results(vector_results, fts_results, self.fill)

    def merge_results(self, vector_results: pa.Table, fts_results: pa.Table, fill: float = 1.0) -> pa.Table:
        if len(vector_results) == 0 or len(fts_results) == 0:
            alone, kind = (fts_results, SCORE) if len(vector_results) == 0 else (vector_results, DISTANCE)
            values = alone.column(kind).to_pylist()
            relevance = values if kind == SCORE else [1 - v for v in values]
            results = alone.append_column(RELEVANCE, pa.array(relevance, type=pa.float32()))
            if self.score == "all":
                missing = DISTANCE if kind == SCORE else SCORE
                results = results.append_column(missing, pa.array([float("nan")] * len(alone), type=pa.float32()))
            return self._keep_relevance_score(results)
        rows: dict[Any, dict[str, Any]] = {}
        for row in vector_results.to_pylist():
            rows[row[ROW_ID]] = row
        for row in fts_results.to_pylist():
            if row[ROW_ID] in rows:
                rows[row[ROW_ID]][SCORE] = row[SCORE]
            else:
                rows[row[ROW_ID]] = row
        for row in rows.values():
            vector_score = 1 - row.get(DISTANCE, fill)
            text_score = row.get(SCORE, 1 - fill)
            row[RELEVANCE] = self.weight * vector_score + (1 - self.weight) * text_score
        schema = pa.unify_schemas([vector_results.schema, fts_results.schema,
                                   pa.schema([pa.field(RELEVANCE, pa.float32())])])
        table = pa.Table.from_pylist(list(rows.values()), schema=schema).sort_by([(RELEVANCE, "descending")])
        return self._keep_relevance_score(table)


_BUILT_IN = {RRFReranker._method: RRFReranker.rerank_hybrid, MRRReranker._method: MRRReranker.rerank_hybrid,
             LinearCombinationReranker._method: LinearCombinationReranker.rerank_hybrid,
             FusionReranker._method: None}

__all__ = ["FusionReranker", "LinearCombinationReranker", "MRRReranker", "RRFReranker"]
