"""Search of multivector columns (LanceDB's `MultiVector`: each row a list of vectors, as late-interaction
models such as ColBERT give one vector per token): MaxSim.

    distance(Q, row) = Σ_i (1 − max_j cos(q_i, d_j))

each query vector's closest vector in the row, as a cosine distance, summed: 0 when every query vector is one
of the row's, and `m` times a vector's distance for a query of that vector `m` times (LanceDB's test). Cosine
only, as in LanceDB. Each query vector's term is computed on its own and the terms summed in order, so equal
query vectors give exactly equal terms.

With an index over the column (built like any other, one entry per vector, labelled with its row's id),
each query vector's `FANOUT x limit x refine_factor` nearest vectors nominate candidate rows, ranked exactly
by MaxSim; without one, every allowed row is ranked, fragment by fragment, from its held normalized vectors.
"""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.schema import field_at, searchable_dims
from store_service.search.table_view import TableView, multi_matrix
from store_service.indexes.vector_index import VectorIndex
from store_service.search.vector_search import DISTANCE, VectorSearch, check_request

FANOUT = 4  # index hits per wanted row, for each query vector: a row's vectors are often each other's neighbours


def search(view: TableView, query: np.ndarray, request: VectorSearch, index: VectorIndex | None = None,
           still_in_time: Callable[[], object] = lambda: None) -> pa.Table:
    """The rows closest to the query vectors `query` (one vector, or a matrix of them), closest first: the
    selected columns plus `_distance`. `still_in_time` is asked before each fragment or query vector (it
    raises once the call's deadline has passed: a query of many vectors over a large table is long work)."""
    column = check_request(view, request)
    queries = _checked_queries(query, searchable_dims(field_at(view.schema, column)), column)
    if request.metric not in ("", "cosine"):
        raise InvalidArgument(f"column {column!r} holds lists of vectors, compared by cosine (MaxSim); metric "
                              f"{request.metric!r} does not apply", reason="INVALID_METRIC", metric=request.metric)
    if index is not None and index.params.metric != "cosine":
        index = None
    prefilter = bool(request.where.strip()) and not request.postfilter
    allowed = view.valid(column) & (view.mask(request.where) if prefilter else True)
    wanted = request.limit + request.offset
    if index is not None:
        positions, distances = _indexed(view, index, column, queries, wanted, allowed, request, still_in_time)
    else:
        positions, distances = _exact(view, column, queries, allowed, still_in_time)
    keep = np.ones(len(positions), dtype=bool)
    if request.distance_lower is not None:
        keep &= distances >= request.distance_lower
    if request.distance_upper is not None:
        keep &= distances < request.distance_upper
    if request.where.strip() and request.postfilter:
        keep &= view.mask(request.where)[positions]
    positions, distances = positions[keep], distances[keep]
    order = np.lexsort((positions, distances))[request.offset:request.offset + request.limit]
    rows = view.take(positions[order], list(request.select) or view.schema.names)
    return rows.append_column(pa.field(DISTANCE, pa.float32()), pa.array(distances[order].astype(np.float32)))


def _checked_queries(query: np.ndarray, dims: int, column: str) -> np.ndarray:
    queries = np.asarray(query, dtype=np.float32)
    queries = queries.reshape(1, -1) if queries.ndim == 1 else queries
    if queries.shape[1] != dims:
        raise InvalidArgument(f"the query vectors have {queries.shape[1]} dimensions; column {column!r} holds "
                              f"vectors of {dims}", reason="WRONG_DIMENSION", column=column, expected=dims,
                              got=queries.shape[1])
    if not np.all(np.isfinite(queries)):
        raise InvalidArgument("the query vectors hold NaN or infinity", reason="BAD_VECTOR", column=column)
    return normalized(queries)


def normalized(vectors: np.ndarray) -> np.ndarray:
    """A unit-length copy (zero vectors stay zero): the one normalization both paths use, so a row's distance
    is the same bits whether an index nominated it or a scan found it."""
    out = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(out)
    return out


def max_sim(vectors: np.ndarray, owner: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, distances): MaxSim distance of each row owning vectors (`vectors` normalized, `owner` the row
    of each, non-decreasing) to the normalized `queries`."""
    if len(owner) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    total = np.zeros(len(starts), dtype=np.float32)
    for q in queries:  # one query vector at a time: equal ones give bit-equal terms
        similarity = vectors @ q
        total += (np.float32(1.0) - np.maximum.reduceat(similarity, starts)).astype(np.float32)
    return owner[starts], total


def _exact(view: TableView, column: str, queries: np.ndarray, allowed: np.ndarray,
           still_in_time: Callable[[], object]) -> tuple[np.ndarray, np.ndarray]:
    found_rows, found_distances = [], []
    for part in view.parts:
        still_in_time()
        local = np.flatnonzero(allowed[part.start:part.start + part.num_rows])
        if len(local) == 0:
            continue
        physical = part.physical(local)
        vectors, owner = part.fragment.multivectors(column)
        wanted = np.zeros(part.fragment.num_rows, dtype=bool)
        wanted[physical] = True
        keep = wanted[owner]
        rows, distances = max_sim(vectors[keep], owner[keep], queries)
        to_local = np.full(part.fragment.num_rows, -1, dtype=np.int64)
        to_local[physical] = local
        found_rows.append(to_local[rows] + part.start)
        found_distances.append(distances)
    if not found_rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    return np.concatenate(found_rows), np.concatenate(found_distances)


def _indexed(view: TableView, index: VectorIndex, column: str, queries: np.ndarray, wanted: int,
             allowed: np.ndarray, request: VectorSearch, still_in_time: Callable[[], object]
             ) -> tuple[np.ndarray, np.ndarray]:
    fetch = min(max(1, wanted) * FANOUT * max(1, request.options.refine_factor), max(1, index.size))
    restricted = None if bool(allowed.all()) else view.row_ids[allowed]
    candidates = set()
    for q in queries:
        still_in_time()
        ids, _ = index.search(q, fetch, allowed=restricted, options=request.options)
        candidates.update(ids.tolist())
    positions, found = view.positions(np.fromiter(candidates, dtype=np.int64, count=len(candidates)))
    positions = np.unique(positions[found])
    positions = positions[allowed[positions]]
    if len(positions) == 0:
        return positions, np.empty(0, dtype=np.float32)
    vectors, owner = multi_matrix(view.take(positions, [column]).column(column))
    rows, distances = max_sim(normalized(vectors), owner, queries)
    return positions[rows], distances
