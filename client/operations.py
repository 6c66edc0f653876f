"""`Operation`: a long-running operation of the store (an embedding function changed, added or dropped, with
its re-embedding in the background). `wait()` polls it until done, with a progress bar when asked; on an
async connection `refresh`, `wait`, `cancel` and `resume` are awaitables."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from vectorlane._transport import Op, Unary
from vectorlane.errors import VectorlaneError
from vectorlane_contract.store.v1 import store_service_pb2 as pb

if TYPE_CHECKING:
    from vectorlane.connection import ConnectionBase as Connection

POLL_SECONDS = 0.25


class OperationFailed(VectorlaneError):
    """Raised by `Operation.wait()` when the operation failed, paused on an error, or was cancelled."""

    def __init__(self, operation: "Operation") -> None:
        error = operation.message.error
        detail = f": {error.code}: {error.message}" if error.reason else ""
        super().__init__(f"operation {operation.name} is {operation.state.lower()}{detail}", reason=error.reason)
        self.operation = operation


class Operation:
    def __init__(self, connection: "Connection", message: pb.Operation) -> None:
        self._connection = connection
        self.message = message

    def __repr__(self) -> str:
        return f"Operation({self.name!r}, {self.state}, {self.rows_done}/{self.rows_total} rows)"

    @property
    def name(self) -> str:
        return self.message.name

    @property
    def state(self) -> str:
        """RUNNING, PAUSED, SUCCEEDED, FAILED or CANCELLED."""
        return str(pb.OperationState.Name(self.message.state)).removeprefix("OPERATION_STATE_")

    @property
    def done(self) -> bool:
        return self.message.done

    @property
    def rows_done(self) -> int:
        return self.message.rows_done

    @property
    def rows_total(self) -> int:
        return self.message.rows_total

    @property
    def rows_per_second(self) -> float:
        return self.message.rows_per_second

    @property
    def eta_seconds(self) -> float:
        return self.message.eta_seconds

    @property
    def result_version(self) -> int:
        """The table version that switched to the new column (once SUCCEEDED)."""
        return self.message.result_version

    def _call(self, method: str, request: Any) -> Any:
        def op() -> Op["Operation"]:
            self.message = yield Unary(method, request)
            return self
        return self._connection._transport.run(op())

    def refresh(self) -> Any:
        return self._call("GetOperation", pb.GetOperationRequest(name=self.name))

    def cancel(self) -> Any:
        """Cancels it before the switch: its work is discarded and the table stays as it was."""
        return self._call("CancelOperation", pb.CancelOperationRequest(name=self.name))

    def resume(self) -> Any:
        """Continues a PAUSED operation from where it stopped."""
        return self._call("ResumeOperation", pb.ResumeOperationRequest(name=self.name))

    def wait(self, timeout: float | None = None, progress: bool = False) -> Any:
        """Polls until the operation is done (or paused); raises OperationFailed unless it SUCCEEDED."""
        if self._connection.is_async:
            return self._wait_async(timeout, progress)
        bar = _bar(self, progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._settled():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"operation {self.name} still {self.state.lower()} after {timeout}s")
            time.sleep(POLL_SECONDS)
            self.refresh()
            _advance(bar, self)
        return self._result(bar)

    async def _wait_async(self, timeout: float | None, progress: bool) -> "Operation":
        bar = _bar(self, progress)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._settled():
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"operation {self.name} still {self.state.lower()} after {timeout}s")
            await asyncio.sleep(POLL_SECONDS)
            await self.refresh()
            _advance(bar, self)
        return self._result(bar)

    def _settled(self) -> bool:
        return self.done or self.message.state == pb.OPERATION_STATE_PAUSED

    def _result(self, bar: Any) -> "Operation":
        if bar is not None:
            bar.close()
        if self.message.state != pb.OPERATION_STATE_SUCCEEDED:
            raise OperationFailed(self)
        return self


def _bar(operation: Operation, progress: bool) -> Any:
    if not progress:
        return None
    from tqdm.auto import tqdm

    bar = tqdm(total=operation.rows_total or None, unit="rows", desc=operation.name.rsplit("/", 1)[-1][:8])
    _advance(bar, operation)
    return bar


def _advance(bar: Any, operation: Operation) -> None:
    if bar is None:
        return
    if operation.rows_total and bar.total != operation.rows_total:
        bar.total = operation.rows_total
    bar.update(max(0, operation.rows_done - bar.n))


__all__ = ["Operation", "OperationFailed"]
