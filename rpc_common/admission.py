"""Admission of calls, the same for every vectorlane service: slow or idle callers cannot take a service down.

Found by the security review: 40 AddRows streams held open (the worker pool is 32) made Search, CountRows
*and Health* hit their deadlines, because every call, a stream that sends nothing included, holds a worker
thread for as long as it lasts, and gRPC queues the rest behind it.

- Data calls run at most `max_workers` at a time; the pool has HEALTH_THREADS more, so health (and
  reflection) always gets a thread. A data call beyond the limit is refused at once with RESOURCE_EXHAUSTED
  (`SERVER_BUSY`), gRPC's load shedding, instead of queueing without bound.
- Client streams (uploads) are bounded twice more: `max_streams` in the service and
  `max_streams_per_client` per caller (its bearer token when auth is on, else its address: without auth a
  made-up token would make a new caller), so uploads can never take the threads short reads need
  (`TOO_MANY_STREAMS`).
- A stream that sends nothing for `stream_idle_timeout_s` is ended with DEADLINE_EXCEEDED
  (`STREAM_IDLE_TIMEOUT`). Its messages are read on a thread of its own, one message ahead, so the call can
  give up on a silent client; the thread ends with the call.
- A stream that does not end normally (cancelled, broken) never looks like a complete one: its next message
  raises CANCELLED (`CALLER_GONE`). gRPC may report a cancelled stream's end before the cancellation itself
  (measured: 3 of 40 adds cancelled after their first message were committed; the cancellation showed up
  0.01-0.6 ms after the end), so a handler about to commit asks `still_wanted(requests, context)`, which
  answers once END_SETTLE_S has passed since the stream's end, before and again under its commit lock.
  Measured with 400 adds cancelled 5-100 ms in, on a loaded machine: 21 committed with no wait, 0 with 5 ms
  (and 0 with 3 ms); the wait costs a one-row add ~5 ms (9-15 ms without it), 20 ms would have cost 20.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from rpc_common import settings
from rpc_common.errors import Cancelled, DeadlineExceeded, ResourceExhausted
from rpc_common.handler_wrapping import Behaviour, WrappingInterceptor, rewrap
from rpc_common.security import HEALTH_SERVICE, REFLECTION_SERVICES

_opt = settings.setting
HEALTH_THREADS = 4
END_SETTLE_S = 0.005
CLOSED_POLL_S = 0.25  # how soon a thread still reading a call's stream notices the call was answered
_OPEN_SERVICES = tuple(f"/{s}/" for s in (HEALTH_SERVICE, *REFLECTION_SERVICES))


@dataclass(frozen=True)
class AdmissionSettings:
    max_streams: int = _opt(16, "client streams (uploads) served at once; more are refused (RESOURCE_EXHAUSTED)")
    max_streams_per_client: int = _opt(8, "client streams one caller (token, else address) may hold at once")
    stream_idle_timeout_s: float = _opt(60.0, "a client stream that sends nothing for this long is ended "
                                              "(DEADLINE_EXCEEDED)")


class _Counts:
    def __init__(self) -> None:
        self.calls = 0
        self.streams = 0
        self.per_client: dict[str, int] = {}
        self.lock = threading.Lock()


def client_of(metadata: Any, peer: str, by_token: bool) -> str:
    """Who is calling, for per-client limits: a digest of its (checked) bearer token, else its address."""
    token = next((value for key, value in metadata or () if key == "authorization"), None) if by_token else None
    if token:
        return "token:" + hashlib.sha256(str(token).encode()).hexdigest()[:16]
    return "peer:" + peer.rsplit(":", 1)[0]


class AdmissionInterceptor(WrappingInterceptor):
    """Place it outermost but for metrics and error mapping, so refusals become statuses with ErrorInfo."""

    def __init__(self, max_calls: int, limits: AdmissionSettings, *, auth_on: bool = False) -> None:
        super().__init__()
        self._max_calls = max_calls
        self._limits = limits
        self._by_token = auth_on
        self._counts = _Counts()

    def in_flight(self) -> tuple[int, int]:
        """(data calls, client streams) being served."""
        with self._counts.lock:
            return self._counts.calls, self._counts.streams

    def wrap(self, method: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
        if method.startswith(_OPEN_SERVICES):
            return handler
        streaming_in = handler.request_streaming
        limits, counts, max_calls, by_token = self._limits, self._counts, self._max_calls, self._by_token

        def admit(context: grpc.ServicerContext) -> str | None:
            """Takes a slot, or raises; the client key when a stream slot was taken too."""
            client = client_of(context.invocation_metadata(), context.peer(), by_token) if streaming_in else None
            with counts.lock:
                if counts.calls >= max_calls:
                    raise ResourceExhausted(f"the service is serving its limit of {max_calls} calls; retry "
                                            "shortly", reason="SERVER_BUSY", limit=max_calls)
                if client is not None:
                    if counts.streams >= limits.max_streams:
                        raise ResourceExhausted(f"the service holds its limit of {limits.max_streams} open "
                                                "streams; retry shortly", reason="TOO_MANY_STREAMS",
                                                limit=limits.max_streams)
                    if counts.per_client.get(client, 0) >= limits.max_streams_per_client:
                        raise ResourceExhausted(f"this caller holds its limit of {limits.max_streams_per_client} "
                                                "open streams; finish one first", reason="TOO_MANY_STREAMS",
                                                limit=limits.max_streams_per_client)
                    counts.streams += 1
                    counts.per_client[client] = counts.per_client.get(client, 0) + 1
                counts.calls += 1
            return client

        def release(client: str | None) -> None:
            with counts.lock:
                counts.calls -= 1
                if client is not None:
                    counts.streams -= 1
                    left = counts.per_client[client] - 1
                    if left:
                        counts.per_client[client] = left
                    else:
                        del counts.per_client[client]

        def requests_of(request: Any, context: grpc.ServicerContext) -> tuple[Any, Guarded | None]:
            if not streaming_in:
                return request, None
            guarded = Guarded(request, context, limits.stream_idle_timeout_s)
            return guarded, guarded

        def unary(inner: Behaviour) -> Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Any:
                client = admit(context)
                wrapped, guarded = requests_of(request, context)
                try:
                    return inner(wrapped, context)
                finally:
                    if guarded is not None:
                        guarded.close()
                    release(client)

            return call

        def streaming(inner: Behaviour) -> Behaviour:
            def call(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                client = admit(context)
                wrapped, guarded = requests_of(request, context)
                try:
                    yield from inner(wrapped, context)
                finally:
                    if guarded is not None:
                        guarded.close()
                    release(client)

            return call

        return rewrap(handler, unary, streaming)


def still_wanted(requests: Any, context: grpc.ServicerContext) -> Callable[[], bool]:
    """What a stream's handler asks just before committing: is the caller still there."""
    return requests.still_wanted if isinstance(requests, Guarded) else context.is_active


