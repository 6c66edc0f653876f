"""Hybrid search: a vector search and a full-text search of the same version, fused into one list ranked by
`_relevance_score`, as LanceDB's hybrid query and its model-free rerankers rank them.

Each half returns `limit + offset` rows with their `_rowid`. Before fusion each list's `_distance` / `_score`
is normalized to 0..1 (min-max; with `normalize="rank"` the values are replaced by their ranks first, as
LanceDB does, the full-text scores ranked ascending too); a row both lists hold is kept once, with the vector
list's copy first. Then:
- RRF: the sum over the lists a row is in of 1 / (k + its rank there);
- LINEAR: weight x (1 - normalized distance) + (1 - weight) x normalized score, a missing distance counting
  as `fill` and a missing score as 1 - fill;
- MRR: weight_vector / vector rank + weight_fts / full-text rank (0 where absent).
Sorted by `_relevance_score` descending (stable: ties keep the merged order), then `offset` / `limit` applied.
The `_distance` and `_score` returned (with `return_all_scores`) are the original values, not the normalized.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.search.full_text import SCORE
from store_service.search.vector_search import DISTANCE
from store_service.storage.fragments import ROW_ID

RELEVANCE = "_relevance_score"
METHODS = ("rrf", "linear", "mrr")
MAX_K = 10_000.0


@dataclass(frozen=True)
class Fusion:
    method: str = "rrf"
    k: float = 60.0
    weight: float = 0.7
    fill: float = 1.0
    weight_vector: float = 0.5
    weight_fts: float = 0.5
    normalize: str = "score"  # or "rank"
    return_all_scores: bool = False

    def check(self) -> "Fusion":
        def refuse(message: str, field: str) -> InvalidArgument:
            return InvalidArgument(message, reason="INVALID_FUSION", field=field)

        if self.method not in METHODS:
            raise refuse(f"fusion method must be one of {', '.join(METHODS)}", "method")
        if not (math.isfinite(self.k) and 0 < self.k <= MAX_K):
            raise refuse(f"k must be above 0 and at most {MAX_K:g}; got {self.k}", "k")
        for name in ("weight", "fill", "weight_vector", "weight_fts"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise refuse(f"{name} must be from 0 to 1; got {value}", name)
        if abs(self.weight_vector + self.weight_fts - 1.0) > 1e-6:
            raise refuse("weight_vector + weight_fts must equal 1", "weight_vector")
        if self.normalize not in ("score", "rank"):
            raise refuse("normalize is score or rank", "normalize")
        return self


def _ranked(values: np.ndarray) -> np.ndarray:
    """Each value's rank (1 for the smallest), as LanceDB ranks both lists."""
    order = np.argsort(values, kind="quicksort")
    ranks = np.empty(len(values), dtype=np.float32)
    ranks[order] = np.arange(1, len(values) + 1, dtype=np.float32)
    return ranks


def _normalized(values: np.ndarray) -> np.ndarray:
    """Min-max to 0..1; all equal: shifted to 0 (unless all 0)."""
    if len(values) == 0:
        return values
    low, high = float(values.min()), float(values.max())
    if high - low != 0.0:
        return (values - low) / (high - low)
    if high != 0.0:
        return values - low
    return values


