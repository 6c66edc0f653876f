"""A table's FAISS indexes: built one way (`build`, from a view or from a function switch's new vectors),
stored beside the dataset as checksummed files (`<table>.lance/_vectorlane/indexes/`), listed in the
version's index catalog with the version and row-id boundary they cover, labelled with Lance's stable row
ids, and caught up when loaded (`loaded.py`). Creating, replacing, dropping and catching up are typed
commits (`storage.operations`) that the table's owner makes.

Rows committed after an index was built (row ids at or past its `next_row_id`; Lance assigns ids in
increasing order and never reuses one, a restore included) are added to the loaded index; deleted rows are
excluded at search time. A loaded index may hold rows newer than an older pinned version: the search layer
keeps only row ids present in the view it reads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.schema import field_at, is_multivector, pick_vector_column, searchable_dims
from store_service.storage import fragments
from store_service.storage.fragments import INDEXES_DIR, FileRef
from store_service.storage.manifest import Manifest
from store_service.storage.table import Table
from store_service.storage.operations import CatchUpIndexes, CommittedNotDurable, CreateIndex, DropIndex
from store_service.search.table_view import TableView
from store_service.indexes.vector_index import IndexParams, VectorIndex

if TYPE_CHECKING:
    from store_service.indexes.loaded import LoadedIndexes
    from store_service.tables.owner import TableOwner


@dataclass(frozen=True)
class IndexEntry:
    name: str
    vector_column: str
    params: IndexParams
    version: int  # the table version it was built from
    next_row_id: int  # rows with smaller ids were in that version
    dims: int
    file: FileRef

    def to_json(self) -> dict[str, Any]:
        params = dataclasses.asdict(self.params)
        return {"name": self.name, "vector_column": self.vector_column, "params": params, "version": self.version,
                "next_row_id": self.next_row_id, "dims": self.dims, "file": dataclasses.asdict(self.file)}

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "IndexEntry":
        return cls(body["name"], body["vector_column"], IndexParams(**body["params"]), int(body["version"]),
                   int(body["next_row_id"]), int(body["dims"]), FileRef.from_json(body["file"]))


def entries(manifest: Manifest) -> list[IndexEntry]:
    """The version's index catalog (read once per manifest object: every search asks)."""
    found = _ENTRIES.get(id(manifest))
    if found is None or found[0] is not manifest:
        found = (manifest, tuple(IndexEntry.from_json(e) for e in manifest.indexes))
        with _ENTRIES_LOCK:
            if len(_ENTRIES) >= 256:
                _ENTRIES.clear()
            _ENTRIES[id(manifest)] = found
    return list(found[1])


_ENTRIES: dict[int, tuple[Manifest, tuple[IndexEntry, ...]]] = {}  # by identity; the entry keeps its manifest
_ENTRIES_LOCK = threading.Lock()


def create(owner: TableOwner, params: IndexParams, *, vector_column: str = "", name: str = "",
           replace: bool = False) -> tuple[IndexEntry, Manifest]:
    """Builds an index on the latest version and lists it in a new version (replacing the column's index
    when `replace`); it serves at once, without being read back from its file."""
    view = owner.latest_view()
    entry, index, operation = prepare_create(owner.table, view, params, vector_column=vector_column, name=name,
                                             replace=replace)
    try:
        committed = owner.commit(operation)  # the index it replaced is unloaded
    except CommittedNotDurable:
        raise  # committed: its files are the version's
    except BaseException:  # refused (INDEX_EXISTS, WRITE_CONFLICT) or failed: the file is no one's
        owner.table.remove_files([entry.file.path])
        raise
    owner.indexes.offer(entry, index, view.next_row_id)
    return entry, committed


def drop(owner: TableOwner, name: str) -> Manifest:
    return owner.commit(DropIndex(name))


def catch_up(owner: TableOwner) -> list[IndexEntry]:
    """Each index that rows were added to since it was built written again covering them, in one version
    (`optimize:indexes`); the loaded indexes serve on under their new files."""
    prepared = prepare_catch_up(owner.table, owner.latest_view(), owner.indexes)
    if prepared is None:
        return []
    operation, stale, fresh = prepared
    for old, new in zip(stale, fresh):
        owner.indexes.adopt(old, new)
    try:
        owner.commit(operation)
    except CommittedNotDurable:
        raise  # committed: its files are the version's
    except BaseException:
        owner.table.remove_files(e.file.path for e in fresh)
        raise
    return fresh


