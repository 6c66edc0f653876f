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
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.embedder import Embedder
from store_service.errors import FailedPrecondition, InvalidArgument, ServiceError
from store_service.search.index_catalog import INDEXES_DIR, IndexEntry, entries
from store_service.functions.operations import (ADD, CANCELLED, CHANGE, DROP, FAILED, OPERATIONS_DIR, PAUSED, RUNNING,
                                      SUCCEEDED, Operation, OperationError, OperationLog)
from store_service.schema import FunctionConfig, functions_of, vector_type, with_functions
from store_service.storage import fragments
from store_service.storage.fragments import ROW_ID
from store_service.storage.manifest import FragmentRef, Manifest
from store_service.storage.table import Snapshot, Table
from store_service.search.table_view import TableView, ViewCache, row_id_array
from store_service.search.vector_index import VectorIndex

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


class Reembedder:
    """Runs the store's re-embedding operations, one background thread each, and resumes them after a restart."""

    def __init__(self, embedder: Embedder, views: ViewCache, observer: Observer | None = None) -> None:
        self.embedder = embedder
        self.views = views
        self.observer = observer
        self._running: dict[str, tuple[threading.Event, threading.Event]] = {}  # name -> (stop, cancel)
        self._threads: dict[str, threading.Thread] = {}
        self._pool = ThreadPoolExecutor(max_workers=IN_FLIGHT, thread_name_prefix="reembed-embed")
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        with self._lock:
            self._closed = True
            flags = list(self._running.values())
            threads = list(self._threads.values())
        for stop, _ in flags:
            stop.set()  # stops between chunks; the record stays RUNNING, so the next start resumes it
        for thread in threads:
            thread.join(timeout=30)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def is_running(self, operation: Operation) -> bool:
        with self._lock:
            return operation.name in self._running

    def running(self) -> int:
        with self._lock:
            return len(self._running)

    def start(self, table: Table, operation: Operation) -> None:
        with self._lock:
            if self._closed or operation.name in self._running:
                return
            flags = self._running[operation.name] = (threading.Event(), threading.Event())
            thread = threading.Thread(target=self._run, args=(table, operation, *flags),
                                      name=f"reembed-{operation.id[:8]}", daemon=True)
            self._threads[operation.name] = thread
        thread.start()

    def cancel(self, operation: Operation) -> bool:
        """Asks a running operation to stop; False when none runs here (the caller settles the record)."""
        with self._lock:
            flags = self._running.get(operation.name)
        if flags is None:
            return False
        flags[1].set()
        flags[0].set()
        return True

    def wait(self, operation: Operation, timeout: float = 60.0) -> None:
        """Waits for the thread running `operation` (if any) to end."""
        with self._lock:
            thread = self._threads.get(operation.name)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ----- the work ------------------------------------------------------------------------------------
    def _run(self, table: Table, operation: Operation, stop: threading.Event, cancel: threading.Event) -> None:
        records = OperationLog(table.directory)
        try:
            Job(table, self.views, records, operation, self.embedder, self._pool, stop, cancel, self.observer).run()
        except ServiceError as exc:
            state = PAUSED if exc.category in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED") else FAILED
            current = records.load(operation.id, table=table.name)
            records.save(current.but(state=state, error=OperationError(exc.category, exc.reason, exc.message)))
            log.warning("operation %s %s: %s", operation.name, state.lower(), exc.message)
        except Exception as exc:  # a bug: the record says so rather than staying RUNNING forever
            log.exception("operation %s failed", operation.name)
            current = records.load(operation.id, table=table.name)
            records.save(current.but(state=FAILED, error=OperationError("INTERNAL", "INTERNAL",
                                                                        f"{type(exc).__name__}: {exc}")))
        finally:
            with self._lock:
                self._running.pop(operation.name, None)
                self._threads.pop(operation.name, None)
            if self.observer is not None:
                self._report_end(records, table, operation, stop)

    def _report_end(self, records: OperationLog, table: Table, operation: Operation, stop: threading.Event) -> None:
        try:
            ended = records.load(operation.id, table=table.name).state
        except (ServiceError, OSError):  # the table was dropped meanwhile, with its operations
            return
        if self.observer is not None and not (ended == RUNNING and stop.is_set()):  # a shutdown's stop is no end
            self.observer.run_ended(operation.kind, ended)


