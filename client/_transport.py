"""The only place the client does I/O. Every operation is written once, as a generator that yields the calls
it needs and receives their replies (`Op`); a sync transport (grpc) and an async one (grpc.aio) drive the
same generators, so the async client is the sync one's logic, not a copy of it.

    def count(table):                        # an operation
        reply = yield Unary("CountRows", pb.CountRowsRequest(table=table))
        return reply.count
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Generator, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar, Union, cast

import grpc
from google.protobuf import message_factory
from google.protobuf.message import Message

from vectorlane.errors import from_rpc_error
from vectorlane_contract.store.v1 import store_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["StorageService"]
T = TypeVar("T")


@dataclass(frozen=True)
class Unary:
    """One request (a message, or its encoded bytes from `vectorlane.wire`), one reply."""

    method: str
    request: Message | bytes
    timeout: float | None = None  # seconds for this call; None: the connection's


@dataclass(frozen=True)
class Upload:
    """A client stream of already-encoded request messages (see `vectorlane.wire`), one reply."""

    method: str
    messages: Iterable[bytes]
    timeout: float | None = None  # seconds for this call; None: the connection's


@dataclass(frozen=True)
class Compute:
    """Work done in this process that may block for long (a local embedding function, perhaps calling a
    remote API): the sync transport runs it in place; the async one runs it on the embedding executor, so
    the event loop keeps serving meanwhile and other blocking I/O cannot starve it."""

    function: Callable[..., Any]
    args: tuple[Any, ...] = ()


Call = Union[Unary, Upload]
Op = Generator[Union[Call, Compute], Any, T]

EMBEDDING_THREADS = 4
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def embedding_executor() -> ThreadPoolExecutor:
    """The async client's threads for local embedding functions (made on first use, shared)."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(EMBEDDING_THREADS, thread_name_prefix="vectorlane-embedding")
        return _executor


@dataclass(frozen=True)
class ChannelOptions:
    """How a connection talks to the store: per-call timeout (seconds, None: none), metadata sent on every
    call (the api key as `authorization: Bearer ...`), gRPC channel options."""

    timeout: float | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    grpc_options: tuple[tuple[str, Any], ...] = ()

    def per_call(self, timeout: float | None = None) -> dict[str, Any]:
        return {"timeout": self.timeout if timeout is None else timeout, "metadata": self.metadata or None}


def _reply_type(method: str) -> Callable[[bytes], Message]:
    reply: Callable[[bytes], Message] = message_factory.GetMessageClass(
        SERVICE.methods_by_name[method].output_type).FromString
    return reply


class _Callables:
    """The channel's multi-callables (same API on grpc and grpc.aio channels), made once per method and
    request kind: making one costs about as much as a tenth of a small search's round trip."""

    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None:
        self.channel = channel
        self._made: dict[tuple[str, type], Any] = {}

    def __call__(self, call: Call) -> Any:
        if isinstance(call, Upload):
            key: tuple[str, type] = (call.method, Upload)
        else:
            key = (call.method, type(call.request))
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = self._make(call)
        return made

    def _make(self, call: Call) -> Any:
        path, reply = f"/{SERVICE.full_name}/{call.method}", _reply_type(call.method)
        if isinstance(call, Upload):
            return self.channel.stream_unary(path, response_deserializer=reply)  # messages are already bytes
        serializer = None if isinstance(call.request, bytes) else type(call.request).SerializeToString
        return self.channel.unary_unary(path, request_serializer=serializer, response_deserializer=reply)


class _Messages:
    """An upload's messages as gRPC consumes them (on its own thread), keeping the error that stopped them:
    gRPC only reports such a stream as CANCELLED, and the user should see what really went wrong."""

    def __init__(self, messages: Iterable[bytes]) -> None:
        self._messages = iter(messages)
        self.error: BaseException | None = None

    def __iter__(self) -> "_Messages":
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._messages)
        except StopIteration:
            raise
        except BaseException as exc:
            self.error = exc
            raise


def _payload(call: Call) -> Any:
    return _Messages(call.messages) if isinstance(call, Upload) else call.request


def _failure(exc: grpc.RpcError, payload: Any) -> BaseException:
    """What to raise for a failed call: the error of the upload's own messages, or the service's."""
    if isinstance(payload, _Messages) and payload.error is not None:
        return payload.error
    return from_rpc_error(exc)


class SyncTransport:
    def __init__(self, channel: grpc.Channel, options: ChannelOptions) -> None:
        self.channel = channel
        self.options = options
        self._callable = _Callables(channel)

    def call(self, call: Call | Compute) -> Any:
        if isinstance(call, Compute):
            return call.function(*call.args)
        payload = _payload(call)
        try:
            return self._callable(call)(payload, **self.options.per_call(call.timeout))
        except grpc.RpcError as exc:
            raise _failure(exc, payload) from None

    def run(self, op: Op[T]) -> T:
        try:
            call = next(op)
            while True:
                try:
                    reply = self.call(call)
                except Exception as exc:  # noqa: BLE001 - handed to the operation, which may handle it
                    call = op.throw(exc)
                else:
                    call = op.send(reply)
        except StopIteration as done:
            return cast(T, done.value)

    def close(self) -> None:
        self.channel.close()


class AsyncTransport:
    def __init__(self, channel: grpc.aio.Channel, options: ChannelOptions) -> None:
        self.channel = channel
        self.options = options
        self._callable = _Callables(channel)

    async def call(self, call: Call | Compute) -> Any:
        if isinstance(call, Compute):
            return await asyncio.get_running_loop().run_in_executor(embedding_executor(), call.function, *call.args)
        payload = _payload(call)
        try:
            return await self._callable(call)(payload, **self.options.per_call(call.timeout))
        except grpc.RpcError as exc:
            raise _failure(exc, payload) from None

    def run(self, op: Op[T]) -> Awaitable[T]:
        async def drive() -> T:
            try:
                call = next(op)
                while True:
                    try:
                        reply = await self.call(call)
                    except Exception as exc:  # noqa: BLE001 - handed to the operation
                        call = op.throw(exc)
                    else:
                        call = op.send(reply)
            except StopIteration as done:
                return cast(T, done.value)
        return drive()

    def close(self) -> Awaitable[None]:
        return cast(Awaitable[None], self.channel.close())