def check_column(schema: pa.Schema, column: str, params: IndexParams) -> None:
    if is_multivector(field_at(schema, column)) and params.metric != "cosine":
        raise InvalidArgument(f"column {column!r} holds lists of vectors, compared by cosine (MaxSim): index it "
                              "with the cosine metric", reason="INVALID_METRIC", metric=params.metric)


def prepare_create(table: Table, view: TableView, params: IndexParams, *, vector_column: str = "", name: str = "",
                   replace: bool = False) -> tuple[IndexEntry, VectorIndex, CreateIndex]:
    """An index built on `view` (the latest version) and written to its file: the operation that lists it."""
    column = pick_vector_column(view.schema, vector_column)
    check_column(view.schema, column, params)
    dims = searchable_dims(field_at(view.schema, column))
    if view.num_rows == 0:
        raise _nothing_to_train(column)
    index = build(params, dims, view.num_rows, lambda fraction: view.vectors_of(column, sample=fraction)[0],
                  view.vector_batches(column), column)
    entry = write(table, IndexEntry(name or f"{column}_idx", column, params, view.version, view.next_row_id,
                                    index.dims, FileRef("", 0, "", 0)), index)
    return entry, index, CreateIndex(entry.to_json(), replace, view.snapshot.manifest)


def write(table: Table, entry: IndexEntry, index: VectorIndex) -> IndexEntry:
    """`entry` with the file `index` was written to (durable and checksummed)."""
    ref = fragments.write_file(table.files, index.to_bytes(), INDEXES_DIR, ".faiss", index.size)
    return dataclasses.replace(entry, file=ref)


def _nothing_to_train(column: str) -> InvalidArgument:
    return InvalidArgument(f"column {column!r} has no vectors to train an index on", reason="EMPTY_TABLE",
                           column=column)


def build(params: IndexParams, dims: int, rows: int, sample: Callable[[float], np.ndarray],
          batches: Iterable[tuple[np.ndarray, np.ndarray]], column: str) -> VectorIndex:
    """The one way an index is built: trained on a random sample (`sample(fraction)` of the `rows` vectors)
    and filled batch by batch, so a table whose vectors do not fit in memory can be indexed (IVF_PQ keeps
    ~1/32 of them). A create_index builds from the table's view, a function switch from its new vectors."""
    if rows == 0:
        raise _nothing_to_train(column)
    index = VectorIndex.empty(params, dims, rows)
    if index.training_rows:
        drawn = sample(min(1.0, 1.1 * index.training_rows / rows))
        if len(drawn) == 0:
            raise _nothing_to_train(column)
        if len(drawn) > index.training_rows:  # drawn a little large so that it is rarely short
            drawn = drawn[np.random.default_rng(0).choice(len(drawn), index.training_rows, replace=False)]
        index.train(drawn)
        del drawn
    for vectors, row_ids in batches:
        index.add(vectors, row_ids)
    if index.size == 0:
        raise _nothing_to_train(column)
    return index


def prepare_catch_up(table: Table, view: TableView, loaded: "LoadedIndexes") -> tuple[CatchUpIndexes, list[IndexEntry],
                                                                                     list[IndexEntry]] | None:
    """For each index of `view` that rows were added to since it was built, a file covering them: the
    operation listing them, (the stale entries, the fresh ones). None when every index is current."""
    stale = [e for e in entries(view.snapshot.manifest) if e.next_row_id < view.next_row_id]
    if not stale:
        return None
    fresh: list[IndexEntry] = []
    try:
        for entry in stale:
            data, covered, rows = loaded.serialized(view, entry)  # the boundary the bytes really hold
            ref = fragments.write_file(table.files, data, INDEXES_DIR, ".faiss", rows)
            fresh.append(dataclasses.replace(entry, version=view.version, next_row_id=covered, file=ref))
    except BaseException:
        table.remove_files(e.file.path for e in fresh)
        raise
    operation = CatchUpIndexes({e.name: e.to_json() for e in fresh}, {e.name: e.to_json() for e in stale},
                               view.snapshot.manifest)
    return operation, stale, fresh
