"""Changing, adding or dropping a table's embedding function, with the re-embedding done in the background.

An operation embeds the source column of every row the table holds, in chunks that are committed to the
operation's own files (never to the table) as they finish, so a store killed mid-way resumes where it was and
never embeds a finished chunk again. Reading, embedding and writing overlap: up to `IN_FLIGHT` chunks are
being embedded (each streamed to the embed service in large batches) while the finished one is written.
Meanwhile the table is untouched and fully usable; rows added meanwhile get old vectors from their add and
new ones from a catch-up pass. When every row is covered, the fragments are rewritten with the new column,
the column's index is rebuilt (retrained when the dimension changes), and one commit switches the table.
Rows that arrived after the last pass are embedded inside that commit, so no row is missed at the switch.
Older versions keep the old column and function: restore brings them back.

An embed-service failure beyond its retries pauses the operation with the error (ResumeOperation continues
it); cancelling removes its work and leaves the table exactly as it was.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.embedder import Embedder
from store_service.errors import Aborted, FailedPrecondition, InvalidArgument, ServiceError
from store_service.indexes import catalog
from store_service.indexes.catalog import IndexEntry, entries
from store_service.indexes.vector_index import VectorIndex
from store_service.functions.operations import (ADD, CANCELLED, CHANGE, DROP, FAILED, OPERATIONS_DIR, PAUSED, RUNNING,
                                      SUCCEEDED, Operation, OperationError, OperationLog)
from store_service.schema import FunctionConfig, functions_of, vector_type, with_functions
from store_service.storage import fragments, leases, manifest
from store_service.storage.fragments import ROW_ID, FileRef
from store_service.storage.manifest import FragmentRef
from store_service.storage.operations import CommittedNotDurable, DataKey, RewriteColumns
from store_service.storage.table import Snapshot, Table
from store_service.search.table_view import TableView, row_id_array
from store_service.tables.owner import RunningOperation, TableOwner

log = logging.getLogger(__name__)

CHUNK_ROWS = 2048  # rows embedded and committed to the operation's files at a time
IN_FLIGHT = 3  # chunks being embedded at once while the finished ones are written
SWITCH_ATTEMPTS = 5  # catch-up passes before the switch embeds the remaining rows under the table's lock


class Observer(Protocol):
    """What the operations report as they go (the store's metrics)."""

    def rows_reembedded(self, kind: str, rows: int) -> None: ...

    def run_ended(self, kind: str, state: str) -> None: ...


@dataclass(frozen=True)
class Plan:
    """What the table looks like after the operation: its schema (with the function metadata)."""

    schema: pa.Schema
    column: str
    function: FunctionConfig | None


def plan(schema: pa.Schema, kind: str, column: str, function: FunctionConfig | None, dims: int,
         secret_settings: tuple[str, ...] = ()) -> Plan:
    """Checks the change against the table's schema and returns the schema after it; refused before any work."""
    functions = [f for f in functions_of(schema) if f.vector_column != column]
    index = schema.get_field_index(column)
    if kind == ADD:
        if index >= 0:
            raise InvalidArgument(f"column {column!r} exists; change its function instead", reason="COLUMN_EXISTS",
                                  column=column)
        target = schema.append(pa.field(column, vector_type(dims), nullable=True))
    else:
        if index < 0:
            raise InvalidArgument(f"the table has no column {column!r}", reason="UNKNOWN_COLUMN", column=column)
        if not pa.types.is_fixed_size_list(schema.field(index).type):
            raise InvalidArgument(f"column {column!r} is not a vector column", reason="NOT_A_VECTOR_COLUMN",
                                  column=column)
        if kind == DROP:
            return Plan(with_functions(schema.remove(index), functions), column, None)
        target = schema.set(index, pa.field(column, vector_type(dims), nullable=True))
    assert function is not None
    if schema.get_field_index(function.source_column) < 0:
        raise InvalidArgument(f"the table has no column {function.source_column!r} to embed",
                              reason="UNKNOWN_COLUMN", column=function.source_column)
    functions.append(function)
    return Plan(with_functions(target, functions, {function.name: secret_settings}), column, function)


def lease_job(operation: Operation) -> str:
    """The name of an operation's lease."""
    return f"operation-{operation.id}"


class Reembedder:
    """Runs the store's re-embedding operations, one background thread each, registered with their table's
    owner (which stops them when the table is dropped); resumed after a restart by FunctionChanges."""

    def __init__(self, embedder: Embedder, observer: Observer | None = None,
                 lease_seconds: float = leases.DEFAULT_SECONDS) -> None:
        self.embedder = embedder
        self.observer = observer
        self.lease_seconds = lease_seconds
        self.holder = leases.new_holder()  # this store among the processes serving the same tables
        self._owners: dict[str, TableOwner] = {}  # operation name -> the owner it runs on
        self._pool = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="reembed-embed")
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            owners = list(self._owners.items())
        running = [found for name, owner in owners if (found := owner.running_operation(name)) is not None]
        for operation in running:
            operation.stop.set()  # stops between chunks; the record stays RUNNING, so the next start resumes it
        for operation in running:
            operation.thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def running(self) -> int:
        with self._lock:
            return len(self._owners)

    def start(self, owner: TableOwner, operation: Operation, steal: bool = False) -> None:
        """Runs the operation on a thread of its own, under its lease (`steal`: see `leases.acquire`)."""
        with self._lock:
            if self._closed:
                return
            stop, cancel = threading.Event(), threading.Event()
            thread = threading.Thread(target=self._run, args=(owner, operation, stop, cancel, steal),
                                      name=f"reembed-{operation.id[:8]}", daemon=True)
            if not owner.register(operation.name, RunningOperation(thread, stop, cancel)):
                return
            self._owners[operation.name] = owner
        thread.start()

    def cancel(self, owner: TableOwner, operation: Operation) -> bool:
        """Asks a running operation to stop; False when none runs here (the caller settles the record)."""
        found = owner.running_operation(operation.name)
        if found is None:
            return False
        found.cancel.set()
        found.stop.set()
        return True

    def wait(self, owner: TableOwner, operation: Operation, timeout: float = 60.0) -> None:
        """Waits for the thread running `operation` (if any) to end."""
        found = owner.running_operation(operation.name)
        if found is not None and found.thread is not threading.current_thread():
            found.thread.join(timeout)

    # ----- the work ------------------------------------------------------------------------------------
    def _run(self, owner: TableOwner, operation: Operation, stop: threading.Event, cancel: threading.Event,
             steal: bool = False) -> None:
        """Runs the operation under its lease (taken in the table's storage: one process of those serving
        it runs it); a process that finds the lease held leaves the operation to its holder."""
        table = owner.table
        records = OperationLog(table.files)
        try:
            lease = leases.acquire(table.files, lease_job(operation), self.lease_seconds, self.holder, steal)
            if lease is None:
                log.info("operation %s runs in another store process", operation.name)
                return
            with leases.Heartbeat(lease, on_lost=stop.set):  # the outcome is recorded while the lease holds
                self._run_leased(owner, records, operation, stop, cancel, lease)
        except (ServiceError, OSError) as exc:  # the lease could not be read or taken: the next look retries
            log.warning("operation %s not run now: %s", operation.name, getattr(exc, "message", exc))
        finally:
            owner.unregister(operation.name)
            with self._lock:
                self._owners.pop(operation.name, None)
            if self.observer is not None:
                self._report_end(records, table, operation, stop)

    def _run_leased(self, owner: TableOwner, records: OperationLog, operation: Operation, stop: threading.Event,
                    cancel: threading.Event, lease: leases.Lease) -> None:
        table = owner.table
        try:
            Job(owner, records, operation, self.embedder, self._pool, stop, cancel, self.observer, lease).run()
        except leases.LeaseLost:
            log.warning("operation %s: another store process took it over; stopped here", operation.name)
        except ServiceError as exc:
            if not lease.check():
                log.warning("operation %s stopped (%s) after its lease was lost", operation.name, exc.message)
                return
            paused = ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED")
            state = PAUSED if exc.category in paused else FAILED
            error = OperationError(exc.category, exc.reason, exc.message)
            self._record_end(records, operation, state=state, error=error)
            log.warning("operation %s %s: %s", operation.name, state.lower(), exc.message)
        except Exception as exc:  # a bug: the record says so rather than staying RUNNING forever
            log.exception("operation %s failed", operation.name)
            if not lease.check():
                return
            shown = table.files.shown(f"{type(exc).__name__}: {exc}")[:500]  # the record is a caller's to read
            self._record_end(records, operation, state=FAILED, error=OperationError("INTERNAL", "INTERNAL", shown))

    @staticmethod
    def _record_end(records: OperationLog, operation: Operation, **changes: Any) -> None:
        """How a run ended, on the record as it is now (none written when the record is gone: its table was
        dropped); a run a cancel was asked of ends cancelled, its work removed."""
        try:
            ended = records.update(operation.id, lambda current: _ended(current, operation, **changes))
            if ended is not None and ended.state == CANCELLED:
                records.remove_work(operation.id)
        except (ServiceError, OSError):
            log.warning("operation %s: how its run ended could not be recorded", operation.name, exc_info=True)

    def _report_end(self, records: OperationLog, table: Table, operation: Operation, stop: threading.Event) -> None:
        try:
            ended = records.load(operation.id, table=table.name).state
        except (ServiceError, OSError):  # the table was dropped meanwhile, with its operations
            return
        if self.observer is not None and not (ended == RUNNING and stop.is_set()):  # a shutdown's stop is no end
            self.observer.run_ended(operation.kind, ended)


