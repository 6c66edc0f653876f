"""Vector search over one table view: with the column's index when one fits, exactly otherwise.

Filters run before the vector search by default (the allowed row ids go to FAISS as an IDSelector, or the
exact scan only looks at matching rows) or after it on request (LanceDB's postfilter: the top `limit +
offset` candidates are filtered, so fewer may come back). Rows an index holds but the view does not (deleted,
or in a fragment a delete dropped) are excluded inside FAISS for every index type; index hits newer than the
view's snapshot (a pinned older version) are dropped and the search asked again over the view's rows.
`refine_factor` re-ranks `limit * refine_factor` index candidates by exact distance.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from store_service.search import scan
from store_service.errors import InvalidArgument
from store_service.schema import field_at, pick_vector_column, searchable_dims
from store_service.storage.fragments import ROW_ID
from store_service.search.table_view import TableView
from store_service.indexes.vector_index import METRICS, SearchParams, VectorIndex, prepare

DISTANCE = "_distance"
QUERY_INDEX = "query_index"


@dataclass(frozen=True)
class VectorSearch:
    """What to search for, given the query vector."""

    vector_column: str = ""
    where: str = ""
    postfilter: bool = False
    select: tuple[str, ...] = ()
    limit: int = 10
    offset: int = 0
    distance_lower: float | None = None
    distance_upper: float | None = None
    metric: str = ""  # empty: the index's metric, or l2 without an index
    options: SearchParams = SearchParams()
    exact: bool = False  # every row, exactly, whatever index the column has


def check_request(view: TableView, request: VectorSearch) -> str:
    """The vector column the request searches, after checking its columns and bounds."""
    column = pick_vector_column(view.schema, request.vector_column)
    if request.metric and request.metric not in METRICS:
        raise InvalidArgument(f"unknown metric {request.metric!r}; one of {', '.join(METRICS)}",
                              reason="INVALID_METRIC", metric=request.metric)
    if request.limit < 0 or request.offset < 0:
        raise InvalidArgument("limit and offset must not be negative", reason="INVALID_LIMIT")
    for name in request.select:
        if name != ROW_ID and name not in view.schema.names:
            raise InvalidArgument(f"selected column {name!r} is not in the table", reason="UNKNOWN_COLUMN",
                                  column=name)
    return column


def search(view: TableView, query: np.ndarray, request: VectorSearch, index: VectorIndex | None = None
           ) -> pa.Table:
    """The closest rows, closest first: the selected columns plus `_distance` (float32)."""
    column = check_request(view, request)
    dims = searchable_dims(field_at(view.schema, column))
    query = np.asarray(query, dtype=np.float32).reshape(-1)
    if query.shape[0] != dims:
        raise InvalidArgument(f"the query vector has {query.shape[0]} dimensions; column {column!r} has {dims}",
                              reason="WRONG_DIMENSION", column=column, expected=dims, got=query.shape[0])
    if not np.isfinite(query).all():
        raise InvalidArgument("the query vector holds NaN or infinity", reason="BAD_VECTOR", column=column)
    metric = request.metric or (index.params.metric if index is not None else "l2")
    if index is not None and index.params.metric != metric:
        index = None  # an index answers only in its own metric; search exactly in the one asked for
    prefilter = bool(request.where.strip()) and not request.postfilter
    wanted = request.limit + request.offset
    names = list(request.select) or view.schema.names
    fetched = None  # the candidates' result rows, when the refine read them with their vectors
    if index is not None:  # the index holds only rows with a vector: their validity is not read
        allowed = view.mask(request.where) if prefilter else None
        positions, distances = _index_search(view, index, query, wanted, allowed, request)
        if request.options.refine_factor:
            distances, fetched = _refined(view, column, metric, query, positions, names)
            order = np.argsort(distances, kind="stable")
            positions, distances = positions[order], distances[order]
            fetched = fetched.take(pa.array(order)) if fetched is not None else None
        keep = _range_mask(distances, request)
    else:
        allowed = view.valid(column)
        if prefilter:
            allowed = allowed & view.mask(request.where)
        positions, distances = _exact_search(view, column, metric, query, wanted, allowed, request)
        keep = np.ones(len(positions), dtype=bool)
    if request.where.strip() and request.postfilter:
        keep &= view.mask(request.where)[positions]
    if request.offset or len(positions) > request.limit or not keep.all():
        chosen = np.flatnonzero(keep)[request.offset:request.offset + request.limit]
        positions, distances = positions[chosen], distances[chosen]
    else:
        chosen = np.arange(len(positions))  # every candidate kept, in order (the serving path's usual case)
    rows = fetched.take(pa.array(chosen)).select(names) if fetched is not None else view.take(positions, names)
    return rows.append_column(pa.field(DISTANCE, pa.float32()), pa.array(distances.astype(np.float32)))


def search_many(view: TableView, queries: np.ndarray, request: VectorSearch, index: VectorIndex | None = None,
                still_in_time: Callable[[], object] = lambda: None) -> pa.Table:
    """Each query's results (as `search` gives them), with `query_index`: the query's position among
    `queries` (LanceDB's batch search). Through an index, the queries go to FAISS as one batch and the rows of
    every result are read in one take; otherwise (an exact search, a refine, another metric) one query after
    another, sharing the view and its filter mask. `still_in_time` is asked before the work (and before each
    query one after another): it raises once the call's deadline has passed."""
    queries = np.asarray(queries, dtype=np.float32)
    metric = request.metric or (index.params.metric if index is not None else "l2")
    if index is None or request.options.refine_factor or index.params.metric != metric or queries.ndim != 2:
        return _one_after_another(view, queries, request, index, still_in_time)
    column = check_request(view, request)
    dims = searchable_dims(field_at(view.schema, column))
    if queries.shape[1] != dims:
        raise InvalidArgument(f"the query vectors have {queries.shape[1]} dimensions; column {column!r} has {dims}",
                              reason="WRONG_DIMENSION", column=column, expected=dims, got=queries.shape[1])
    if not np.all(np.isfinite(queries)):
        raise InvalidArgument("a query vector holds NaN or infinity", reason="BAD_VECTOR", column=column)
    still_in_time()
    where = request.where.strip()
    allowed = view.mask(request.where) if where and not request.postfilter else None
    positions, distances, found = _index_search_many(view, index, queries, request.limit + request.offset,
                                                     allowed, request)
    keep = found & _range_mask(distances.reshape(-1), request).reshape(distances.shape)
    if where and request.postfilter:
        mask = view.mask(request.where)
        keep &= mask[positions] if len(mask) else False  # positions of ids not found are 0: masked by `found`
    rank = np.cumsum(keep, axis=1) - 1  # each query's kept candidates, counted closest first
    chosen = keep & (rank >= request.offset) & (rank < request.offset + request.limit)
    numbers, _ = np.nonzero(chosen)  # row-major: query by query, closest first
    rows = view.take(positions[chosen], list(request.select) or view.schema.names)
    rows = rows.append_column(pa.field(DISTANCE, pa.float32()), pa.array(distances[chosen].astype(np.float32)))
    return rows.append_column(pa.field(QUERY_INDEX, pa.int32()), pa.array(numbers.astype(np.int32)))


def _one_after_another(view: TableView, queries: np.ndarray, request: VectorSearch, index: VectorIndex | None,
                       still_in_time: Callable[[], object]) -> pa.Table:
    parts = []
    for number, query in enumerate(queries):
        still_in_time()
        found = search(view, query, request, index)
        parts.append(found.append_column(pa.field(QUERY_INDEX, pa.int32()),
                                          pa.array(np.full(found.num_rows, number, dtype=np.int32))))
    return pa.concat_tables(parts)


def _index_search_many(view: TableView, index: VectorIndex, queries: np.ndarray, wanted: int,
                       allowed: np.ndarray | None, request: VectorSearch
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_index_search` for a batch, in one FAISS call (two when some query's hits include rows the view
    lacks): (positions, distances, found), each (queries, wanted)."""
    shape = (len(queries), wanted)
    if wanted == 0:
        return np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.float32), np.zeros(shape, dtype=bool)
    unfiltered = allowed is None or bool(allowed.all())
    again: np.ndarray = np.ones(len(queries), dtype=bool)
    if unfiltered and index.size <= view.num_rows:
        ids, distances = index.search_many(queries, wanted, options=request.options)
        positions, found = (a.reshape(shape) for a in view.positions(ids.reshape(-1)))
        again = np.asarray(~(found | (ids < 0)).all(axis=1))  # a hit outside the view: asked again without it
        if not again.any():
            return positions, distances, found
    else:
        positions, distances = np.zeros(shape, dtype=np.int64), np.zeros(shape, dtype=np.float32)
        found = np.zeros(shape, dtype=bool)
    ids, more = index.search_many(queries[again], wanted, allowed=view.row_ids if unfiltered else
                                  view.row_ids[allowed], options=request.options)
    places, hit = view.positions(ids.reshape(-1))
    positions[again], distances[again], found[again] = (places.reshape(ids.shape), more,
                                                        hit.reshape(ids.shape))
    return positions, distances, found


def _refined(view: TableView, column: str, metric: str, query: np.ndarray, positions: np.ndarray,
             names: list[str]) -> tuple[np.ndarray, pa.Table | None]:
    """Exact distances of an index's candidates. When the view does not hold their vectors, they are read
    from the dataset together with the result columns, in one take (a second take of the winners cost
    ~2 ms per search at 10M rows): (distances, the candidates' rows); otherwise (distances, None)."""
    if view.holds_vectors_at(column, positions):
        return _exact_distances(view, column, metric, query, positions), None
    wanted = [*names, column] if column not in names else names
    rows = view.take(positions, wanted)
    vectors = prepare(view.matrix_of(rows.column(column)), metric)
    q = prepare(query.reshape(1, -1), metric)[0]
    norms = np.einsum("ij,ij->i", vectors, vectors) if metric == "l2" else None
    return scan.distances(vectors, norms, q, metric), rows


def _index_search(view: TableView, index: VectorIndex, query: np.ndarray, wanted: int,
                  allowed: np.ndarray | None, request: VectorSearch) -> tuple[np.ndarray, np.ndarray]:
    """`allowed`: the rows a prefilter keeps (None: every row). Every row of the view with a vector is in
    the index (it is caught up when loaded), which may hold more (deleted rows, rows newer than a pinned
    version)."""
    fetch = wanted * max(1, request.options.refine_factor)
    if fetch == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    unfiltered = allowed is None or bool(allowed.all())
    if unfiltered and index.size <= view.num_rows:
        # The index likely holds only this view's rows: search it whole; if every hit is one of them, they
        # are the view's nearest.
        ids, distances = index.search(query, fetch, options=request.options)
        positions, found = view.positions(ids)
        if found.all():
            return positions, distances
    # Rows the index holds but the view does not are excluded inside FAISS, so the result is still complete.
    ids, distances = index.search(query, fetch, allowed=view.row_ids if unfiltered else view.row_ids[allowed],
                                  options=request.options)
    positions, found = view.positions(ids)
    return positions[found], distances[found]


def _exact_distances(view: TableView, column: str, metric: str, query: np.ndarray, positions: np.ndarray
                     ) -> np.ndarray:
    q = prepare(query.reshape(1, -1), metric)[0]
    vectors = prepare(view.vectors_at(column, positions), metric)  # from the dataset unless held
    norms = np.einsum("ij,ij->i", vectors, vectors) if metric == "l2" else None
    return scan.distances(vectors, norms, q, metric)


GATHER_BELOW = 0.25  # a part with fewer of its rows allowed than this is gathered; otherwise scanned whole


def _exact_search(view: TableView, column: str, metric: str, query: np.ndarray, wanted: int,
                  allowed: np.ndarray, request: VectorSearch) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over the fragments' own matrices (no copy of the table's vectors): the parts are cut
    into slices of similar size that the scan pool computes side by side (a table of many small fragments
    would otherwise be one core's work), each slice's best `wanted` merged."""
    q = prepare(query.reshape(1, -1), metric)[0]
    slices = []
    for part in view.parts:
        local = np.flatnonzero(allowed[part.start:part.start + part.num_rows])
        if len(local) == 0:
            continue
        physical = part.physical(local)
        step = max(scan.PARALLEL_MIN_ROWS, part.fragment.num_rows // scan.workers() + 1)
        for low in range(0, part.fragment.num_rows, step):
            a, b = np.searchsorted(physical, [low, low + step])
            if b > a:
                slices.append((part, low, min(low + step, part.fragment.num_rows), local[a:b], physical[a:b]))

    def best(item: tuple) -> tuple[np.ndarray, np.ndarray]:
        part, low, high, local, physical = item
        ready, norms = part.fragment.prepared(column, metric)
        if len(physical) < GATHER_BELOW * (high - low):
            distances = scan.chunk(ready[physical], None if norms is None else norms[physical], q, metric)
        else:
            distances = scan.chunk(ready[low:high], None if norms is None else norms[low:high], q,
                                   metric)[physical - low]
        keep = _range_mask(distances, request)
        if not keep.all():
            local, distances = local[keep], distances[keep]
        k = min(wanted, len(distances))
        if k == 0:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        top = np.argpartition(distances, k - 1)[:k] if k < len(distances) else np.arange(len(distances))
        return local[top] + part.start, distances[top]

    found = scan.run_all(best, slices)
    if not found:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    positions = np.concatenate([f[0] for f in found]).astype(np.int64)
    distances = np.concatenate([f[1] for f in found])
    order = np.lexsort((positions, distances))[:wanted]  # closest first; ties by position: stable results
    return positions[order], distances[order]


def _range_mask(distances: np.ndarray, request: VectorSearch) -> np.ndarray:
    keep = np.ones(len(distances), dtype=bool)
    if request.distance_lower is None and request.distance_upper is None:
        return keep
    if request.distance_lower is not None:
        keep &= distances >= request.distance_lower
    if request.distance_upper is not None:
        keep &= distances < request.distance_upper
    return keep