_MESSAGE, _END, _GONE, _FAILED = "message", "end", "gone", "failed"


class Guarded:
    """A call's request stream, read one message ahead on a thread of its own: `next` gives up after the
    idle timeout, and a stream that was cancelled or broke raises CANCELLED instead of ending."""

    def __init__(self, requests: Iterator[Any], context: grpc.ServicerContext, idle_timeout: float) -> None:
        self._requests = requests
        self._context = context
        self._idle = idle_timeout
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=1)
        self._closed = threading.Event()
        self._done = False
        self._ended_at: float | None = None
        self._reader = threading.Thread(target=self._read, name="stream-reader", daemon=True)
        self._reader.start()

    def __iter__(self) -> "Guarded":
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        idle_until = time.monotonic() + self._idle
        while True:
            try:
                kind, value = self._queue.get(timeout=max(0.0, min(CLOSED_POLL_S, idle_until - time.monotonic())))
                break
            except queue.Empty:
                if self._closed.is_set():  # the call was answered (a thread still reading it stops here)
                    self._done = True
                    raise Cancelled("the call ended before its stream was read", reason="CALLER_GONE") from None
                if time.monotonic() >= idle_until:
                    self._done = True
                    raise DeadlineExceeded(f"the stream sent nothing for {self._idle:g} s; it was ended (send the "
                                           "next message sooner, or end the stream)",
                                           reason="STREAM_IDLE_TIMEOUT") from None
        if kind == _MESSAGE:
            return value
        self._done = True
        if kind == _FAILED:
            raise value
        if kind == _GONE or not self._context.is_active():
            raise Cancelled("the caller cancelled the stream or went away before it ended; nothing from it is "
                            "kept", reason="CALLER_GONE")
        self._ended_at = time.monotonic()
        raise StopIteration

    def still_wanted(self) -> bool:
        """Whether the caller is still there, asked no sooner than END_SETTLE_S after the stream's end."""
        if self._ended_at is not None:
            wait = self._ended_at + END_SETTLE_S - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        return self._context.is_active()

    def close(self) -> None:
        self._closed.set()

    def _read(self) -> None:
        try:
            for message in self._requests:
                if not self._put((_MESSAGE, message)):
                    return
            self._put((_END, None))
        except grpc.RpcError:  # the call was cancelled or ended under the reader
            self._put((_GONE, None))
        except Exception as exc:  # noqa: BLE001 - handed to the handler's thread, which raises it
            self._put((_FAILED, exc))

    def _put(self, item: tuple[str, Any]) -> bool:
        """Hands one item over, waiting while the handler is busy; False once the handler has finished."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=0.5)
                return True
            except queue.Full:
                continue
        return False