class Job:
    """One run of one operation, from its record to the switch (or a stop)."""

    def __init__(self, owner: TableOwner, records: OperationLog, operation: Operation,
                 embedder: Embedder, pool: ThreadPoolExecutor, stop: threading.Event, cancel: threading.Event,
                 observer: Observer | None = None, lease: leases.Lease | None = None) -> None:
        self.owner = owner
        self.table = owner.table
        self.observer = observer
        self.records = records
        self.operation = operation
        self.embedder = embedder
        self.pool = pool
        self.stop = stop  # set by a shutdown (the record stays RUNNING and resumes) or by a cancel
        self.cancel = cancel
        self.lease = lease  # checked before each durable step, renewed right before the switch's commit
        self.chunk_dir = f"{OPERATIONS_DIR}/{operation.id}/chunks"
        self.done_ids = np.empty(0, dtype=np.int64)  # row ids the operation's chunks cover, sorted
        self.started = time.monotonic()
        self.embedded_this_run = 0
        self.rewritten: dict[DataKey, Any] = {}  # fragments rewritten for the switch, kept across its attempts

    def run(self) -> Operation:
        self._load_chunks()
        for _ in range(SWITCH_ATTEMPTS):
            view = self.owner.view()
            target = self._target(view.snapshot)
            pending = self._pending(view)
            self._save(rows_total=view.num_rows, rows_done=view.num_rows - len(pending))
            if len(pending) == 0 or self.operation.kind == DROP:
                break
            if not self._embed_all(pending, target):
                return self._cancelled()
        if self.stop.is_set():
            return self._settle_stop()
        return self._switch()

    # ----- planning ------------------------------------------------------------------------------------
    def _target(self, snapshot: Snapshot) -> Plan:
        op = self.operation
        dims = 0
        if op.function is not None:
            info = self.embedder.describe(op.function)
            if info is None:
                raise FailedPrecondition(f"function {op.function.name!r} is not one the embed service has",
                                         reason="LOCAL_FUNCTION", function=op.function.name)
            dims = info.dimensions
        current = snapshot.schema
        if op.kind == CHANGE or op.kind == DROP:
            if current.get_field_index(op.vector_column) < 0:
                raise FailedPrecondition(f"column {op.vector_column!r} left the table while the operation ran",
                                         reason="TABLE_CHANGED", column=op.vector_column)
        elif current.get_field_index(op.vector_column) >= 0:
            raise FailedPrecondition(f"column {op.vector_column!r} appeared while the operation ran",
                                     reason="TABLE_CHANGED", column=op.vector_column)
        return plan(current, op.kind, op.vector_column, op.function, dims)

    def _pending(self, view: TableView) -> pa.Table:
        """The view's rows (`_rowid` and source) no chunk covers yet, in row-id order."""
        op = self.operation
        if op.function is None:
            return pa.table({ROW_ID: pa.array([], type=pa.int64())})
        data = view.columns([ROW_ID, op.function.source_column])
        ids = data.column(ROW_ID).to_numpy()
        return data.filter(pa.array(~np.isin(ids, self.done_ids))).sort_by(ROW_ID)

    # ----- embedding -----------------------------------------------------------------------------------
    def _embed_all(self, pending: pa.Table, target: Plan) -> bool:
        """Embeds `pending` chunk by chunk, committing each to the operation; False if stopped."""
        dims = target.schema.field(target.column).type.list_size
        in_flight: deque[tuple[pa.Table, Future]] = deque()
        starts = iter(range(0, pending.num_rows, CHUNK_ROWS))
        while True:
            while len(in_flight) < IN_FLIGHT and not self.stop.is_set():
                start = next(starts, None)
                if start is None:
                    break
                chunk = pending.slice(start, CHUNK_ROWS)
                in_flight.append((chunk, self.pool.submit(self._vectors, chunk, dims)))
            if not in_flight:
                return not self.stop.is_set()
            chunk, future = in_flight.popleft()
            vectors = future.result()
            self._commit_chunk(chunk.column(ROW_ID).to_numpy(), vectors, dims)
            if self.stop.is_set():
                for _, rest in in_flight:
                    rest.cancel()
                return False

    def _vectors(self, rows: pa.Table, dims: int) -> pa.Array:
        """The new vectors of `rows` (null where the source is null), as a vector array."""
        assert self.operation.function is not None
        source = rows.column(1).combine_chunks()
        present = source.is_valid().to_numpy(zero_copy_only=False)
        matrix = np.zeros((rows.num_rows, dims), dtype=np.float32)
        if present.any():
            matrix[present] = self.embedder.embed_source(self.operation.function, source.filter(pa.array(present)))
            if self.observer is not None:
                self.observer.rows_reembedded(self.operation.kind, int(present.sum()))
        flat = pa.array(matrix.reshape(-1), type=pa.float32())
        return pa.FixedSizeListArray.from_arrays(flat, dims, mask=pa.array(~present))

    def _commit_chunk(self, row_ids: np.ndarray, vectors: pa.Array, dims: int) -> None:
        data = pa.table({ROW_ID: pa.array(row_ids, type=pa.int64()), "vector": vectors.cast(vector_type(dims))})
        ref = fragments.write(self.table.files, data, self.chunk_dir)
        self.done_ids = np.union1d(self.done_ids, row_ids)
        self.embedded_this_run += len(row_ids)
        rate = self.embedded_this_run / max(1e-6, time.monotonic() - self.started)
        self._save(chunks=self.operation.chunks + (ref,), rows_done=self.operation.rows_done + len(row_ids),
                   rows_per_second=rate)

    def _load_chunks(self) -> None:
        ids = [fragments.read(self.table.files, ref, table=self.table.name).column(ROW_ID).to_numpy()
               for ref in self.operation.chunks]
        self.done_ids = np.unique(np.concatenate(ids)) if ids else np.empty(0, dtype=np.int64)

    def _chunk_vectors(self) -> pa.Table:
        """Every chunk's (`_rowid`, vector), sorted by row id."""
        parts = [fragments.read(self.table.files, ref, table=self.table.name) for ref in self.operation.chunks]
        if not parts:
            return pa.table({ROW_ID: pa.array([], type=pa.int64())})
        return pa.concat_tables(parts).sort_by(ROW_ID)

    # ----- the switch ----------------------------------------------------------------------------------
    def _switch(self) -> Operation:
        """One commit switching the table: every fragment rewritten with the new column (rows that arrived
        after the last pass embedded here, before the commit), the column's index rebuilt. Nothing is
        embedded under the table's lock: when rows arrive between the rewrite and the commit, the commit says
        Moved and the new fragments are rewritten before trying again."""
        view = self.owner.view()
        target = self._target(view.snapshot)
        new = self._chunk_vectors()
        built = self._rebuild_index(view, target, new)
        written = [built[0].file.path] if built is not None else []

        def prepare(attempt: int) -> RewriteColumns:
            if self.lease is not None:
                self.lease.fence()  # the switch happens once: only while this process holds the lease
            snapshot = view.snapshot if attempt == 0 else self.table.snapshot()
            if snapshot.schema != view.snapshot.schema:
                raise Aborted(f"table {self.table.name!r} was altered during the switch", reason="WRITE_CONFLICT",
                              table=self.table.name)
            for ref in snapshot.manifest.fragments:  # the work, outside every lock
                if ref.data_key not in self.rewritten:
                    rows = self._rewrite(snapshot, ref, target, new)
                    self.rewritten[ref.data_key] = self.table.rewritten_fragment(ref, rows, target.schema)
            index = (built[0].to_json(),) if built is not None else ()
            return RewriteColumns(target.schema, dict(self.rewritten), target.column, index,
                                  read_at=view.snapshot.manifest,
                                  name=f"{self.operation.kind.lower()}:{target.column}",
                                  rebuilt_from=frozenset(e.file.path for e in entries(view.snapshot.manifest)
                                                         if e.vector_column == target.column))

        try:
            committed = self.owner.commit_prepared(prepare)
        except CommittedNotDurable:
            raise  # committed: its files are the version's
        except BaseException:
            self.table.remove_files(written)
            self.table.remove_files(manifest.data_file(f) for fragment in self.rewritten.values()
                                    for f in fragment.files)
            self.rewritten.clear()
            raise
        self.table.remove_unused([manifest.data_file(f) for fragment in self.rewritten.values()
                                  for f in fragment.files], committed)
        if built is not None:
            if any(e["file"]["path"] == built[0].file.path for e in committed.indexes):
                self.owner.indexes.offer(built[0], built[1], built[0].next_row_id)
            else:  # the index was dropped or replaced during the switch: the commit left it out
                self.table.remove_files(written)
        self.records.remove_work(self.operation.id)
        log.info("operation %s switched table %s to version %d", self.operation.name, self.table.name,
                 committed.version)
        return self._save(state=SUCCEEDED, result_version=committed.version, rows_total=committed.rows,
                          rows_done=committed.rows, chunks=(), error=None)

    def _rewrite(self, snapshot: Snapshot, ref: FragmentRef, target: Plan, new: pa.Table) -> pa.Table:
        """Every physical row of fragment `ref` in the target schema, its target column from `new` by row id;
        live rows that `new` lacks (committed after the last pass) are embedded here. Rows the version
        deleted (no row id) keep a null vector."""
        rows = self.table.read_fragment(snapshot, ref, snapshot.schema.names)
        if target.function is not None:
            dims = target.schema.field(target.column).type.list_size
            ids = row_id_array(rows.column(ROW_ID))
            known = new.column(ROW_ID).to_numpy()
            at = np.minimum(np.searchsorted(known, ids), max(0, len(known) - 1))
            found = (known[at] == ids) & (ids >= 0) if len(known) else np.zeros(len(ids), dtype=bool)
            column = (new.column("vector").combine_chunks().take(pa.array(at)) if len(known)
                      else pa.nulls(len(ids), vector_type(dims)))
            late = ~found & (ids >= 0)
            if late.any():
                source = pa.table({ROW_ID: pa.array(ids), "source": rows.column(target.function.source_column)}
                                  ).filter(pa.array(late))
                filled = np.full(len(ids), -1, dtype=np.int64)
                filled[late] = np.arange(int(late.sum()))
                extra = self._vectors(source, dims)
                column = pc.if_else(pa.array(late), extra.take(pa.array(np.maximum(filled, 0))), column)
            column = pc.if_else(pa.array(found | late), column, pa.nulls(len(ids), vector_type(dims)))
            rows = rows.drop_columns([c for c in (target.column,) if c in rows.column_names])
            rows = rows.append_column(pa.field(target.column, vector_type(dims)), column)
        rows = rows.drop_columns([ROW_ID])
        return rows.select([n for n in target.schema.names if n in rows.column_names])

    def _rebuild_index(self, view: TableView, target: Plan, new: pa.Table) -> tuple[IndexEntry, VectorIndex] | None:
        """The column's index again, same type and parameters, trained on the new vectors (built as every
        index is, by `catalog.build`)."""
        existing = [e for e in entries(view.snapshot.manifest) if e.vector_column == target.column]
        if not existing or target.function is None:
            return None
        old = existing[0]
        live = view.row_ids
        known = new.filter(pc.and_(pc.is_in(new.column(ROW_ID), value_set=pa.array(live)),
                                   pc.is_valid(new.column("vector"))))
        dims = target.schema.field(target.column).type.list_size
        if known.num_rows == 0:
            return None
        vectors = known.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, dims)
        row_ids = known.column(ROW_ID).to_numpy()
        params = old.params
        if params.num_partitions > len(row_ids):
            params = dataclasses.replace(params, num_partitions=0)  # fewer rows than partitions now
        rng = np.random.default_rng(0)
        index = catalog.build(params, dims, len(row_ids), lambda fraction: vectors[rng.random(len(vectors)) < fraction],
                              [(vectors, row_ids)], target.column)
        entry = IndexEntry(old.name, target.column, params, view.version, view.next_row_id, dims,
                           FileRef("", 0, "", 0))
        return catalog.write(self.table, entry, index), index

    # ----- the record ----------------------------------------------------------------------------------
    def _save(self, **changes) -> Operation:
        if self.lease is not None and not self.lease.check():
            raise leases.LeaseLost(f"the lease on {self.operation.name} was lost")
        asked = self.operation.cancel_requested
        self.operation = self.records.save(self.operation.but(**changes))
        if self.operation.cancel_requested and not asked:  # asked of another process meanwhile: kept by save
            self.cancel.set()
            self.stop.set()
        return self.operation

    def _settle_stop(self) -> Operation:
        return self._cancelled() if self.cancel.is_set() else self.operation

    def _cancelled(self) -> Operation:
        if not self.cancel.is_set():
            return self.operation  # stopped by a shutdown: the record stays RUNNING and resumes on restart
        self.records.remove_work(self.operation.id)
        return self._save(state=CANCELLED, chunks=(), cancel_requested=True)


def _ended(current: Operation | None, operation: Operation, **changes: Any) -> Operation:
    """The record, as stored now, with how its run ended (an end already recorded stays; a run that ended
    while a cancel was asked of it is cancelled)."""
    stored = current or operation
    if stored.done:
        return stored
    if stored.cancel_requested:
        return stored.but(state=CANCELLED, chunks=())
    return stored.but(**changes)


__all__ = ["Job", "Plan", "Reembedder", "plan"]