class Job:
    """One run of one operation, from its record to the switch (or a stop)."""

    def __init__(self, table: Table, views: ViewCache, records: OperationLog, operation: Operation,
                 embedder: Embedder, pool: ThreadPoolExecutor, stop: threading.Event, cancel: threading.Event,
                 observer: Observer | None = None) -> None:
        self.table = table
        self.views = views
        self.observer = observer
        self.records = records
        self.operation = operation
        self.embedder = embedder
        self.pool = pool
        self.stop = stop  # set by a shutdown (the record stays RUNNING and resumes) or by a cancel
        self.cancel = cancel
        self.chunk_dir = f"{OPERATIONS_DIR}/{operation.id}/chunks"
        self.done_ids = np.empty(0, dtype=np.int64)  # row ids the operation's chunks cover, sorted
        self.started = time.monotonic()
        self.embedded_this_run = 0

    def run(self) -> Operation:
        self._load_chunks()
        for _ in range(SWITCH_ATTEMPTS):
            view = self.views.get(self.table)
            target = self._target(view.snapshot)
            pending = self._pending(view)
            self._save(rows_total=view.num_rows, rows_done=view.num_rows - len(pending))
            if len(pending) == 0 or self.operation.kind == DROP:
                break
            if not self._embed_all(pending, target):
                return self._cancelled()
        if self.stop.is_set():
            return self._settle_stop()
        return self._switch(self.views.get(self.table))

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
        ref = fragments.write(self.table.directory, data, self.chunk_dir)
        self.done_ids = np.union1d(self.done_ids, row_ids)
        self.embedded_this_run += len(row_ids)
        rate = self.embedded_this_run / max(1e-6, time.monotonic() - self.started)
        self._save(chunks=self.operation.chunks + (ref,), rows_done=self.operation.rows_done + len(row_ids),
                   rows_per_second=rate)

    def _load_chunks(self) -> None:
        ids = [fragments.read(self.table.directory, ref, table=self.table.name).column(ROW_ID).to_numpy()
               for ref in self.operation.chunks]
        self.done_ids = np.unique(np.concatenate(ids)) if ids else np.empty(0, dtype=np.int64)

    def _chunk_vectors(self) -> pa.Table:
        """Every chunk's (`_rowid`, vector), sorted by row id."""
        parts = [fragments.read(self.table.directory, ref, table=self.table.name) for ref in self.operation.chunks]
        if not parts:
            return pa.table({ROW_ID: pa.array([], type=pa.int64())})
        return pa.concat_tables(parts).sort_by(ROW_ID)

    # ----- the switch ----------------------------------------------------------------------------------
    def _switch(self, view: TableView) -> Operation:
        target = self._target(view.snapshot)
        new = self._chunk_vectors()
        index = self._rebuild_index(view, target, new)
        written = [index.file] if index is not None else []

        def indexes(base: Manifest) -> list[dict]:
            kept = [e.to_json() for e in entries(base) if e.vector_column != target.column]
            return kept + ([index.to_json()] if index is not None else [])

        try:
            committed = self.table.rewrite_columns(
                target.schema, lambda snapshot, ref: self._rewrite(snapshot, ref, target, new), indexes,
                read_at=view.snapshot.manifest, operation=f"{self.operation.kind.lower()}:{target.column}")
        except BaseException:
            for ref in written:
                (self.table.directory / ref.path).unlink(missing_ok=True)
            raise
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

    def _rebuild_index(self, view: TableView, target: Plan, new: pa.Table) -> IndexEntry | None:
        """The column's index again, same type and parameters, trained on the new vectors."""
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
        index = VectorIndex.build(params, vectors, row_ids)
        ref = fragments.write_file(self.table.directory, index.to_bytes(), INDEXES_DIR, ".faiss", index.size)
        return IndexEntry(old.name, target.column, params, view.version, view.next_row_id, dims, ref)

    # ----- the record ----------------------------------------------------------------------------------
    def _save(self, **changes) -> Operation:
        self.operation = self.operation.but(**changes)
        self.records.save(self.operation)
        return self.operation

    def _settle_stop(self) -> Operation:
        return self._cancelled() if self.cancel.is_set() else self.operation

    def _cancelled(self) -> Operation:
        if not self.cancel.is_set():
            return self.operation  # stopped by a shutdown: the record stays RUNNING and resumes on restart
        self.records.remove_work(self.operation.id)
        return self._save(state=CANCELLED, chunks=(), cancel_requested=True)


__all__ = ["Job", "Plan", "Reembedder", "plan"]