def fuse(vector_rows: pa.Table, text_rows: pa.Table, fusion: Fusion, *, limit: int, offset: int,
         keep_row_id: bool) -> pa.Table:
    """The two lists (each with `_rowid`; `_distance` in the first, `_score` in the second) as one."""
    distances = vector_rows.column(DISTANCE).to_numpy(zero_copy_only=False).astype(np.float32)
    scores = text_rows.column(SCORE).to_numpy(zero_copy_only=False).astype(np.float32)
    if fusion.normalize == "rank":
        distances_n, scores_n = _normalized(_ranked(distances)), _normalized(_ranked(scores))
    else:
        distances_n, scores_n = _normalized(distances), _normalized(scores)
    vector_ids = vector_rows.column(ROW_ID).to_numpy(zero_copy_only=False).astype(np.int64)
    text_ids = text_rows.column(ROW_ID).to_numpy(zero_copy_only=False).astype(np.int64)

    # the merged rows: the vector list's, then the full-text rows it lacks, each row once
    in_vector = np.isin(text_ids, vector_ids)
    _, first = np.unique(vector_ids, return_index=True)  # a list never holds a row twice; kept safe anyway
    vector_keep = np.zeros(len(vector_ids), dtype=bool)
    vector_keep[first] = True
    text_only = ~in_vector
    _, first_text = np.unique(text_ids, return_index=True)
    text_keep = np.zeros(len(text_ids), dtype=bool)
    text_keep[first_text] = True
    text_only &= text_keep
    merged_ids = np.concatenate([vector_ids[vector_keep], text_ids[text_only]])

    vector_rank = {int(i): r for r, i in enumerate(vector_ids.tolist(), 1)}
    text_rank = {int(i): r for r, i in enumerate(text_ids.tolist(), 1)}
    vector_norm = {int(i): float(d) for i, d in zip(vector_ids.tolist(), distances_n.tolist())}
    text_norm = {int(i): float(s) for i, s in zip(text_ids.tolist(), scores_n.tolist())}
    relevance = np.array([_relevance(int(i), fusion, vector_rank, text_rank, vector_norm, text_norm,
                                     len(vector_ids), len(text_ids)) for i in merged_ids.tolist()],
                         dtype=np.float32)

    columns = [n for n in vector_rows.column_names if n not in (DISTANCE, ROW_ID)]
    first_part = vector_rows.filter(pa.array(vector_keep)).select([*columns, ROW_ID])
    second_part = text_rows.filter(pa.array(text_only)).select([*columns, ROW_ID]).cast(first_part.schema)
    merged = pa.concat_tables([first_part, second_part])
    order = np.argsort(-relevance, kind="stable")[offset:offset + limit]
    merged = merged.take(pa.array(order))
    chosen = merged_ids[order]
    out = merged.select(columns)
    if fusion.return_all_scores:
        out = out.append_column(pa.field(DISTANCE, pa.float32()), _original(chosen, vector_ids, distances))
        out = out.append_column(pa.field(SCORE, pa.float32()), _original(chosen, text_ids, scores))
    out = out.append_column(pa.field(RELEVANCE, pa.float32()), pa.array(relevance[order], type=pa.float32()))
    if keep_row_id:
        out = out.append_column(pa.field(ROW_ID, pa.int64()), pa.array(chosen, type=pa.int64()))
    return out


def _relevance(row: int, fusion: Fusion, vector_rank: dict[int, int], text_rank: dict[int, int],
               vector_norm: dict[int, float], text_norm: dict[int, float], vectors: int, texts: int) -> float:
    if fusion.method == "rrf":
        return sum(1.0 / (rank + fusion.k) for rank in (vector_rank.get(row), text_rank.get(row))
                   if rank is not None)
    if fusion.method == "mrr":
        found_v, found_t = vector_rank.get(row), text_rank.get(row)
        return (fusion.weight_vector * (1.0 / found_v if found_v else 0.0)
                + fusion.weight_fts * (1.0 / found_t if found_t else 0.0))
    if texts == 0:  # LanceDB's linear combination of one list alone: that list's own normalized value
        return 1.0 - vector_norm[row]
    if vectors == 0:
        return text_norm[row]
    distance = vector_norm.get(row, fusion.fill)
    score = text_norm.get(row, 1.0 - fusion.fill)
    return fusion.weight * (1.0 - distance) + (1.0 - fusion.weight) * score


def _original(chosen: np.ndarray, ids: np.ndarray, values: np.ndarray) -> pa.Array:
    """Each chosen row's value in one list (null when the list lacks it)."""
    where = {int(i): p for p, i in enumerate(ids.tolist())}
    found = [where.get(int(i)) for i in chosen.tolist()]
    return pa.array([None if p is None else float(values[p]) for p in found], type=pa.float32())


def merge(vector_rows: pa.Table, text_rows: pa.Table) -> pa.Table:
    """Both lists as one, each row once (the vector list's copy first), with its `_distance` and `_score`
    (null where its list lacks it) and `_rowid`: what a model reranks in a hybrid search."""
    vector_ids = vector_rows.column(ROW_ID).to_numpy(zero_copy_only=False).astype(np.int64)
    text_ids = text_rows.column(ROW_ID).to_numpy(zero_copy_only=False).astype(np.int64)
    _, first = np.unique(text_ids, return_index=True)
    text_only = np.zeros(len(text_ids), dtype=bool)
    text_only[first] = True
    text_only &= ~np.isin(text_ids, vector_ids)
    columns = [n for n in vector_rows.column_names if n not in (DISTANCE, ROW_ID)]
    head = vector_rows.select(columns)
    tail = text_rows.filter(pa.array(text_only)).select(columns).cast(head.schema)
    merged = pa.concat_tables([head, tail])
    ids = np.concatenate([vector_ids, text_ids[text_only]])
    distances = vector_rows.column(DISTANCE).to_numpy(zero_copy_only=False).astype(np.float32)
    scores = text_rows.column(SCORE).to_numpy(zero_copy_only=False).astype(np.float32)
    merged = merged.append_column(pa.field(DISTANCE, pa.float32()), _original(ids, vector_ids, distances))
    merged = merged.append_column(pa.field(SCORE, pa.float32()), _original(ids, text_ids, scores))
    return merged.append_column(pa.field(ROW_ID, pa.int64()), pa.array(ids, type=pa.int64()))
