"""The open tables of one data directory: one owner per table, made on first use and closed when the table
is dropped or replaced by a create, so nothing of a table outlives it."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pyarrow as pa

from store_service.errors import TableNotFound, TableReplaced
from store_service.expressions.grammar import MAX_LENGTH
from store_service.storage.location import Location
from store_service.storage.table import TableStore
from store_service.storage.names import check_table_name
from store_service.tables.owner import TableOwner


class Tables:
    def __init__(self, root: Location | Path, max_filter_length: int = MAX_LENGTH,
                 read_consistency_interval: float | None = 0.0) -> None:
        self.store = TableStore(root)
        self.root = self.store.root
        self._max_filter_length = max_filter_length
        self._interval = read_consistency_interval
        self._owners: dict[str, TableOwner] = {}
        self._dropping: set[str] = set()  # names whose owner is closing: no new owner until they are gone
        self._listed: tuple[float, tuple[str, ...]] | None = None  # (when, names): the last listing
        self._lock = threading.Lock()

    def names(self, max_age: float = 0.0) -> list[str]:
        """The tables' names; `max_age` > 0: a listing made at most that many seconds ago will do (what
        metrics scrapes use, so that they do not list a bucket each time). Creates and drops made here are
        always in it."""
        now = time.monotonic()
        with self._lock:
            listed = self._listed
        if max_age > 0 and listed is not None and now - listed[0] < max_age:
            return list(listed[1])
        names = self.store.names()
        with self._lock:
            self._listed = (now, tuple(names))
        return names

    def exists(self, name: str) -> bool:
        return self.store.exists(name)

    def owner(self, name: str) -> TableOwner:
        """The table's owner; TABLE_NOT_FOUND when there is no such table. On object storage, where other
        store processes drop and create tables too, the owner's version check (once per read-consistency
        interval) also finds a table dropped there (its owner is closed) or dropped and created again (its
        owner is closed and one for the new table made)."""
        check_table_name(name)
        found = self._owner(name)
        if not self.root.on_object_storage:
            return found
        try:
            found.latest_version()
        except TableNotFound:
            self._forget(found)
            raise
        except TableReplaced:
            self._forget(found)
            found = self._owner(name)
        return found

    def _owner(self, name: str) -> TableOwner:
        with self._lock:
            dropping = name in self._dropping
        if dropping:
            raise TableNotFound(f"no table named {name!r}", table=name)
        table = self.store.open(name)  # TABLE_NOT_FOUND; the table now under this name (a drop forgets it)
        with self._lock:
            if name in self._dropping:
                raise TableNotFound(f"no table named {name!r}", table=name)
            found = self._owners.get(name)
            if found is None or found.closed or found.table is not table:
                replaced, found = found, TableOwner(table, self._max_filter_length, self._interval)
                self._owners[name] = found
            else:
                replaced = None
        if replaced is not None and not replaced.closed:
            replaced.close()  # what the table it served held goes with it
        return found

    def _forget(self, owner: TableOwner) -> None:
        """Lets go of an owner whose table another process dropped (or replaced), and of its table handle."""
        with self._lock:
            if self._owners.get(owner.name) is owner:
                del self._owners[owner.name]
        self.store.forget(owner.name, owner.table)
        owner.close()

    def create(self, name: str, schema: pa.Schema, rows: pa.Table | None) -> TableOwner:
        self.store.create(name, schema, rows)
        self._forget_listing()
        return self.owner(name)

    def _forget_listing(self) -> None:
        with self._lock:
            self._listed = None

    def drop(self, name: str) -> None:
        """Closes the table's owner (its operations stopped, its views and indexes let go), then removes it."""
        check_table_name(name)
        if not self.store.exists(name):
            self.store.drop(name)  # TABLE_NOT_FOUND
        with self._lock:
            owner = self._owners.pop(name, None)
            self._dropping.add(name)
        try:
            if owner is not None:
                owner.close()
            self.store.drop(name)
        finally:
            with self._lock:
                self._dropping.discard(name)
                self._listed = None

    def open_owners(self) -> list[TableOwner]:
        with self._lock:
            return list(self._owners.values())

    def close(self) -> None:
        for owner in self.open_owners():
            owner.close()
