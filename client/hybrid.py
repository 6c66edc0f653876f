"""A hybrid search fused in the client, for a reranker of the user's own (`Reranker` subclasses): the two
result lists normalized as LanceDB normalizes them, handed to `reranker.rerank_hybrid`, their original
`_distance` / `_score` put back, then `offset` and `limit`. The rerankers vectorlane ships fuse in the store
instead (one call; `vectorlane.rerankers.fusion`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from vectorlane.rerankers.base import DISTANCE, RELEVANCE, ROW_ID, SCORE

if TYPE_CHECKING:
    from vectorlane.rerankers.base import Reranker


def ranks(table: pa.Table, column: str, ascending: bool = True) -> pa.Table:
    """`column` replaced by each value's rank, 1 for the smallest (the largest when not `ascending`)."""
    if len(table) == 0:
        return table
    values = table.column(column).to_numpy(zero_copy_only=False)
    order = np.argsort(values)
    if not ascending:
        order = order[::-1]
    ranks = np.empty_like(order)
    ranks[order] = np.arange(len(values)) + 1
    return table.set_column(table.column_names.index(column), column, pa.array(ranks, type=pa.float32()))


def normalized(values: pa.ChunkedArray | pa.Array, invert: bool = False) -> pa.ChunkedArray | pa.Array:
    """Min-max to 0..1 (all equal: shifted to 0, unless all 0); `invert`: 1 minus that."""
    if len(values) == 0:
        return values
    low, high = pc.min_max(values).values()
    spread = pc.subtract(high, low)
    if not pc.equal(spread, pa.scalar(0.0)).as_py():
        values = pc.divide(pc.subtract(values, low), spread)
    elif not pc.equal(high, pa.scalar(0.0)).as_py():
        values = pc.subtract(values, low)
    return pc.subtract(1, values) if invert else values


def _with_normalized(table: pa.Table, column: str) -> pa.Table:
    if len(table) == 0:
        return table
    at = table.column_names.index(column)
    return table.set_column(at, table.field(at), normalized(table.column(at)))


def _restored(results: pa.Table, column: str, original: pa.Table) -> pa.Table:
    if column not in results.column_names or len(original) == 0:
        return results
    where = pc.index_in(results[ROW_ID], original[ROW_ID], skip_nulls=True)
    return results.set_column(results.column_names.index(column), column, pc.take(original[column], where))


def combine(vector_results: pa.Table, fts_results: pa.Table, *, normalize: str, query: object,
            reranker: "Reranker", limit: int, offset: int, keep_row_id: bool) -> pa.Table:
    """The two lists (each with `_rowid`) fused by `reranker`, as LanceDB's hybrid query fuses them."""
    originals = vector_results, fts_results
    if normalize == "rank":
        vector_results, fts_results = ranks(vector_results, DISTANCE), ranks(fts_results, SCORE)
    if len(vector_results) == 0 and len(fts_results) == 0:
        schema = pa.unify_schemas([vector_results.schema, fts_results.schema])
        empty = schema.empty_table().append_column(RELEVANCE, pa.array([], type=pa.float32()))
        return empty if keep_row_id else empty.drop_columns([ROW_ID])
    vector_results = _with_normalized(vector_results, DISTANCE)
    fts_results = _with_normalized(fts_results, SCORE)
    results = reranker.rerank_hybrid(query, vector_results, fts_results)  # type: ignore[arg-type]
    if not isinstance(results, pa.Table) or RELEVANCE not in results.column_names:
        raise ValueError("a reranker must return an Arrow table with a _relevance_score column")
    results = _restored(results, DISTANCE, originals[0])
    results = _restored(results, SCORE, originals[1])
    results = results.slice(offset, limit)
    if not keep_row_id and ROW_ID in results.column_names:
        results = results.drop_columns([ROW_ID])
    return results


__all__ = ["combine", "normalized", "ranks"]
