"""Changing, adding and dropping a table's embedding functions, as long-running operations: checked up front
(nothing starts for a change that cannot work), recorded durably, run by the Reembedder, resumed on restart."""

from __future__ import annotations

import logging
import time

from rpc_common import paging
from store_service.embedder import NO_DEADLINE, Deadline, Embedder
from store_service.errors import Aborted, FailedPrecondition, InvalidArgument, ServiceError
from store_service.functions.operations import (ADD, CANCELLED, CHANGE, DROP, PAUSED, RUNNING, Operation, OperationLog,
                                      new_operation, parse_name)
from store_service.functions.reembed import Reembedder, lease_job, plan
from store_service.schema import FunctionConfig, check_secrets, source_kind
from store_service.storage import leases
from store_service.tables.owner import TableOwner
from store_service.tables.registry import Tables

log = logging.getLogger(__name__)

START_LEASE = "function-change-start"
START_LEASE_S = 30.0


class FunctionChanges:
    def __init__(self, tables: Tables, embedder: Embedder, reembedder: Reembedder) -> None:
        self.tables = tables
        self.embedder = embedder
        self.reembedder = reembedder
        self._done: dict[str, set[str]] = {}  # table -> ids of operations seen done (read no more by resume_all)

    def resume_all(self, steal: bool = False) -> int:
        """Restarts every RUNNING operation no live store process holds the lease of (one a previous run of
        this store left, or one whose process died); returns how many. Run at start, and on object storage
        every third of a lease, which is how a replica takes over the work of one that died. `steal`: the
        leases of others are a previous run's (a store on a local directory, which it holds alone)."""
        count = 0
        for name in self.tables.names():
            try:
                owner = self.tables.owner(name)
                done = self._done.setdefault(name, set())
                for operation in OperationLog(owner.table.files).all(skip=frozenset(done)):
                    if operation.done:
                        done.add(operation.id)
                    if operation.state != RUNNING or owner.running_operation(operation.name) is not None:
                        continue
                    if not steal and leases.holder_of(owner.table.files, lease_job(operation)) is not None:
                        continue  # running in another process
                    log.info("resuming operation %s (%d of %d rows done)", operation.name, operation.rows_done,
                             operation.rows_total)
                    self.reembedder.start(owner, operation, steal)
                    count += 1
            except ServiceError as exc:  # a table dropped or damaged meanwhile: the others still resume
                log.warning("table %s: operations not resumed (%s)", name, exc.message)
        return count

    # ----- starting ------------------------------------------------------------------------------------
    def alter(self, table_name: str, function: FunctionConfig, deadline: Deadline = NO_DEADLINE) -> Operation:
        return self._start(table_name, CHANGE, function.vector_column, function, deadline)

    def add(self, table_name: str, function: FunctionConfig, deadline: Deadline = NO_DEADLINE) -> Operation:
        return self._start(table_name, ADD, function.vector_column, function, deadline)

    def drop(self, table_name: str, vector_column: str) -> Operation:
        return self._start(table_name, DROP, vector_column, None, NO_DEADLINE)

    def _start(self, table_name: str, kind: str, column: str, function: FunctionConfig | None,
               deadline: Deadline) -> Operation:
        owner = self.tables.owner(table_name)
        table = owner.table
        if not column:
            raise InvalidArgument("name the vector column", reason="MISSING_COLUMN")
        dims, info = 0, None
        secrets: tuple[str, ...] = ()
        if function is not None:
            if not function.name or not function.source_column:
                raise InvalidArgument("the function needs a registry name and a source column",
                                      reason="INVALID_EMBEDDING_FUNCTION")
            check_secrets(function)
            info = self.embedder.describe(function, deadline)
            if info is None:
                raise FailedPrecondition(f"function {function.name!r} is not one the embed service has: the store "
                                         "cannot compute its vectors", reason="LOCAL_FUNCTION", function=function.name)
            dims, secrets = info.dimensions, info.secret_settings
        snapshot = table.snapshot()
        target = plan(snapshot.schema, kind, column, function, dims, secrets)
        if function is not None and info is not None:
            source_kind(function, snapshot.schema.field(function.source_column).type, info.modalities)
        # One start at a time, so two callers cannot both start on one table: in this process, and among the
        # processes serving it (a short lease of its own around the look and the record).
        with owner.changing():
            starting = leases.acquire(table.files, START_LEASE, START_LEASE_S, self.reembedder.holder)
            if starting is None:
                raise Aborted(f"another store process is starting an operation on table {table_name!r}; retry",
                              reason="WRITE_CONFLICT", table=table_name)
            try:
                records = OperationLog(table.files)
                for existing in records.all():
                    if existing.state in (RUNNING, PAUSED):
                        raise FailedPrecondition(f"table {table_name!r} has operation {existing.name} in "
                                                 "progress; wait for it or cancel it",
                                                 reason="OPERATION_IN_PROGRESS", operation=existing.name)
                operation = new_operation(table_name, kind, target.column, function, snapshot.version)
                records.save(operation.but(rows_total=snapshot.manifest.rows), create=True)
            finally:
                starting.release()
        log.info("table %s: operation %s (%s %s) started", table_name, operation.name, kind.lower(), column)
        self.reembedder.start(owner, records.load(operation.id, table=table_name))
        return records.load(operation.id, table=table_name)

    # ----- looking and steering ------------------------------------------------------------------------
    def get(self, name: str) -> Operation:
        owner, operation_id = self._locate(name)
        return OperationLog(owner.table.files).load(operation_id, table=owner.name)

    def list(self, table_name: str, page_size: int = 0, page_token: str = "") -> tuple[list[Operation], str]:
        operations = OperationLog(self.tables.owner(table_name).table.files).all()
        by_id = {op.id: op for op in operations}
        ids, token = paging.page([op.id for op in operations], str, page_size, page_token)
        return [by_id[i] for i in ids], token

    def cancel(self, name: str) -> Operation:
        owner, operation_id = self._locate(name)
        table = owner.table
        records = OperationLog(table.files)
        with owner.changing():
            operation = records.load(operation_id, table=table.name)
            if operation.done:
                raise FailedPrecondition(f"operation {name} is {operation.state.lower()}; there is nothing to cancel",
                                         reason="OPERATION_DONE", operation=name)
            # only the flag, on the record as it is now: the runner (maybe another process) keeps its progress
            records.update(operation_id, lambda current: (current or operation).but(cancel_requested=True))
            # (a record gone meanwhile stays gone: `update` writes nothing then)
        if self.reembedder.cancel(owner, operation):
            self.reembedder.wait(owner, operation)
        elif leases.holder_of(table.files, lease_job(operation)) is not None:
            self._wait_settled(records, operation)  # another process runs it: it sees the request and stops
        else:  # paused (or its thread just ended): settle it here
            records.remove_work(operation_id)
            records.update(operation_id, lambda current: (current or operation) if (current or operation).done
                           else (current or operation).but(state=CANCELLED, chunks=()))
        return records.load(operation_id, table=table.name)

    @staticmethod
    def _wait_settled(records: OperationLog, operation: Operation, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if records.load(operation.id, table=operation.table).done:
                return
            time.sleep(0.1)

    def resume(self, name: str) -> Operation:
        owner, operation_id = self._locate(name)
        table = owner.table
        records = OperationLog(table.files)
        with owner.changing():
            operation = records.load(operation_id, table=table.name)
            if operation.state != PAUSED:
                raise FailedPrecondition(f"operation {name} is {operation.state.lower()}, not paused",
                                         reason="OPERATION_NOT_PAUSED", operation=name)
            # The thread that paused it saves PAUSED before it lets go of the name: wait for it to end, or
            # the new run would find the name taken and start nothing while the record says RUNNING.
            self.reembedder.wait(owner, operation)
            operation = operation.but(state=RUNNING, error=None)
            records.save(operation)
        self.reembedder.start(owner, operation)
        return records.load(operation_id, table=table.name)

    def _locate(self, name: str) -> tuple[TableOwner, str]:
        table_name, operation_id = parse_name(name)
        return self.tables.owner(table_name), operation_id
