"""Long-running operations on a table (AIP-151 style): their records on disk, durable across restarts.

An operation lives in `<table>/_operations/<id>/`: `state.json` (published by fsync + atomic rename after
every step) and the files its work produced so far (`chunks/`). Its name is
`tables/<table>/operations/<id>`, so GetOperation finds it from the name alone.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from store_service.errors import InvalidArgument, NotFound, StorageFailed
from store_service.schema import FunctionConfig
from store_service.storage import fragments
from store_service.storage.fragments import FileRef
from store_service.storage.location import Location, as_location
from store_service.storage.names import check_table_name

OPERATIONS_DIR = "_vectorlane/operations"
STATE_FILE = "state.json"

RUNNING, PAUSED, SUCCEEDED, FAILED, CANCELLED = "RUNNING", "PAUSED", "SUCCEEDED", "FAILED", "CANCELLED"
DONE_STATES = (SUCCEEDED, FAILED, CANCELLED)
CHANGE, ADD, DROP = "CHANGE_FUNCTION", "ADD_FUNCTION", "DROP_FUNCTION"
_NAME = re.compile(r"^tables/([^/]+)/operations/([0-9a-f]{32})$")


@dataclass(frozen=True)
class OperationError:
    code: str  # a grpc.StatusCode name
    reason: str
    message: str


@dataclass(frozen=True)
class Operation:
    id: str
    table: str
    kind: str
    vector_column: str
    function: FunctionConfig | None  # the function the column gets (None: dropped)
    state: str = RUNNING
    base_version: int = 0  # the latest version when the operation started
    rows_total: int = 0
    rows_done: int = 0
    rows_per_second: float = 0.0
    chunks: tuple[FileRef, ...] = ()  # committed work: (`_rowid`, vector) files, in the order written
    error: OperationError | None = None
    result_version: int = 0  # the version that switched the table over
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)
    cancel_requested: bool = False

    @property
    def name(self) -> str:
        return f"tables/{self.table}/operations/{self.id}"

    @property
    def done(self) -> bool:
        return self.state in DONE_STATES

    @property
    def eta_seconds(self) -> float:
        left = self.rows_total - self.rows_done
        return left / self.rows_per_second if self.rows_per_second > 0 and left > 0 else 0.0

    def but(self, **changes: Any) -> "Operation":
        return dataclasses.replace(self, updated=time.time(), **changes)

    def to_json(self) -> bytes:
        body = dataclasses.asdict(self)
        body["function"] = self.function.to_json() if self.function else None
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Operation":
        body = json.loads(data)
        function = body.pop("function")
        error = body.pop("error")
        chunks = body.pop("chunks")
        return cls(function=FunctionConfig(**function) if function else None,
                   error=OperationError(**error) if error else None,
                   chunks=tuple(FileRef.from_json(c) for c in chunks), **body)


def new_operation(table: str, kind: str, vector_column: str, function: FunctionConfig | None,
                  base_version: int) -> Operation:
    return Operation(uuid.uuid4().hex, table, kind, vector_column, function, base_version=base_version)


def parse_name(name: str) -> tuple[str, str]:
    """(table, id) from `tables/<table>/operations/<id>`."""
    match = _NAME.fullmatch(name)
    if match is None:
        raise InvalidArgument(f"{name!r} is not an operation name (tables/<table>/operations/<id>)",
                              reason="INVALID_OPERATION_NAME")
    check_table_name(match.group(1))
    return match.group(1), match.group(2)


READ_ATTEMPTS = 5
SAVE_ATTEMPTS = 20


class OperationLog:
    """The operations of one table: a folder each, its record in `STATE_FILE` beside its work.

    Records are changed by read, change, conditional write (put-if-unchanged; flock on a local disk), so two
    store processes changing one record (a replica running it, another asked to cancel it) never lose each
    other's change: a cancel asked meanwhile is kept by every later save, and a cancel never overwrites the
    runner's progress or its end."""

    def __init__(self, table_dir: Location | Path) -> None:
        self.files = as_location(table_dir)

    def _state(self, operation_id: str) -> str:
        return f"{OPERATIONS_DIR}/{operation_id}/{STATE_FILE}"

    def update(self, operation_id: str, change: Callable[[Operation | None], Operation], *,
               create: bool = False) -> Operation | None:
        """Replaces the record by `change(record as stored now)`, retried while another process changes it in
        between; the record as written. A record that is not there is made (`change(None)`) only with
        `create`: else nothing is written and None returned (its table was dropped, maybe made again under
        the name by another process: an old run must not leave its record in the new table)."""
        fragments.require_table(self.files)  # a dropped table's folder is not made again
        path = self._state(operation_id)
        for attempt in range(SAVE_ATTEMPTS):
            current = self.files.read_tagged(path)
            if current is None:
                if not create:
                    return None
                new = change(None)
                if self.files.put_if_absent(path, new.to_json()) is not None:
                    return new
            else:
                new = change(Operation.from_json(current[0]))
                if self.files.put_if_unchanged(path, new.to_json(), current[1]) is not None:
                    return new
            time.sleep(0.005 * (attempt + 1))
        raise StorageFailed(f"operation {operation_id}'s record kept changing under this write",
                            reason="RECORD_CONTENDED")

    def save(self, operation: Operation, *, create: bool = False) -> Operation:
        """Writes the whole record, keeping a cancel another process asked for meanwhile; as written.
        OPERATION_NOT_FOUND when the record is gone (unless `create`: a new operation's first save)."""
        def keep_cancel(stored: Operation | None) -> Operation:
            asked = stored is not None and stored.cancel_requested and not operation.cancel_requested
            return operation.but(cancel_requested=True) if asked else operation

        written = self.update(operation.id, keep_cancel, create=create)
        if written is None:
            raise NotFound(f"table {operation.table!r} has no operation {operation.id} any more",
                           reason="OPERATION_NOT_FOUND", operation=operation.id)
        return written

    def _read(self, operation_id: str) -> Operation:
        """The record as last published (one GET on object storage, whole; a record that does not parse is
        read again, once more than a local file needs)."""
        for attempt in range(READ_ATTEMPTS):
            data = self.files.read(self._state(operation_id))
            try:
                return Operation.from_json(data)
            except ValueError:
                if not self.files.on_object_storage or attempt == READ_ATTEMPTS - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def load(self, operation_id: str, *, table: str) -> Operation:
        try:
            return self._read(operation_id)
        except FileNotFoundError:
            raise NotFound(f"table {table!r} has no operation {operation_id}", reason="OPERATION_NOT_FOUND",
                           operation=operation_id) from None

    def all(self, skip: frozenset[str] = frozenset()) -> list[Operation]:
        """Every operation of the table, but those in `skip` (ids known to be done: their records never
        change again)."""
        found = []
        for operation_id in self.files.child(OPERATIONS_DIR).folders():
            if operation_id in skip:
                continue
            try:
                found.append(self._read(operation_id))
            except FileNotFoundError:
                continue  # a folder whose record was never written
        return sorted(found, key=lambda op: (op.created, op.id))

    def remove_work(self, operation_id: str) -> None:
        """Deletes the files an operation's work produced (its record stays)."""
        self.files.child(f"{OPERATIONS_DIR}/{operation_id}/chunks").remove_all()
