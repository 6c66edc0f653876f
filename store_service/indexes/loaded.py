"""The indexes one table has loaded from their files, shared by its searches and caught up with rows added
since they were built (row ids at or past what they cover). Owned by the table's owner, which unloads those
a commit no longer lists (a dropped or replaced index, a function switch, an overwrite or a restore)."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from pathlib import Path

from store_service.indexes.catalog import IndexEntry
from store_service.indexes.vector_index import VectorIndex
from store_service.search.table_view import TableView
from store_service.storage import fragments
from store_service.storage.table import Table


class LoadedIndexes:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._loaded: dict[str, tuple[VectorIndex, int]] = {}  # file path -> (index, row ids it covers below)
        self._lock = threading.Lock()

    def get(self, view: TableView, entry: IndexEntry) -> VectorIndex:
        """The entry's index, loaded once, with the rows of `view` it lacks added. One that already holds
        them is answered without the lock, so searches do not wait behind a catch-up for a newer version."""
        found = self._loaded.get(entry.file.path)
        if found is not None and found[1] >= view.next_row_id:
            return found[0]
        with self._lock:
            return self._get(view, entry)[0]

    def serialized(self, view: TableView, entry: IndexEntry) -> tuple[memoryview, int, int]:
        """(the entry's index as bytes, the row id below which it holds every row, its size), caught up with
        `view` and written out while no other search can catch it up further: the bytes hold exactly the
        rows the boundary says (a search of a newer version may have caught the index past `view`)."""
        with self._lock:
            index, covered = self._get(view, entry)
            return index.to_bytes(), covered, index.size

    def _get(self, view: TableView, entry: IndexEntry) -> tuple[VectorIndex, int]:
        """(the index, its boundary), caught up with `view` (the caller holds the lock)."""
        found = self._loaded.get(entry.file.path)
        if found is None:
            source = fragments.verified_source(self.table.files, entry.file, table=self.table.name)
            index = VectorIndex.read(entry.params, source, entry.dims) if isinstance(source, Path) else \
                VectorIndex.from_bytes(entry.params, source, entry.dims)
            found = (index, entry.next_row_id)
        index, covered = found
        boundary = view.next_row_id
        if boundary > covered:
            vectors, row_ids = view.vectors_of(entry.vector_column, from_row_id=covered)
            index.catch_up(vectors, row_ids)
            covered = boundary
        self._loaded[entry.file.path] = (index, covered)
        return index, covered

    def offer(self, entry: IndexEntry, index: VectorIndex, covered: int) -> None:
        """An index just built (or rebuilt) serves at once, without being read back from its file."""
        with self._lock:
            self._loaded[entry.file.path] = (index, covered)

    def loaded_files(self) -> set[str]:
        with self._lock:
            return set(self._loaded)

    def loaded_objects(self) -> list[int]:
        """The identities of the FAISS objects loaded (a catch-up or a new file keeps the same object)."""
        with self._lock:
            return sorted(id(index) for index, _ in self._loaded.values())

    def __len__(self) -> int:
        with self._lock:
            return len(self._loaded)

    def retain(self, kept: Iterable[IndexEntry] = ()) -> None:
        """Unloads every index other than `kept`'s. (A search of an older version that still lists one loads
        it again.)"""
        files = {e.file.path for e in kept}
        with self._lock:
            for path in [p for p in self._loaded if p not in files]:
                del self._loaded[path]

    def adopt(self, old: IndexEntry, new: IndexEntry) -> None:
        """The loaded index of `old` serves as that of `new` too (the same index written to a new file); the
        commit that lists `new` instead unloads `old`."""
        with self._lock:
            found = self._loaded.get(old.file.path)
            if found is not None:
                self._loaded[new.file.path] = (found[0], max(found[1], new.next_row_id))
