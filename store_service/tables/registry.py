"""The open tables of one data directory: one owner per table, made on first use and closed when the table
is dropped or replaced by a create, so nothing of a table outlives it."""

from __future__ import annotations

import threading
from pathlib import Path

import pyarrow as pa

from store_service.errors import TableNotFound
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
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return self.store.names()

    def exists(self, name: str) -> bool:
        return self.store.exists(name)

    def owner(self, name: str) -> TableOwner:
        """The table's owner; TABLE_NOT_FOUND when there is no such table."""
        check_table_name(name)
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
                found = self._owners[name] = TableOwner(table, self._max_filter_length, self._interval)
            return found

    def create(self, name: str, schema: pa.Schema, rows: pa.Table | None) -> TableOwner:
        self.store.create(name, schema, rows)
        return self.owner(name)

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

    def open_owners(self) -> list[TableOwner]:
        with self._lock:
            return list(self._owners.values())

    def close(self) -> None:
        for owner in self.open_owners():
            owner.close()
