"""A table's FAISS indexes: built from a view, stored beside the dataset as checksummed files
(`<table>.lance/_vectorlane/indexes/`), listed in the version's index catalog with the version and row-id
boundary they cover, labelled with Lance's stable row ids, and caught up when loaded.

Rows committed after an index was built (row ids at or past its `next_row_id`; Lance assigns ids in
increasing order and never reuses one, a restore included) are added to the loaded index; deleted rows are
excluded at search time. A loaded index may hold rows newer than an older pinned version: the search layer
keeps only row ids present in the view it reads.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from store_service.errors import AlreadyExists, InvalidArgument, NotFound
from store_service.schema import field_at, is_multivector, pick_vector_column, searchable_dims
from store_service.storage import fragments
from store_service.storage.fragments import INDEXES_DIR, FileRef
from store_service.storage.manifest import Manifest
from store_service.storage.table import Table
from store_service.search.table_view import TableView
from store_service.search.vector_index import IndexParams, VectorIndex


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
    return [IndexEntry.from_json(e) for e in manifest.indexes]


def create_index(table: Table, view: TableView, params: IndexParams, *, vector_column: str = "", name: str = "",
                 replace: bool = False) -> tuple[IndexEntry, Manifest]:
    """Builds an index on `view` (the latest version) and lists it in a new version."""
    column = pick_vector_column(view.schema, vector_column)
    if is_multivector(field_at(view.schema, column)) and params.metric != "cosine":
        raise InvalidArgument(f"column {column!r} holds lists of vectors, compared by cosine (MaxSim): index it "
                              "with the cosine metric", reason="INVALID_METRIC", metric=params.metric)
    name = name or f"{column}_idx"
    index = build(view, column, params)
    ref = fragments.write_file(table.directory, index.to_bytes(), INDEXES_DIR, ".faiss", index.size)
    entry = IndexEntry(name, column, params, view.version, view.next_row_id, index.dims, ref)

    def change(base: Manifest) -> list[dict[str, Any]]:
        kept = []
        for existing in entries(base):
            clash = existing.name == name or existing.vector_column == column
            if clash and not replace:
                raise AlreadyExists(f"column {column!r} already has index {existing.name!r}; pass replace to "
                                    "rebuild it", reason="INDEX_EXISTS", index=existing.name)
            if not clash:
                kept.append(existing.to_json())
        return kept + [entry.to_json()]

    try:
        return entry, table.set_indexes(change, read_at=view.snapshot.manifest)
    except BaseException:  # refused (INDEX_EXISTS, WRITE_CONFLICT) or failed: the file is no one's
        (table.directory / ref.path).unlink(missing_ok=True)
        raise


def build(view: TableView, column: str, params: IndexParams) -> VectorIndex:
    """An index over the view's vectors in `column`, trained on a random sample and filled fragment by
    fragment, so a table whose vectors do not fit in memory can be indexed (IVF_PQ keeps ~1/32 of them)."""
    dims = searchable_dims(field_at(view.schema, column))
    empty = InvalidArgument(f"column {column!r} has no vectors to train an index on", reason="EMPTY_TABLE",
                            column=column)
    if view.num_rows == 0:
        raise empty
    index = VectorIndex.empty(params, dims, view.num_rows)
    if index.training_rows:
        sample, _ = view.vectors_of(column, sample=min(1.0, 1.1 * index.training_rows / view.num_rows))
        if len(sample) == 0:
            raise empty
        if len(sample) > index.training_rows:  # drawn a little large so that it is rarely short
            sample = sample[np.random.default_rng(0).choice(len(sample), index.training_rows, replace=False)]
        index.train(sample)
        del sample
    for vectors, row_ids in view.vector_batches(column):
        index.add(vectors, row_ids)
    if index.size == 0:
        raise empty
    return index


def drop_index(table: Table, name: str) -> Manifest:
    def change(base: Manifest) -> list[dict[str, Any]]:
        remaining = [e.to_json() for e in entries(base) if e.name != name]
        if len(remaining) == len(base.indexes):
            raise NotFound(f"table {table.name!r} has no index {name!r}", reason="INDEX_NOT_FOUND", index=name)
        return remaining

    return table.set_indexes(change, operation="drop_index")


class LoadedIndexes:
    """Indexes loaded from their files, shared by searches and caught up with newer rows as they come."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], tuple[VectorIndex, int]] = {}
        self._lock = threading.Lock()

    def get(self, table: Table, view: TableView, entry: IndexEntry) -> VectorIndex:
        key = (str(table.directory), entry.file.path)
        with self._lock:
            found = self._loaded.get(key)
            if found is None:
                path = fragments.verified_path(table.directory, entry.file, table=table.name)
                found = (VectorIndex.read(entry.params, path, entry.dims), entry.next_row_id)
            index, covered = found
            boundary = view.next_row_id
            if boundary > covered:
                vectors, row_ids = view.vectors_of(entry.vector_column, from_row_id=covered)
                index.catch_up(vectors, row_ids)
                covered = boundary
            self._loaded[key] = (index, covered)
            return index

    def __len__(self) -> int:
        return len(self._loaded)

    def retain(self, table: Table, kept: Iterable[IndexEntry] = ()) -> None:
        """Unloads `table`'s indexes other than `kept`: those of a dropped table, index or replaced index.
        (A search of an older version that still lists one loads it again.)"""
        directory, files = str(table.directory), {e.file.path for e in kept}
        with self._lock:
            for key in [k for k in self._loaded if k[0] == directory and k[1] not in files]:
                del self._loaded[key]

    def adopt(self, table: Table, old: IndexEntry, new: IndexEntry) -> None:
        """The loaded index of `old` serves as that of `new` (the same index written to a new file)."""
        with self._lock:
            found = self._loaded.pop((str(table.directory), old.file.path), None)
            if found is not None:
                self._loaded[(str(table.directory), new.file.path)] = (found[0], max(found[1], new.next_row_id))


def catch_up(table: Table, view: TableView, loaded: LoadedIndexes) -> list[IndexEntry]:
    """Writes, for each index of `view` that rows were added to since it was built, a file covering them,
    and lists the new files in one version (`optimize:indexes`); the entries written."""
    stale = [e for e in entries(view.snapshot.manifest) if e.next_row_id < view.next_row_id]
    if not stale:
        return []
    fresh: dict[str, IndexEntry] = {}
    try:
        for entry in stale:
            index = loaded.get(table, view, entry)
            ref = fragments.write_file(table.directory, index.to_bytes(), INDEXES_DIR, ".faiss", index.size)
            fresh[entry.name] = dataclasses.replace(entry, version=view.version, next_row_id=view.next_row_id,
                                                    file=ref)

        def change(base: Manifest) -> list[dict[str, Any]]:  # an index replaced meanwhile keeps its own file
            return [fresh[e.name].to_json() if e.name in fresh and e in stale else e.to_json()
                    for e in entries(base)]

        table.set_indexes(change, read_at=view.snapshot.manifest, operation="optimize:indexes")
    except BaseException:
        for entry in fresh.values():
            (table.directory / entry.file.path).unlink(missing_ok=True)
        raise
    for entry in stale:
        loaded.adopt(table, entry, fresh[entry.name])
    return list(fresh.values())
