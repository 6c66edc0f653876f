"""Dynamic batching: one queue per loaded model coalesces concurrent requests into model calls.

Like Triton's dynamic batcher: a batch closes when it holds `max_batch_size` inputs or when its oldest
input has waited `max_wait_s`; and, unlike it, as soon as inputs stop arriving (none for `quiet_s`), so a lone
caller does not pay the whole window (measured: a single-text MiniLM call took 21 ms through the service
against 12 ms in-process with a 5 ms window and no quiet rule). The queue owns all of its state; one worker
thread per queue runs the model, so model code never runs on gRPC's threads. A model error that names one
input fails only that input's request (with the input's index in it); the other requests in the batch run
again without it. A request whose caller has gone is dropped before its inputs reach the model; a queue
holding `max_queued` inputs refuses more (QueueFull). With `coalesce=False` each model call serves exactly
one request (batching off, for comparison).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from embed_service.errors import Cancelled, QueueFull, ShuttingDown

log = logging.getLogger(__name__)


class QueueObserver(Protocol):
    def queue_depth(self, queue: str, depth: int) -> None: ...

    def batch_run(self, queue: str, size: int, seconds: float) -> None: ...


@dataclass
class _Request:
    size: int
    is_active: Callable[[], bool]
    future: Future = field(default_factory=Future)
    vectors: np.ndarray | None = None
    filled: int = 0

    def fill(self, position: int, vector: np.ndarray) -> None:
        if self.vectors is None:
            self.vectors = np.empty((self.size, vector.shape[-1]), dtype=np.float32)
        self.vectors[position] = vector
        self.filled += 1
        if self.filled == self.size and not self.future.done():
            self.future.set_result(self.vectors)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)


@dataclass
class _Slot:
    request: _Request
    position: int
    item: Any
    enqueued: float


def _culprit(exc: BaseException, live: list[_Slot]) -> _Slot | None:
    """The input a model call's error names (a ServiceError's `index` metadata, within the batch), if any."""
    metadata = getattr(exc, "metadata", None)
    index = metadata.get("index") if isinstance(metadata, dict) else None
    if not isinstance(index, str) or not index.isdigit() or int(index) >= len(live):
        return None
    return live[int(index)]


class BatchQueue:
    def __init__(self, name: str, run_batch: Callable[[list[Any]], np.ndarray], *, max_batch_size: int = 64,
                 max_wait_s: float = 0.005, quiet_s: float = 0.001, max_queued: int = 8192,
                 coalesce: bool = True, observer: QueueObserver | None = None) -> None:
        self.name = name
        self._run_batch = run_batch
        self._max_batch = max_batch_size
        self._max_wait = max_wait_s
        self._quiet = quiet_s
        self._last_arrival = 0.0
        self._max_queued = max_queued
        self._coalesce = coalesce
        self._observer = observer
        self._slots: deque[_Slot] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._running = False  # a model call is under way
        self._worker = threading.Thread(target=self._work, name=f"batch-{name}", daemon=True)
        self._worker.start()

    def submit(self, items: Sequence[Any], is_active: Callable[[], bool] = lambda: True) -> Future:
        """Queues `items` as one request; the future resolves to their vectors, in order."""
        request = _Request(len(items), is_active)
        now = time.monotonic()
        with self._cond:
            if self._closed:
                raise ShuttingDown(f"queue {self.name} is shutting down", queue=self.name)
            if len(self._slots) + len(items) > self._max_queued:
                raise QueueFull(f"the queue for {self.name} holds {len(self._slots)} inputs; adding "
                                f"{len(items)} would pass its limit of {self._max_queued}", queue=self.name)
            self._slots.extend(_Slot(request, i, item, now) for i, item in enumerate(items))
            self._last_arrival = now
            self._cond.notify()
            depth = len(self._slots)
        self._observe_depth(depth)
        return request.future

    def depth(self) -> int:
        with self._cond:
            return len(self._slots)

    def idle(self) -> bool:
        """Nothing queued and no model call under way."""
        with self._cond:
            return not self._slots and not self._running

    def close(self) -> None:
        """Stops the worker after its current batch; inputs still queued fail with ShuttingDown."""
        with self._cond:
            self._closed = True
            left = list(self._slots)
            self._slots.clear()
            self._cond.notify_all()
        for slot in left:
            slot.request.fail(ShuttingDown(f"queue {self.name} shut down", queue=self.name))
        self._worker.join(timeout=30)

    def _next_batch(self) -> list[_Slot] | None:
        with self._cond:
            while not self._slots and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            self._running = True
            if self._coalesce:
                deadline = self._slots[0].enqueued + self._max_wait
                while len(self._slots) < self._max_batch and not self._closed:
                    remaining = min(deadline, self._last_arrival + self._quiet) - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                batch = [self._slots.popleft() for _ in range(min(self._max_batch, len(self._slots)))]
            else:
                first = self._slots[0].request
                batch = []
                while self._slots and self._slots[0].request is first and len(batch) < self._max_batch:
                    batch.append(self._slots.popleft())
            depth = len(self._slots)
        self._observe_depth(depth)
        return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                live = [s for s in batch if self._wanted(s.request)]
                if live:
                    self._run(live)
            finally:
                with self._cond:
                    self._running = False

    def _run(self, live: list[_Slot]) -> None:
        """One model call for `live`; when it fails because of one input (an error with its `index`), only
        that input's request fails, with the index of its own input, and the others' inputs run again."""
        while live:
            started = time.perf_counter()
            try:
                vectors = self._run_batch([s.item for s in live])
            except BaseException as exc:  # the worker goes on whatever the model raised
                culprit = _culprit(exc, live)
                if culprit is None:  # every caller in the batch hears of it
                    for request in {id(s.request): s.request for s in live}.values():
                        request.fail(exc)
                    return
                getattr(exc, "metadata", {})["index"] = str(culprit.position)
                culprit.request.fail(exc)
                live = [s for s in live if s.request is not culprit.request]
                continue
            finally:
                if self._observer is not None:
                    self._observer.batch_run(self.name, len(live), time.perf_counter() - started)
            if len(vectors) != len(live):
                bug = RuntimeError(f"this is a bug: {self.name} returned {len(vectors)} vectors for "
                                   f"{len(live)} inputs")
                for s in live:
                    s.request.fail(bug)
                return
            for slot, vector in zip(live, vectors):
                slot.request.fill(slot.position, vector)
            return

    @staticmethod
    def _wanted(request: _Request) -> bool:
        if request.future.done():
            return False  # failed earlier (an earlier part of it raised)
        try:
            active = request.is_active()
        except Exception:
            active = False
        if not active:
            request.fail(Cancelled("the caller went away before its inputs were embedded"))
        return active

    def _observe_depth(self, depth: int) -> None:
        if self._observer is not None:
            self._observer.queue_depth(self.name, depth)
