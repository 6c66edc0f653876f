"""A snapshot's live rows held ready for searches and filters, built once per table version.

The Arrow rows (with `_rowid`), the row ids as numpy, each vector column as a float32 matrix (with its
validity and, per metric, its prepared form), and recently used filter masks. Views are immutable like the
snapshot they come from; the cache keeps the latest few per table and builds a new one when a commit lands.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.filters import MAX_LENGTH, compile_filter, shown
from store_service.storage.fragments import ROW_ID
from store_service.storage.table import Snapshot, Table
from store_service.vector_index import prepare

MASKS_KEPT = 32
VIEWS_PER_TABLE = 2


class TableView:
    def __init__(self, snapshot: Snapshot, max_filter_length: int = MAX_LENGTH) -> None:
        self.snapshot = snapshot
        self._max_filter_length = max_filter_length
        self.data = snapshot.to_arrow(with_row_ids=True).combine_chunks()  # one chunk: fast takes and masks
        self.row_ids = self.data.column(ROW_ID).to_numpy()
        self._ordered = bool(np.all(np.diff(self.row_ids) > 0))
        self._order = None if self._ordered else np.argsort(self.row_ids, kind="stable")
        self._missing: np.ndarray | None = None
        self._vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._prepared: dict[tuple[str, str], tuple[np.ndarray, np.ndarray | None]] = {}
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def schema(self) -> pa.Schema:
        return self.snapshot.schema

    @property
    def num_rows(self) -> int:
        return self.data.num_rows

    def missing_row_ids(self) -> np.ndarray | None:
        """Ids an index built on an earlier version may hold but this view does not (deleted or dropped rows),
        for searches to exclude; None when they outnumber the view's rows: then allow the view's ids instead."""
        if self.snapshot.missing_count() > self.num_rows:
            return None
        if self._missing is None:
            self._missing = self.snapshot.missing_row_ids()
        return self._missing

    def positions(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, found): where each id sits in `data`; `found` is False for ids not in this view."""
        ids = np.asarray(row_ids, dtype=np.int64)
        if len(self.row_ids) == 0:
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        sorted_ids = self.row_ids if self._ordered else self.row_ids[self._order]
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)  # np.clip costs ~30 µs here
        found = sorted_ids[at] == ids
        return (at if self._ordered else self._order[at]), found

    def vectors(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """(matrix, valid): the column's vectors as float32 rows (zeros where null) and which are present."""
        with self._lock:
            cached = self._vectors.get(column)
            if cached is None:
                cached = self._vectors[column] = _matrix(self.data.column(column))
            return cached

    def prepared(self, column: str, metric: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(vectors ready for `metric`, squared norms for l2 or None) — normalized once per view for cosine."""
        key = (column, metric)
        with self._lock:
            cached = self._prepared.get(key)
        if cached is None:
            matrix, _ = self.vectors(column)
            ready = prepare(matrix, metric) if metric == "cosine" else matrix
            norms = np.einsum("ij,ij->i", ready, ready) if metric == "l2" else None
            cached = (ready, norms)
            with self._lock:
                self._prepared[key] = cached
        return cached

    def mask(self, where: str) -> np.ndarray:
        """Which rows match `where` (a bad filter raises INVALID_FILTER with its position)."""
        with self._lock:
            cached = self._masks.get(where)
            if cached is not None:
                self._masks.move_to_end(where)
                return cached
        expression = compile_filter(where, self.schema, self._max_filter_length)
        try:
            selected = self.data.filter(expression).column(ROW_ID).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
            # what the checks before cannot know (a pattern RE2 will not compile...): still the filter's fault
            raise InvalidArgument(f"bad filter {shown(where)}: Arrow cannot evaluate it ({str(exc)[:200]})",
                                  reason="INVALID_FILTER") from None
        positions, _ = self.positions(selected)
        result = np.zeros(self.num_rows, dtype=bool)
        result[positions] = True
        with self._lock:
            self._masks[where] = result
            while len(self._masks) > MASKS_KEPT:
                self._masks.popitem(last=False)
        return result


def _matrix(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    dims = column.type.list_size
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    if array.null_count == 0 and array.offset == 0:
        flat = array.values.to_numpy(zero_copy_only=False)
        return flat.reshape(-1, dims).astype(np.float32, copy=False), valid
    matrix = np.zeros((len(array), dims), dtype=np.float32)
    if valid.any():
        present = array.filter(pa.array(valid))
        matrix[valid] = present.flatten().to_numpy(zero_copy_only=False).reshape(-1, dims)
    return matrix, valid


class ViewCache:
    """The latest views of each open table, built on first use of a version."""

    def __init__(self, max_filter_length: int = MAX_LENGTH) -> None:
        self._max_filter_length = max_filter_length
        self._views: weakref.WeakKeyDictionary[Table, OrderedDict[int, TableView]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def get(self, table: Table, version: int | None = None) -> TableView:
        snapshot_version = version if version is not None else table.latest_version()
        with self._lock:
            views = self._views.setdefault(table, OrderedDict())
            view = views.get(snapshot_version)
            if view is not None:
                views.move_to_end(snapshot_version)
                return view
        view = TableView(table.snapshot(snapshot_version), self._max_filter_length)
        with self._lock:
            views = self._views.setdefault(table, OrderedDict())
            views[snapshot_version] = view
            while len(views) > VIEWS_PER_TABLE:
                views.popitem(last=False)
        return view


def filter_row_ids(view: TableView, where: str) -> np.ndarray:
    """Row ids of the rows matching `where` (every row when empty)."""
    if not where.strip():
        return view.row_ids
    return view.row_ids[view.mask(where)]

