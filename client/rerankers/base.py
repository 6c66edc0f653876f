"""LanceDB's `Reranker`: what a reranker of search results is, and the helpers its subclasses use.

A reranker takes a search's results (an Arrow table with `_rowid`, and `_distance` and / or `_score`) and
returns them re-ordered with `_relevance_score`, highest first. Subclass it for your own: it runs here, in the
client, as in LanceDB. The ones vectorlane ships either run in the store (the fusion ones, `fusion.py`) or in
the embed service (the model ones).
"""

from __future__ import annotations

from abc import ABC
from typing import Any

import numpy as np
import pyarrow as pa

ROW_ID = "_rowid"
DISTANCE = "_distance"
SCORE = "_score"
RELEVANCE = "_relevance_score"


class Reranker(ABC):  # noqa: B024 - LanceDB's base: a subclass implements the kinds it reranks
    """`return_score`: "relevance" keeps only `_relevance_score`; "all" keeps `_distance` and `_score` too."""

    def __init__(self, return_score: str = "relevance") -> None:
        if return_score not in ("relevance", "all"):
            raise ValueError("score must be either 'relevance' or 'all'")
        self.score = return_score
        self._concat_tables_args = {"promote_options": "default"}

    def __str__(self) -> str:
        return type(self).__name__

    def rerank_vector(self, query: str, vector_results: pa.Table) -> pa.Table:
        """A vector search's results reranked for `query` (the text the search was for)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement rerank_vector")

    def rerank_fts(self, query: str, fts_results: pa.Table) -> pa.Table:
        """A full-text search's results reranked for `query`."""
        raise NotImplementedError(f"{type(self).__name__} does not implement rerank_fts")

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        """A hybrid search's two result lists (scores normalized to 0..1) as one reranked list."""
        raise NotImplementedError(f"{type(self).__name__} does not implement rerank_hybrid")

    def rerank_multivector(self, vector_results: list[Any], query: str | None = None,
                           deduplicate: bool = False) -> pa.Table:
        """Several vector searches' results (tables, or queries to run) as one list, each reranked with
        `rerank_vector` for `query`; `deduplicate` keeps a row once (by `_rowid`)."""
        results = _tables(vector_results)
        combined = pa.concat_tables(results, **self._concat_tables_args)
        reranked = self.rerank_vector(query or "", combined)
        if deduplicate:
            _require_row_ids(results)
            reranked = self._deduplicate(reranked)
        return reranked

    def merge_results(self, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        """Both lists, each row once (the vector list's copy first)."""
        combined = pa.concat_tables([vector_results, fts_results], **self._concat_tables_args)
        return self._deduplicate(combined)

    def _handle_empty_results(self, results: pa.Table) -> pa.Table:
        if len(results) > 0:
            return results
        return results.append_column(RELEVANCE, pa.array([], type=pa.float32()))

    @staticmethod
    def _deduplicate(table: pa.Table) -> pa.Table:
        """Each `_rowid` once, its first occurrence, in order."""
        ids = np.asarray(table.column(ROW_ID).to_numpy(zero_copy_only=False))
        _, first = np.unique(ids, return_index=True)
        keep = np.zeros(len(ids), dtype=bool)
        keep[first] = True
        return table.filter(pa.array(keep))

    def _keep_relevance_score(self, combined_results: pa.Table) -> pa.Table:
        if self.score == "relevance":
            for name in (SCORE, DISTANCE):
                if name in combined_results.column_names:
                    combined_results = combined_results.drop_columns([name])
        return combined_results

    def _merge_and_keep_scores(self, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        """Both lists merged by `_rowid`, each row with its `_distance` and `_score` (null where absent)."""
        if DISTANCE not in fts_results.column_names:
            fts_results = fts_results.append_column(DISTANCE, pa.nulls(len(fts_results), pa.float32()))
        if SCORE not in vector_results.column_names:
            vector_results = vector_results.append_column(SCORE, pa.nulls(len(vector_results), pa.float32()))
        rows = {row[ROW_ID]: row for row in vector_results.to_pylist()}
        for row in fts_results.to_pylist():
            if row[ROW_ID] in rows:
                rows[row[ROW_ID]][SCORE] = row[SCORE]
            else:
                rows[row[ROW_ID]] = row
        return pa.Table.from_pylist(list(rows.values()))


def _tables(results: list[Any]) -> list[pa.Table]:
    """Result tables, running the queries among `results`."""
    if not results:
        raise ValueError("vector_results must not be empty")
    if not all(isinstance(r, type(results[0])) for r in results):
        raise ValueError("All elements in vector_results should be of the same type")
    if isinstance(results[0], pa.Table):
        return list(results)
    if hasattr(results[0], "to_arrow"):
        return [r.to_arrow() for r in results]
    raise ValueError("vector_results should be a list of pa.Table or queries")


def _require_row_ids(results: list[pa.Table]) -> None:
    if not all(ROW_ID in r.column_names for r in results):
        raise ValueError("'_rowid' is required for deduplication: add it to the searches with "
                         "`search().with_row_id(True)`")


__all__ = ["Reranker"]
