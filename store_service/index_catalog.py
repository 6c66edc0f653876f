"""A table's vector indexes on disk: built from a snapshot, stored as checksummed files under `_indexes/`,
listed in the manifest with the version and row-id boundary they cover, and caught up when loaded.

Rows committed after an index was built (row ids at or past its `next_row_id`) are added to the loaded
index; deleted rows are excluded at search time. A loaded index may hold rows newer than an older pinned
snapshot: the search layer keeps only row ids present in the snapshot it reads.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow.compute as pc

from store_service.errors import Aborted, AlreadyExists, InvalidArgument, NotFound
from store_service.schema import pick_vector_column
from store_service.storage import fragments
from store_service.storage.fragments import INDEXES_DIR, ROW_ID
from store_service.storage.manifest import FileRef, Manifest
from store_service.storage.table import Snapshot, Table, extends
from store_service.vector_index import IndexParams, VectorIndex



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
                   int(body["next_row_id"]), int(body["dims"]), FileRef(**body["file"]))


def entries(manifest: Manifest) -> list[IndexEntry]:
    return [IndexEntry.from_json(e) for e in manifest.indexes]


def vectors_of(snapshot: Snapshot, column: str, *, from_row_id: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(vectors, row ids) of the snapshot's rows with a non-null vector in `column`, from a row id on."""
    data = snapshot.to_arrow(with_row_ids=True).select([column, ROW_ID])
    if from_row_id:
        data = data.filter(pc.greater_equal(data.column(ROW_ID), from_row_id))
    data = data.filter(pc.is_valid(data.column(column)))
    dims = snapshot.schema.field(column).type.list_size
    if data.num_rows == 0:
        return np.empty((0, dims), dtype=np.float32), np.empty(0, dtype=np.int64)
    flat = data.column(column).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, dims).astype(np.float32, copy=False), data.column(ROW_ID).to_numpy()


def create_index(table: Table, params: IndexParams, *, vector_column: str = "", name: str = "",
                 replace: bool = False) -> tuple[IndexEntry, Manifest]:
    snapshot = table.snapshot()
    column = pick_vector_column(snapshot.schema, vector_column)
    name = name or f"{column}_idx"
    vectors, row_ids = vectors_of(snapshot, column)
    if len(row_ids) == 0:
        raise InvalidArgument(f"column {column!r} has no vectors to train an index on", reason="EMPTY_TABLE",
                              column=column)
    index = VectorIndex.build(params, vectors, row_ids)
    ref = fragments.write_file(table.directory, index.to_bytes(), INDEXES_DIR, ".faiss", index.size)
    entry = IndexEntry(name, column, params, snapshot.version, snapshot.manifest.next_row_id, vectors.shape[1], ref)

    def change(base: Manifest) -> Manifest:
        if not extends(snapshot.manifest, base):
            raise Aborted(f"table {table.name!r} was overwritten or restored while the index was built; build it "
                          "again", reason="WRITE_CONFLICT", table=table.name)
        kept = []
        for existing in entries(base):
            clash = existing.name == name or existing.vector_column == column
            if clash and not replace:
                raise AlreadyExists(f"column {column!r} already has index {existing.name!r}; pass replace to "
                                    "rebuild it", reason="INDEX_EXISTS", index=existing.name)
            if not clash:
                kept.append(existing.to_json())
        return base.successor(indexes=tuple(kept) + (entry.to_json(),), operation="create_index")

    try:
        return entry, table.commit(change)
    except BaseException:  # refused (INDEX_EXISTS, WRITE_CONFLICT) or failed: the file is no one's
        (table.directory / ref.path).unlink(missing_ok=True)
        raise


def drop_index(table: Table, name: str) -> Manifest:
    def change(base: Manifest) -> Manifest:
        remaining = [e.to_json() for e in entries(base) if e.name != name]
        if len(remaining) == len(base.indexes):
            raise NotFound(f"table {table.name!r} has no index {name!r}", reason="INDEX_NOT_FOUND", index=name)
        return base.successor(indexes=tuple(remaining), operation="drop_index")

    return table.commit(change)


class LoadedIndexes:
    """Indexes loaded from their files, shared by searches and caught up with newer rows as they come."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], tuple[VectorIndex, int]] = {}
        self._lock = threading.Lock()

    def get(self, table: Table, snapshot: Snapshot, entry: IndexEntry) -> VectorIndex:
        key = (str(table.directory), entry.file.path)
        with self._lock:
            found = self._loaded.get(key)
            if found is None:
                data = fragments.read_file(table.directory, entry.file, table=table.name)
                found = (VectorIndex.from_bytes(entry.params, data, entry.dims), entry.next_row_id)
            index, covered = found
            boundary = snapshot.manifest.next_row_id
            if boundary > covered:
                vectors, row_ids = vectors_of(snapshot, entry.vector_column, from_row_id=covered)
                index.add(vectors, row_ids)
                covered = boundary
            self._loaded[key] = (index, covered)
            return index
