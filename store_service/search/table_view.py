"""What searches and filters read, kept per immutable Lance fragment and shared by every version holding it.

A Lance fragment's data files never change; a version only adds fragments, drops them, or gives one a new
deletion file. So the store keeps, per fragment, its rows as Arrow (physical rows, deleted ones included,
as Lance stores them), each vector column as a float32 matrix over the same buffer (no copy when it has no
nulls), its prepared forms per metric, and recent filter masks. A version's view is then a list of parts —
a fragment and the positions of its rows this version holds (a mask from its deletion file) — plus a few
global arrays built lazily from them (row ids, validity, masks: one value per row, never the rows). A commit
therefore costs what it added or changed: the next view reuses every untouched fragment; no code path
concatenates the table's columns.

Positions are global: part 0's live rows first, then part 1's, ..., in the version's fragment order.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import InvalidArgument
from store_service.expressions.row_sizes import cell_bytes, input_bytes
from store_service.expressions.filters import LanceFilter, compile_where
from store_service.expressions.grammar import MAX_LENGTH, referenced_columns, shown
from store_service.storage.fragments import ROW_ID
from store_service.storage.manifest import FragmentRef
from store_service.expressions import lance as lance_sql
from store_service.storage.operations import Deletes
from store_service.storage.table import Snapshot, Table
from store_service.schema import field_at, is_multivector, searchable_dims
from store_service.indexes.vector_index import prepare

MASKS_KEPT = 32
TAKE_FROM_DATASET_MAX = 1024  # rows of a column not held that are read from the dataset rather than held
SLICE_ROWS = 65_536  # rows an index build reads at a time from a fragment (96 MiB of 384-d vectors)
VIEWS_PER_TABLE = 2
_POSITION = "__vectorlane_position"


class FragmentData:
    """One fragment's physical rows and what is derived from them, read as they are needed: its row ids
    (and its files' checksums checked) when first held, then each column the first time something needs
    all its values (a filter, an exact scan, an index build, a large read). A few rows of a column not held
    (a search's results, an index's candidates to refine) come from the dataset instead, so a table served
    through its index never holds its vectors. Immutable once read."""

    def __init__(self, table: Table, snapshot: Snapshot, ref: FragmentRef) -> None:
        self.ref = ref
        self.key = fragment_key(snapshot, ref)
        self._table, self._snapshot = table, snapshot  # the version the columns are read at
        ids = table.read_fragment(snapshot, ref, [])
        self.row_ids = row_id_array(ids.column(ROW_ID))
        self.max_row_id = int(self.row_ids.max(initial=-1))  # -1 marks a row deleted when it was read
        present = self.row_ids[self.row_ids >= 0]
        self.increasing = bool(np.all(present[1:] > present[:-1]))  # as Lance assigns them
        self.num_rows = ids.num_rows
        self._columns: dict[str, pa.Array] = {}
        self._vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._validity: dict[str, np.ndarray] = {}
        self._sizes: dict[str, np.ndarray] = {}  # cell sizes of columns that expressions read (budget.py)
        self._prepared: dict[tuple[str, str], tuple[np.ndarray, np.ndarray | None]] = {}
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.verified = False  # every data file's checksum checked (by a take; reads check their own)

    def column(self, name: str) -> pa.Array:
        """Every physical row's value of `name` (deleted rows too), read once."""
        with self._lock:
            cached = self._columns.get(name)
        if cached is None:
            read = self._table.read_fragment(self._snapshot, self.ref, [name]).column(name)
            array = read.chunk(0) if read.num_chunks == 1 else read.combine_chunks()
            with self._lock:
                cached = self._columns.setdefault(name, array)
        return cached

    def numbers(self, name: str) -> np.ndarray | None:
        """A held column of numbers without nulls as numpy (no copy), for gathering a search's few results
        with one index per fragment; None for any other column."""
        array = self.column(name)
        kind = array.type
        if array.null_count or not (pa.types.is_integer(kind) or pa.types.is_floating(kind)):
            return None
        return array.to_numpy(zero_copy_only=True)

    def values(self, physical: np.ndarray, names: Sequence[str]) -> dict[str, pa.Array]:
        """The values of `names` at physical offsets (live rows): from the columns held, or for a few rows of
        a column not held, from the dataset by row id."""
        with self._lock:
            held = {n: self._columns[n] for n in names if n in self._columns}
        missing = [n for n in names if n not in held]
        found = {n: a.take(pa.array(physical, type=pa.int64())) for n, a in held.items()}
        if missing and len(physical) <= TAKE_FROM_DATASET_MAX:
            found.update(self._table.take_rows(self._snapshot, [self.ref], self.row_ids[physical], missing))
        else:
            found.update({n: self.column(n).take(pa.array(physical, type=pa.int64())) for n in missing})
        return found

    def vectors(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        with self._lock:
            cached = self._vectors.get(column)
        if cached is None:
            matrix = _matrix(self.column(column))
            with self._lock:
                cached = self._vectors.setdefault(column, matrix)
        return cached

    def multivectors(self, column: str) -> tuple[np.ndarray, np.ndarray]:
        """A multivector column's (vectors normalized for cosine, owner): every row's vectors stacked, and the
        physical row each belongs to (non-decreasing); held once read."""
        key = (column, "multivector")
        with self._lock:
            cached = self._prepared.get(key)
        if cached is None:
            vectors, owner = multi_matrix(self.column(column))
            faiss.normalize_L2(vectors)
            cached = (vectors, owner)
            with self._lock:
                cached = self._prepared.setdefault(key, cached)
        return cached  # type: ignore[return-value]

    def read_vectors(self, column: str, wanted: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(vectors, row ids) of the physical rows `wanted` (a mask) that have a vector in `column`: from the
        held matrix, or read in slices of SLICE_ROWS and let go (an index build or catch-up: the index keeps
        what it needs, and a 1M-row fragment's vectors are never in memory at once). For a multivector
        column, each of a row's vectors, labelled with the row's id."""
        if self._is_multi(column):
            for start, part in self._table.fragment_slices(self._snapshot, self.ref, [column], SLICE_ROWS):
                vectors, owner = multi_matrix(part.column(column))
                keep = wanted[start:start + part.num_rows][owner]
                if keep.any():
                    yield vectors[keep], self.row_ids[start:start + part.num_rows][owner[keep]]
            return
        with self._lock:
            cached = self._vectors.get(column)
            array = self._columns.get(column)
        if cached is None and array is not None:
            cached = _matrix(array)
        if cached is not None:
            keep = wanted & cached[1]
            if keep.any():
                yield cached[0][keep], self.row_ids[keep]
            return
        for start, part in self._table.fragment_slices(self._snapshot, self.ref, [column], SLICE_ROWS):
            end = start + part.num_rows
            if not wanted[start:end].any():
                continue
            matrix, valid = _matrix(part.column(column))
            keep = wanted[start:end] & valid
            if keep.any():
                yield matrix[keep], self.row_ids[start:end][keep]

    def validity(self, column: str) -> np.ndarray:
        """Which physical rows have a vector in `column`. When the vectors are not held, they are read for
        this and let go: a table searched through its index does not keep them."""
        with self._lock:
            vectors = self._vectors.get(column)
            cached = self._validity.get(column)
        if cached is None:
            if vectors is not None:
                cached = vectors[1]
            else:
                with self._lock:
                    array = self._columns.get(column)
                if array is None:
                    array = self._table.read_fragment(self._snapshot, self.ref, [column]).column(column)
                cached = array.is_valid().to_numpy(zero_copy_only=False) if array.null_count else \
                    np.ones(self.num_rows, dtype=bool)
            with self._lock:
                cached = self._validity.setdefault(column, cached)
        return cached

    def _is_multi(self, column: str) -> bool:
        return is_multivector(field_at(self._snapshot.schema, column))

    def holds_vectors(self, column: str) -> bool:
        with self._lock:
            return column in self._vectors

    def holds(self, column: str) -> bool:
        with self._lock:
            return column in self._columns

    def prepared(self, column: str, metric: str) -> tuple[np.ndarray, np.ndarray | None]:
        """(vectors ready for `metric`, squared norms for l2 or None) — normalized once for cosine."""
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

    def input_bytes(self, columns: frozenset[str]) -> np.ndarray:
        """Each physical row's bytes in `columns` (what an expression reading them is bounded by). A column
        whose cells differ in size is read once for it, and only its sizes are kept (unless it is held)."""
        return input_bytes(self._snapshot.schema, columns, self.num_rows,
                           lambda names: [self._cell_sizes(name) for name in names])

    def _cell_sizes(self, name: str) -> np.ndarray:
        with self._lock:
            cached = self._sizes.get(name)
            held = self._columns.get(name)
        if cached is None:
            if held is None:
                held = self._table.read_fragment(self._snapshot, self.ref, [name]).column(name)
            cached = cell_bytes(held).astype(np.float32)
            with self._lock:
                cached = self._sizes.setdefault(name, cached)
        return cached

    def mask(self, where: str, expression: object) -> np.ndarray:
        with self._lock:
            cached = self._masks.get(where)
            if cached is not None:
                self._masks.move_to_end(where)
                return cached
        if isinstance(expression, LanceFilter):  # views evaluate these for all their fragments at once
            found = lance_sql.matching_offsets(self._snapshot, [self.ref], expression.judged,
                                                 self.input_bytes(expression.judged.columns))
            return self.keep_mask(where, found[self.ref.id])
        else:
            names = sorted(referenced_columns(where))
            numbered = pa.table({**{n: self.column(n) for n in names},
                                 _POSITION: pa.array(np.arange(self.num_rows, dtype=np.int64))})
            try:
                selected = numbered.filter(expression).column(_POSITION).to_numpy()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                # what the checks before cannot know (a pattern RE2 will not compile...): still the filter's
                raise InvalidArgument(f"bad filter {shown(where)}: Arrow cannot evaluate it ({str(exc)[:200]})",
                                      reason="INVALID_FILTER") from None
        return self.keep_mask(where, selected)

    def has_mask(self, where: str) -> bool:
        with self._lock:
            return where in self._masks

    def keep_mask(self, where: str, selected: np.ndarray) -> np.ndarray:
        """The mask of the physical rows at offsets `selected`, kept as `where`'s."""
        result = np.zeros(self.num_rows, dtype=bool)
        result[selected] = True
        with self._lock:
            self._masks[where] = result
            while len(self._masks) > MASKS_KEPT:
                self._masks.popitem(last=False)
        return result


def fragment_key(snapshot: Snapshot, ref: FragmentRef) -> tuple[object, ...]:
    """What a fragment's rows as read depend on: its data files and the columns the schema names in them
    (a rename or a drop changes what is read from the same files)."""
    return (*ref.data_key, tuple((f.name, str(f.type)) for f in snapshot.schema))


@dataclass(frozen=True)
class Part:
    """A fragment as one version holds it: `live` are the physical positions of its rows (None: all)."""

    fragment: FragmentData
    live: np.ndarray | None
    start: int  # global position of its first live row
    ref: FragmentRef  # the fragment as this version lists it (with its deletion file)

    @property
    def num_rows(self) -> int:
        return self.fragment.num_rows if self.live is None else len(self.live)

    def physical(self, local: np.ndarray) -> np.ndarray:
        return local if self.live is None else self.live[local]

    def select(self, values: np.ndarray) -> np.ndarray:
        """Per-physical-row `values` restricted to the rows this version holds."""
        return values if self.live is None else values[self.live]


class TableView:
    def __init__(self, snapshot: Snapshot, parts: list[Part], max_filter_length: int = MAX_LENGTH) -> None:
        self.snapshot = snapshot
        self.parts = parts
        self._max_filter_length = max_filter_length
        self.num_rows = sum(p.num_rows for p in parts)
        self._starts = np.array([p.start for p in parts], dtype=np.int64)
        self._row_ids: np.ndarray | None = None
        self._next_row_id: int | None = None
        self._part_firsts: np.ndarray | None = None
        self._part_runs: np.ndarray | None = None  # per part: its row count when its ids are first..first+n-1
        self._parts_ordered = False
        self._parts_gapless = False  # every part's ids run without a gap: positions are arithmetic alone
        self._numbers: dict[str, list[np.ndarray | None | bool]] = {}  # per column, per part: see _numbers_at
        self._verified = False  # every part's data files checked (the first take of each checks them)
        self._fields: dict[tuple[str, ...], list[pa.Field]] = {}
        self._sorted: tuple[np.ndarray, np.ndarray | None] | None = None
        self._valid: dict[str, np.ndarray] = {}
        self._masks: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def version(self) -> int:
        return self.snapshot.version

    @property
    def schema(self) -> pa.Schema:
        return self.snapshot.schema

    @property
    def row_ids(self) -> np.ndarray:
        """Row ids of the view's rows, by global position."""
        if self._row_ids is None:
            parts = [p.select(p.fragment.row_ids) for p in self.parts]
            self._row_ids = np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)
        return self._row_ids

    @property
    def next_row_id(self) -> int:
        """One past the largest row id this view holds (Lance assigns ids in increasing order), from each
        fragment's largest (kept with it) rather than from the whole table's ids."""
        if self._next_row_id is None:
            largest = [p.fragment.max_row_id if p.live is None else
                       int(p.fragment.row_ids[p.live].max(initial=-1)) for p in self.parts]
            self._next_row_id = max(largest, default=-1) + 1
        return self._next_row_id

    def positions(self, row_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions, found): where each id sits; `found` is False for ids not in this view."""
        ids = np.asarray(row_ids, dtype=np.int64)
        if self.num_rows == 0:
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        if len(ids) <= TAKE_FROM_DATASET_MAX and self._ordered_parts():
            return self._positions_by_part(ids)
        if self._sorted is None:
            all_ids = self.row_ids
            ordered = bool(np.all(all_ids[1:] > all_ids[:-1]))
            order = None if ordered else np.argsort(all_ids, kind="stable")
            self._sorted = (all_ids if ordered else all_ids[order], order)
        sorted_ids, order = self._sorted
        at = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
        found = sorted_ids[at] == ids
        return (at if order is None else order[at]), found

    def _ordered_parts(self) -> bool:
        """Whether each part's ids increase and every part's ids come after the previous part's (as Lance
        assigns them, compaction keeping them): then a few ids are found part by part, without the whole
        table's ids joined and sorted for each new version (5 ms at 1M rows)."""
        if self._part_firsts is None:
            firsts, runs, ordered, last = [], [], True, -1
            for part in self.parts:
                fragment = part.fragment
                ordered = ordered and fragment.increasing
                if not ordered:
                    break
                ids = part.select(fragment.row_ids)
                if len(ids):
                    ordered = int(ids[0]) > last
                    last = int(ids[-1])
                firsts.append(int(ids[0]) if len(ids) else last + 1)
                runs.append(len(ids) if len(ids) and int(ids[-1]) - int(ids[0]) + 1 == len(ids) else -1)
            self._part_firsts = np.asarray(firsts, dtype=np.int64) if ordered else np.empty(0, dtype=np.int64)
            self._part_runs = np.asarray(runs, dtype=np.int64) if ordered else np.empty(0, dtype=np.int64)
            self._parts_gapless = ordered and bool(np.all(self._part_runs >= 0))
            self._parts_ordered = ordered
        return self._parts_ordered

    def _positions_by_part(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of a few ids, part by part: arithmetic for a part whose ids run without a gap (as Lance
        assigns them to a fragment nothing was deleted from), a binary search in the others."""
        assert self._part_firsts is not None and self._part_runs is not None, \
            "this is a bug: the parts' firsts are set by _ordered_parts"
        which = np.searchsorted(self._part_firsts, ids, side="right") - 1
        part = np.maximum(which, 0)
        offset = ids - self._part_firsts[part]
        runs = self._part_runs[part]
        found = (which >= 0) & (runs >= 0) & (offset < runs)
        positions = np.where(found, self._starts[part] + offset, 0)
        if self._parts_gapless:
            return positions, found
        for index in np.unique(which[(which >= 0) & (runs < 0)]):  # parts with gaps (deletions)
            chosen = np.flatnonzero(which == index)
            local = self.parts[index].select(self.parts[index].fragment.row_ids)
            if len(local) == 0:
                continue
            at = np.minimum(np.searchsorted(local, ids[chosen]), len(local) - 1)
            found[chosen] = local[at] == ids[chosen]
            positions[chosen] = self._starts[index] + at
        return positions, found

    def locate(self, row_ids: np.ndarray) -> Deletes:
        """The physical offsets, by fragment id, of the given row ids (all must be in the view)."""
        positions, found = self.positions(row_ids)
        if not found.all():
            raise RuntimeError("this is a bug: rows to delete must be in the view they were read from")
        result: dict[int, list[np.ndarray]] = {}
        which = np.searchsorted(self._starts, positions, side="right") - 1
        for index in np.unique(which):
            part = self.parts[index]
            local = positions[which == index] - part.start
            result.setdefault(part.ref.id, []).append(part.physical(local))
        return {fid: np.concatenate(chunks) for fid, chunks in result.items()}

    def valid(self, column: str) -> np.ndarray:
        """Which rows have a (non-null) vector in `column`."""
        with self._lock:
            cached = self._valid.get(column)
        if cached is None:
            parts = [p.select(p.fragment.validity(column)) for p in self.parts]
            cached = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
            with self._lock:
                self._valid[column] = cached
        return cached

    def mask(self, where: str) -> np.ndarray:
        """Which rows match `where` (a bad filter raises INVALID_FILTER with its position)."""
        with self._lock:
            cached = self._masks.get(where)
            if cached is not None:
                self._masks.move_to_end(where)
                return cached
        expression = compile_where(where, self.schema, self.snapshot, self._max_filter_length)
        if isinstance(expression, LanceFilter):
            self._evaluate_in_lance(where, expression)
        parts = [p.select(p.fragment.mask(where, expression)) for p in self.parts]
        result = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
        with self._lock:
            self._masks[where] = result
            while len(self._masks) > MASKS_KEPT:
                self._masks.popitem(last=False)
        return result

    def _evaluate_in_lance(self, where: str, expression: "LanceFilter") -> None:
        """The masks of the fragments that have none for `where`, from one scan of them all: Lance plans a
        filter once a scan, and a table of 1,000 small fragments planned a costly one 1,000 times."""
        missing = [p for p in self.parts if not p.fragment.has_mask(where)]
        if not missing:
            return
        columns = expression.judged.columns
        found = lance_sql.matching_offsets(
            self.snapshot, [p.ref for p in missing], expression.judged,
            np.concatenate([p.fragment.input_bytes(columns) for p in missing]))
        for part in missing:
            part.fragment.keep_mask(where, found[part.ref.id])

    def refs_at(self, positions: np.ndarray) -> list[FragmentRef]:
        """The fragments holding the rows at these global positions."""
        which = np.unique(np.searchsorted(self._starts, np.asarray(positions, dtype=np.int64), side="right") - 1)
        return [self.parts[i].ref for i in which]

    def check_rows(self, row_ids: np.ndarray) -> None:
        """Checks the data files of the fragments holding these rows (read by Lance itself, as a full-text
        search's results are) against their checksums, once per process: DATA_LOSS for a corrupt one."""
        positions, found = self.positions(np.asarray(row_ids, dtype=np.int64))
        which = np.unique(np.searchsorted(self._starts, positions[found], side="right") - 1)
        unchecked = [self.parts[i] for i in which.tolist() if not self.parts[i].fragment.verified]
        if unchecked:
            self.snapshot.table.verify(part.ref for part in unchecked)
            for part in unchecked:
                part.fragment.verified = True

    def take(self, positions: np.ndarray, columns: Sequence[str]) -> pa.Table:
        """The rows at the given global positions, in that order; `_rowid` may be among the columns."""
        positions = np.asarray(positions, dtype=np.int64)
        names = list(columns)
        fields = self._fields_of(names)
        if len(positions) == 0 or not self.parts:
            return pa.schema(fields).empty_table()
        which = np.searchsorted(self._starts, positions, side="right") - 1
        if len(positions) <= GATHER_ONE_BY_ONE:
            few = self._gather_few(positions, which, names, fields)
            if few is not None:
                return few
        touched = np.unique(which)
        unchecked = [self.parts[i] for i in touched.tolist() if not self.parts[i].fragment.verified]
        if unchecked:  # side by side, before reading
            self.snapshot.table.verify(part.ref for part in unchecked)
            for part in unchecked:
                part.fragment.verified = True
        fetched: dict[str, pa.Array] = {}
        if len(positions) <= TAKE_FROM_DATASET_MAX:  # columns some fragment does not hold: one take for all
            fragments = [self.parts[i].fragment for i in touched.tolist()]
            for name in names:  # a narrow column is held once (8 MB per 1M int64 ids) rather than taken each time
                if name != ROW_ID and held_whole(self.schema.field(name).type):
                    for fragment in fragments:
                        fragment.column(name)
            missing = [n for n in names if n != ROW_ID and not all(f.holds(n) for f in fragments)]
            if missing:
                fetched = self.snapshot.table.take_rows(self.snapshot, [self.parts[i].ref for i in touched],
                                                        self.row_ids[positions], missing)
        if not fetched:
            gathered = self._gather(positions, which, touched, names, fields)
            if gathered is not None:
                return gathered
        groups = []
        for index in touched:
            part = self.parts[index]
            chosen = np.flatnonzero(which == index)
            groups.append((part, chosen, part.physical(positions[chosen] - part.start)))
        pieces, order = [], []
        for part, chosen, physical in groups:
            values = part.fragment.values(physical, [n for n in names if n != ROW_ID and n not in fetched])
            values.update({n: a.take(pa.array(chosen, type=pa.int64())) for n, a in fetched.items()})
            arrays = [pa.array(part.fragment.row_ids[physical], type=pa.int64()) if name == ROW_ID
                      else values[name] for name in names]
            pieces.append(pa.Table.from_arrays(arrays, schema=pa.schema(fields)))
            order.append(chosen)
        result = pa.concat_tables(pieces) if len(pieces) > 1 else pieces[0]
        placed = np.concatenate(order)
        if len(pieces) > 1 or not np.all(placed[1:] > placed[:-1]):
            inverse = np.empty(len(placed), dtype=np.int64)
            inverse[placed] = np.arange(len(placed))
            result = result.take(pa.array(inverse))
        return result

    def _fields_of(self, names: list[str]) -> list[pa.Field]:
        key = tuple(names)
        found = self._fields.get(key)
        if found is None:
            found = [pa.field(ROW_ID, pa.int64(), nullable=False) if n == ROW_ID else self.schema.field(n)
                     for n in names]
            if len(self._fields) < MASKS_KEPT:
                self._fields[key] = found
        return found

    def _numbers_at(self, name: str, index: int) -> np.ndarray | None:
        """Part `index`'s physical values of `name` as numpy when that column is `_rowid` or a narrow column
        of numbers without nulls (held once read, see `held_whole`); None otherwise. Kept per view, so a
        search's few results cost one lookup per value."""
        per_part = self._numbers.get(name)
        if per_part is None:
            per_part = self._numbers.setdefault(name, [None] * len(self.parts))
        found = per_part[index]
        if found is None:
            fragment = self.parts[index].fragment
            if name == ROW_ID:
                found = fragment.row_ids
            else:
                numbers = fragment.numbers(name) if held_whole(self.schema.field(name).type) else None
                found = False if numbers is None else numbers
            per_part[index] = found
        return None if found is False else found  # type: ignore[return-value]

    def _gather_few(self, positions: np.ndarray, which: np.ndarray, names: list[str], fields: list[pa.Field]
                    ) -> pa.Table | None:
        """A search's handful of rows read value by value from the parts' held columns (the serving path's
        common case: ids and other narrow numbers); None when some column is not of that kind or a part's
        files were not yet checked (the general path checks them)."""
        parts = which.tolist()
        if not self._verified:
            if not all(self.parts[i].fragment.verified for i in set(parts)):
                return None
            self._verified = all(p.fragment.verified for p in self.parts)
        offsets = (positions - self._starts[which]).tolist()
        for i, index in enumerate(parts):
            live = self.parts[index].live
            if live is not None:
                offsets[i] = int(live[offsets[i]])
        touched = set(parts)
        columns = []
        for name, f in zip(names, fields):
            sources = {index: self._numbers_at(name, index) for index in touched}
            if any(source is None for source in sources.values()):
                return None
            values = [sources[index][offset] for index, offset in zip(parts, offsets)]  # type: ignore[index]
            columns.append(pa.array(np.array(values, dtype=values[0].dtype), type=f.type))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))

    def _gather(self, positions: np.ndarray, which: np.ndarray, touched: np.ndarray, names: list[str],
                fields: list[pa.Field]) -> pa.Table | None:
        """The rows at `positions` (in parts `which`) when every column is a held column of numbers (or
        `_rowid`): each value read straight from its fragment's array, where a table per fragment cost
        ~1 ms for a search's 10 results spread over 10 fragments. None when some column is not of that kind."""
        if len(positions) > TAKE_FROM_DATASET_MAX:
            return None
        sources: list[dict[int, np.ndarray]] = []
        for name in names:
            arrays: dict[int, np.ndarray] = {}
            for index in touched.tolist():
                fragment = self.parts[index].fragment
                found = fragment.row_ids if name == ROW_ID else \
                    fragment.numbers(name) if fragment.holds(name) else None
                if found is None:
                    return None
                arrays[index] = found
            sources.append(arrays)
        physical = positions - self._starts[which]
        for index in touched.tolist():
            live = self.parts[index].live
            if live is not None:  # a part with deletions: its live rows' physical offsets
                chosen = which == index
                physical[chosen] = live[physical[chosen]]
        columns = []
        for arrays, f in zip(sources, fields):
            dtype = arrays[int(which[0])].dtype
            if len(arrays) == 1:
                out = next(iter(arrays.values()))[physical]
            else:  # (a search's handful of rows is `_gather_few`'s, value by value)
                out = np.empty(len(positions), dtype=dtype)
                for index, source in arrays.items():
                    chosen = which == index
                    out[chosen] = source[physical[chosen]]
            columns.append(pa.array(out, type=f.type))
        return pa.Table.from_arrays(columns, schema=pa.schema(fields))

    def columns(self, names: Sequence[str]) -> pa.Table:
        """Every row's values of a few columns (keys of a merge, sources of a re-embedding), in position
        order: one value per row of the named columns only."""
        return self.take(np.arange(self.num_rows, dtype=np.int64), names)

    def holds_vectors_at(self, column: str, positions: np.ndarray) -> bool:
        """Whether the fragments of these positions hold the column's vectors (or they are too many to read
        by row id)."""
        if len(positions) == 0 or len(positions) > TAKE_FROM_DATASET_MAX:
            return True
        which = np.unique(np.searchsorted(self._starts, np.asarray(positions, dtype=np.int64), side="right") - 1)
        return all(self.parts[i].fragment.holds_vectors(column) for i in which)

    @staticmethod
    def matrix_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """A vector column's values as a float32 matrix (zeros where null)."""
        return _matrix(column)[0]

    def vectors_at(self, column: str, positions: np.ndarray) -> np.ndarray:
        """The vectors at a few global positions (an index's candidates to refine), in that order: from the
        fragments' matrices when they hold them, otherwise read from the dataset in one take."""
        positions = np.asarray(positions, dtype=np.int64)
        dims = searchable_dims(field_at(self.schema, column))
        if len(positions) == 0:
            return np.empty((0, dims), dtype=np.float32)
        which = np.searchsorted(self._starts, positions, side="right") - 1
        touched = np.unique(which)
        if len(positions) <= TAKE_FROM_DATASET_MAX and not all(
                self.parts[i].fragment.holds_vectors(column) for i in touched):
            table = self.snapshot.table
            taken = table.take_rows(self.snapshot, [self.parts[i].ref for i in touched], self.row_ids[positions],
                                    [column])
            return _matrix(taken[column])[0]
        self.snapshot.table.verify(self.parts[i].ref for i in touched)
        result = np.empty((len(positions), dims), dtype=np.float32)
        for index in touched:
            part = self.parts[index]
            chosen = np.flatnonzero(which == index)
            result[chosen] = part.fragment.vectors(column)[0][part.physical(positions[chosen] - part.start)]
        return result

    def vector_batches(self, column: str, *, from_row_id: int = 0, sample: float = 1.0,
                       seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(vectors, row ids) of the rows with a vector in `column`, fragment by fragment, from a row id on (an
        index's catch-up), or a random `sample` fraction of them (an index's training set). Fragments whose
        vectors are not held are read in slices and let go: only one slice's vectors are in memory at a time."""
        rng = np.random.default_rng(seed)
        for part in self.parts:
            fragment = part.fragment
            keep = fragment.row_ids >= max(0, from_row_id)
            if part.live is not None:
                held = np.zeros(fragment.num_rows, dtype=bool)
                held[part.live] = True
                keep &= held
            if sample < 1.0:
                keep &= rng.random(fragment.num_rows) < sample
            if not keep.any():  # a fragment an index already covers is not read
                continue
            yield from fragment.read_vectors(column, keep)

    def vectors_of(self, column: str, *, from_row_id: int = 0, sample: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """What `vector_batches` yields, as one matrix (a training sample, a catch-up's few rows)."""
        dims = searchable_dims(field_at(self.schema, column))
        matrices, ids = [], []
        for matrix, row_ids in self.vector_batches(column, from_row_id=from_row_id, sample=sample):
            matrices.append(matrix)
            ids.append(row_ids)
        if not ids:
            return np.empty((0, dims), dtype=np.float32), np.empty(0, dtype=np.int64)
        return np.concatenate(matrices), np.concatenate(ids)


GATHER_ONE_BY_ONE = 64  # rows up to which a take reads each value by itself rather than part by part
HELD_WIDTH_MAX = 16  # bytes per row up to which a result column is held per fragment


def held_whole(kind: pa.DataType) -> bool:
    """Whether a result column is narrow enough to hold per fragment (ints, floats, bools, dates, times,
    decimals): a Lance take costs ~0.2-1 ms per fragment it touches, so an HNSW search that took its 10
    result ids from the dataset went from 1.4 to 11 ms."""
    try:
        width = kind.bit_width
    except ValueError:  # variable width (strings, lists) or nested: taken from the dataset
        return False
    return not pa.types.is_fixed_size_list(kind) and 0 < width <= 8 * HELD_WIDTH_MAX


def row_id_array(column: pa.ChunkedArray) -> np.ndarray:
    """Lance's `_rowid` (uint64, null for a deleted row) as int64 with -1 for none."""
    return column.cast(pa.int64()).fill_null(-1).to_numpy()


def multi_matrix(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A list-of-vectors column as (every row's vectors stacked as float32, the row each belongs to). A NULL
    or empty row owns none; a NULL vector inside a row is zeros (it matches nothing)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.list_value_length(array).fill_null(0).to_numpy(zero_copy_only=False).astype(np.int64)
    inner = array.flatten()  # the vectors of the non-null rows, slicing and null rows' backing skipped
    dims = inner.type.list_size
    values = inner.flatten() if inner.null_count == 0 else inner.fill_null([0.0] * dims).flatten()
    vectors = np.ascontiguousarray(values.to_numpy(zero_copy_only=False).astype(np.float32).reshape(-1, dims))
    return vectors, np.repeat(np.arange(len(array), dtype=np.int64), lengths)


def _matrix(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(column, pa.ChunkedArray):  # combine_chunks copies even a single chunk
        array = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    else:
        array = column
    dims = array.type.list_size
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    if array.null_count == 0 and array.offset == 0 and array.values.type == pa.float32():
        flat = array.values.to_numpy(zero_copy_only=False)
        return flat.reshape(-1, dims), valid
    matrix = np.zeros((len(array), dims), dtype=np.float32)
    if valid.any():
        present = array.filter(pa.array(valid))
        matrix[valid] = present.flatten().to_numpy(zero_copy_only=False).reshape(-1, dims)
    return matrix, valid


class TableViews:
    """One table's views, built on first use of a version from the fragments they share: each fragment's
    data (shared by the versions holding it) and the live masks of deletion files. At most VIEWS_PER_TABLE
    views are kept; what no kept view holds is let go. Owned by the table's owner (`tables.owner`), which
    retires the views a commit replaced."""

    def __init__(self, table: Table, max_filter_length: int = MAX_LENGTH) -> None:
        self.table = table
        self._max_filter_length = max_filter_length
        self._fragments: OrderedDict[tuple[object, ...], FragmentData] = OrderedDict()
        self._live: OrderedDict[tuple[object, ...], np.ndarray | None] = OrderedDict()
        self._views: OrderedDict[int, TableView] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: int | None = None) -> TableView:
        snapshot_version = version if version is not None else self.table.latest_version()
        with self._lock:
            view = self._views.get(snapshot_version)
            if view is not None:
                self._views.move_to_end(snapshot_version)
                return view
        view = self._build(self.table.snapshot(snapshot_version))
        with self._lock:
            self._views[snapshot_version] = view
            while len(self._views) > VIEWS_PER_TABLE:
                self._views.popitem(last=False)
            self._trim()
        return view

    def retire(self, latest: int, keep_fragments: Iterable[FragmentRef] = ()) -> None:
        """After a commit made `latest`: the views of older versions go, and so does the data of every
        fragment no kept view holds, except that of `keep_fragments` (the new version's, so that its view
        reuses every fragment the commit left as it was). A reader still holding an old view keeps it alive
        until it is done; a read of an older version builds its view again."""
        keep = {ref.data_key for ref in keep_fragments}
        with self._lock:
            for version in [v for v in self._views if v < latest]:
                del self._views[version]
            self._trim(keep)

    def clear(self) -> None:
        with self._lock:
            self._views.clear()
            self._fragments.clear()
            self._live.clear()

    def held(self) -> tuple[int, int, int]:
        """(views, fragments, live masks) held: what the leak tests count."""
        with self._lock:
            return len(self._views), len(self._fragments), len(self._live)

    def _build(self, snapshot: Snapshot) -> TableView:
        parts, start = [], 0
        for ref in snapshot.manifest.fragments:
            if ref.rows == 0:
                continue
            fragment = self._fragment(snapshot, ref)
            live = self._live_offsets(snapshot, ref)
            if (fragment.row_ids[live] if live is not None else fragment.row_ids).min(initial=0) < 0:
                # rows deleted when the fragment was first read are live again (a restore): read it again
                fragment = FragmentData(self.table, snapshot, ref)
                with self._lock:
                    self._fragments[fragment.key] = fragment
            parts.append(Part(fragment, live, start, ref))
            start += parts[-1].num_rows
        self.table.scrub(part.ref for part in parts)  # checksums ahead of the reads, in the background
        return TableView(snapshot, parts, self._max_filter_length)

    def _fragment(self, snapshot: Snapshot, ref: FragmentRef) -> FragmentData:
        key = fragment_key(snapshot, ref)
        with self._lock:
            found = self._fragments.get(key)
            if found is not None:
                self._fragments.move_to_end(key)
                return found
        built = FragmentData(self.table, snapshot, ref)
        with self._lock:
            self._fragments[key] = built
        return built

    def _live_offsets(self, snapshot: Snapshot, ref: FragmentRef) -> np.ndarray | None:
        if ref.deletion is None:
            return None
        key = (*ref.data_key, ref.deletion)
        with self._lock:
            found = self._live.get(key)
        if found is None:
            found = self.table.live_offsets(snapshot, ref)
            with self._lock:
                self._live[key] = found
        return found

    def _trim(self, keep: set[tuple[int, tuple[str, ...]]] | None = None) -> None:
        """Drops the fragment states and masks no kept view holds: memory follows the versions in use."""
        keep = keep or set()
        held = {p.fragment.key for v in self._views.values() for p in v.parts}
        for key, fragment in list(self._fragments.items()):
            if key not in held and fragment.ref.data_key not in keep:
                del self._fragments[key]
        live = {(*p.ref.data_key, p.ref.deletion) for v in self._views.values() for p in v.parts}
        for key in [k for k in self._live if k not in live]:
            del self._live[key]


def filter_row_ids(view: TableView, where: str) -> np.ndarray:
    """Row ids of the rows matching `where` (every row when empty)."""
    if not where.strip():
        return view.row_ids
    return view.row_ids[view.mask(where)]
