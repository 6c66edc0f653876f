"""One open table and everything the store holds for it, the role Lance's dataset plays: the dataset handle
(`storage.table.Table`) with its writer, the serving state built from its fragments (`TableViews`), the
indexes it has loaded (`LoadedIndexes`) and its running re-embedding operations.

Every change goes through `commit(operation)`, which commits the typed operation and then releases what it
replaced: views of older versions, fragment data no version in use holds, and loaded indexes the new
version no longer lists (a dropped or replaced index, a function switch, an overwrite, a restore). Dropping
the table closes its owner, which lets go of all of it. So what a table holds follows its latest version
by construction, not by each caller remembering to clean up.

Two locks, with one job each: the table's writer lock (`Table.write_lock`), held only to check an operation
against the latest version and commit it; and `changing()`, which orders read-modify-write changes (update,
delete, merge_insert, schema changes) in this process so they do not conflict with each other. Embedding and
staging happen before the writer lock, never under it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from store_service.indexes.catalog import entries
from store_service.indexes.loaded import LoadedIndexes
from store_service.indexes.vector_index import VectorIndex
from store_service.expressions.grammar import MAX_LENGTH
from store_service.search.table_view import TableView, TableViews
from store_service.storage.manifest import Manifest
from store_service.storage.operations import Moved, Operation
from store_service.storage.table import Table
from store_service.tables import consistency

log = logging.getLogger(__name__)

PREPARE_ATTEMPTS = 8  # preparations of one change before a table that keeps moving answers ABORTED


@dataclass(frozen=True)
class Held:
    """What an owner holds: counted by the tests that prove a change lets go of what it replaced."""

    views: int
    fragments: int
    live_masks: int
    indexes: int
    operations: int


@dataclass
class RunningOperation:
    thread: threading.Thread
    stop: threading.Event  # set by a shutdown (the record stays RUNNING and resumes) or by a cancel
    cancel: threading.Event


class TableOwner:
    def __init__(self, table: Table, max_filter_length: int = MAX_LENGTH,
                 read_consistency_interval: float | None = 0.0) -> None:
        self.table = table
        self.name = table.name
        self.views = TableViews(table, max_filter_length)
        self.indexes = LoadedIndexes(table)
        self.running: dict[str, RunningOperation] = {}  # operation name -> its thread
        self.read_consistency_interval = read_consistency_interval
        self._changing = threading.Lock()
        self._settling = threading.Lock()
        self._settled = 0  # the newest version settled
        self._lock = threading.Lock()
        self._known: tuple[float, int] | None = None  # (when checked, latest version then)
        self.closed = False

    # ----- reading ------------------------------------------------------------------------------------
    def latest_version(self) -> int:
        """The latest version as reads see it: checked against the dataset (where other processes commit
        too) at most once per read-consistency interval (the call's own, else the store's: 0 checks every
        time, None only sees this process's commits). This process's own commits are always seen."""
        interval = consistency.interval_for_call(self.read_consistency_interval)
        known = self._known
        if known is not None and (interval is None or (interval > 0 and time.monotonic() - known[0] < interval)):
            return known[1]
        return self._saw(self.table.latest_version())

    def _saw(self, version: int) -> int:
        """Records `version` as seen now, unless a newer one was (a reader that looked before a commit must
        not make the owner forget it); returns the newest seen."""
        with self._lock:
            if self._known is None or version >= self._known[1]:
                self._known = (time.monotonic(), version)
            else:
                self._known = (time.monotonic(), self._known[1])
            return self._known[1]

    def view(self, version: int | None = None) -> TableView:
        """The view of `version` (the latest when None or 0)."""
        return self.views.get(version or self.latest_version())

    def latest_view(self) -> TableView:
        """The view of the version latest now, whatever the read-consistency interval: what a change reads."""
        return self.views.get(self._saw(self.table.latest_version()))

    def index_for(self, view: TableView, column: str) -> VectorIndex | None:
        """The loaded index the view's catalog lists for `column`, caught up with the view's rows."""
        for entry in entries(view.snapshot.manifest):
            if entry.vector_column == column:
                return self.indexes.get(view, entry)
        return None

    def warm(self) -> TableView:
        """Builds the latest version's view and loads every index its catalog lists: what a replica does
        before it reports ready, so that its first searches cost what later ones do."""
        view = self.latest_view()
        for entry in entries(view.snapshot.manifest):
            self.indexes.get(view, entry)
        return view

    # ----- changing -----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def changing(self) -> Iterator[None]:
        """Orders a read-modify-write change against the others of this process (not against readers)."""
        with self._changing:
            yield

    def commit(self, operation: Operation) -> Manifest:
        """Commits one typed operation (see `storage.operations`) and releases what it replaced."""
        committed = self.table.commit(operation)
        self._saw(committed.version)
        self.settle(committed)
        return committed

    def commit_prepared(self, prepare: Callable[[int], Operation], attempts: int = PREPARE_ATTEMPTS) -> Manifest:
        """Prepares an operation (`prepare(attempt)`, outside every lock) and commits it; when the table moved
        in a way a new preparation absorbs (Moved), prepares again, up to `attempts` times, then answers
        ABORTED WRITE_CONFLICT."""
        for attempt in range(attempts):
            operation = prepare(attempt)
            try:
                return self.commit(operation)
            except Moved:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def settle(self, latest: Manifest) -> None:
        """Lets go of what `latest` (a version just committed) no longer needs; for a table being read, builds
        its view and catches its loaded indexes up now, so that the first search after a commit pays only
        what a steady one does (the committing call pays for the rows it added)."""
        with self._settling:  # commits settle one at a time, and one a later commit passed is skipped
            if latest.version < self._settled:
                return
            self._settled = latest.version
            served = self.views.held()[0] > 0
            self.views.retire(latest.version, latest.fragments)
            listed = entries(latest)
            self.indexes.retain(listed)
            if not served or self.closed:
                return
            try:
                view = self.views.get(latest.version)
                loaded = self.indexes.loaded_files()
                for entry in listed:
                    if entry.file.path in loaded:
                        self.indexes.get(view, entry)
            except Exception:  # noqa: BLE001 - the commit stands; the next read builds the view and reports why
                log.warning("table %s: serving state for version %d not prepared", self.name, latest.version,
                            exc_info=True)

    # ----- operations ---------------------------------------------------------------------------------
    def register(self, name: str, running: RunningOperation) -> bool:
        """Records a running operation; False when one of that name runs already or the owner is closed."""
        with self._lock:
            if self.closed or name in self.running:
                return False
            self.running[name] = running
            return True

    def unregister(self, name: str) -> None:
        with self._lock:
            self.running.pop(name, None)

    def running_operation(self, name: str) -> RunningOperation | None:
        with self._lock:
            return self.running.get(name)

    # ----- holding ------------------------------------------------------------------------------------
    def held(self) -> Held:
        views, fragments, live = self.views.held()
        with self._lock:
            operations = len(self.running)
        return Held(views, fragments, live, len(self.indexes), operations)

    def close(self, timeout: float = 30.0) -> None:
        """Stops the table's operations (a drop: they end with it) and lets go of everything it holds."""
        with self._lock:
            self.closed = True
            running = list(self.running.values())
        for operation in running:
            operation.stop.set()  # stops between chunks; the table's directory goes with its records
        for operation in running:
            if operation.thread is not threading.current_thread():
                operation.thread.join(timeout)
        self.views.clear()
        self.indexes.retain(())
