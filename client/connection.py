"""`connect()` / `connect_async()`: a connection to the store, LanceDB's `DBConnection` (`Connection`, whose
tables are `Table`) and `AsyncConnection` (awaited, whose tables are `AsyncTable`). The logic is in `_ops`,
written once; the two classes run it over a sync (grpc) or an asyncio (grpc.aio) transport.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import grpc

from vectorlane import _ops, tokenizers
from vectorlane._transport import AsyncTransport, ChannelOptions, SyncTransport
from vectorlane.embeddings.config import EmbeddingFunctionConfig
from vectorlane.operations import Operation
from vectorlane.results import FtsToken
from vectorlane_contract.store.v1 import store_service_pb2 as pb
from vectorlane.table import AsyncTable, Table, TableOps

DEFAULT_URI = "grpc://localhost:50051"
DEFAULT_TIMEOUT = 300.0  # seconds per call: a deadline on every call, long enough for a large add
_MAX_MESSAGE = 64 << 20  # the services' default --max-message-bytes
# Calls that change nothing are retried by gRPC itself when the store is briefly unreachable (a restart, a
# rollout): up to 5 attempts, 0.1 s doubling to 2 s. Writes are never retried blindly: only the unary ones a
# write conflict refused (ABORTED: the store committed nothing; another writer, maybe on another replica,
# changed the rows first), which the store then applies to the version latest now, as Lance retries its own.
_IDEMPOTENT = ("GetTable", "ListTables", "Search", "ReadRows", "CountRows", "ListIndexes", "ListVersions",
               "DescribeFunction", "ComputeEmbeddings", "GetTableStats", "ListTags")
_CONFLICT_RETRIED = ("DeleteRows", "UpdateRows", "AddColumns", "MergeColumns", "AlterColumns", "DropColumns",
                     "DropIndex", "RestoreVersion", "CreateTag", "DeleteTag")
_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}], "methodConfig": [{
    "name": [{"service": "vectorlane.store.v1.StorageService", "method": m} for m in _IDEMPOTENT],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s", "maxBackoff": "2s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"]},
}, {
    "name": [{"service": "vectorlane.store.v1.StorageService", "method": m} for m in _CONFLICT_RETRIED],
    "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.05s", "maxBackoff": "1s", "backoffMultiplier": 2,
                    "retryableStatusCodes": ["ABORTED"]},
}]})


def _credentials(root_certificates: str | Path | bytes | None, client_cert: str | Path | bytes | None,
                 client_key: str | Path | bytes | None) -> grpc.ChannelCredentials:
    def read(value: str | Path | bytes | None) -> bytes | None:
        return value if isinstance(value, bytes) or value is None else Path(value).read_bytes()
    return grpc.ssl_channel_credentials(read(root_certificates), read(client_key), read(client_cert))


def _target(uri: str) -> tuple[str, bool]:
    """(host:port, tls) of `grpc://host:port` / `grpcs://host:port` (or a bare `host:port`)."""
    parsed = urlparse(uri if "://" in uri else f"grpc://{uri}")
    if parsed.scheme not in ("grpc", "grpcs") or not parsed.hostname:
        raise ValueError(f"expected grpc://host:port or grpcs://host:port, not {uri!r}")
    host = f"[{parsed.hostname}]" if ":" in parsed.hostname else parsed.hostname
    return f"{host}:{parsed.port or 50051}", parsed.scheme == "grpcs"


def _version_of(version: int | None) -> int:
    if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version <= 0):
        raise ValueError("versions start at 1")
    return version or 0


class ConnectionBase:
    """What a connection is: the store it talks to, its transport, and the synchronous channel used to
    describe functions (`ndims()` is asked while a model class is defined, also on async connections)."""

    is_async = False
    _table_class: type[TableOps] = TableOps

    def __init__(self, uri: str, transport: Any, describer: SyncTransport, upload_images: bool = True) -> None:
        self.uri = uri
        self.upload_images = upload_images
        self._transport = transport
        self._describer = describer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    def describe_function(self, name: str, settings: dict[str, Any]) -> pb.DescribeFunctionResponse:
        """What the store says about a function (always synchronous)."""
        return self._describer.run(_ops.describe_function(name, settings))

    def _forget(self) -> None:
        global _latest
        with _latest_lock:
            if _latest is self:
                _latest = None
        if self._describer is not self._transport:
            self._describer.close()

    @staticmethod
    def _create(connection: "ConnectionBase", name: str, data: Any, schema: Any, mode: str, exist_ok: bool,
                on_bad_vectors: str, fill_value: float, embedding_functions: list[EmbeddingFunctionConfig] | None
                ) -> _ops.Op[Any]:
        return _ops.create_table(connection, name, data, schema, mode, exist_ok, on_bad_vectors, fill_value,
                                 list(embedding_functions or []))


class Connection(ConnectionBase):
    """Tables in one store (LanceDB's `DBConnection`). Get one from `vectorlane.connect`."""

    _transport: SyncTransport
    _table_class = Table

    # ----- tables -------------------------------------------------------------------------------------
    def table_names(self, page_token: str | None = None, limit: int | None = None) -> list[str]:
        """Table names in order; with `limit`, one page of at most `limit` names after `page_token` (the
        last name of the previous page)."""
        return self._transport.run(_ops.table_names(page_token, limit))

    def create_table(self, name: str, data: Any = None, schema: Any = None, mode: str = "create",
                     exist_ok: bool = False, on_bad_vectors: str = "error", fill_value: float = 0.0,
                     embedding_functions: list[EmbeddingFunctionConfig] | None = None,
                     storage_options: dict[str, str] | None = None) -> Table:
        """A new table from a schema (a `LanceModel` subclass or an Arrow schema) and/or first rows. `mode`:
        "create" (an existing table is an error unless `exist_ok`) or "overwrite". `storage_options` are
        accepted for LanceDB code and not used: the store's operator decides where and how tables are kept."""
        return cast(Table, self._transport.run(self._create(self, name, data, schema, mode, exist_ok,
                                                            on_bad_vectors, fill_value, embedding_functions)))

    def open_table(self, name: str, version: int | None = None) -> Table:
        """The table `name`; with `version`, checked out at that version (reads only, as `checkout`)."""
        return cast(Table, self._transport.run(_ops.open_table(self, name, _version_of(version))))

    def drop_table(self, name: str, ignore_missing: bool = False) -> None:
        self._transport.run(_ops.drop_table(name, ignore_missing))

    def drop_all_tables(self) -> None:
        self._transport.run(_ops.drop_all_tables())

    def rename_table(self, cur_name: str, new_name: str, cur_namespace_path: list[str] | None = None,
                     new_namespace_path: list[str] | None = None) -> None:
        """Not supported, as in LanceDB's local databases (NotImplementedError)."""
        raise NotImplementedError(_ops.RENAME_REFUSED)

    def get_operation(self, name: str) -> Operation:
        """A long-running operation by its name (`tables/<table>/operations/<id>`)."""
        return self._transport.run(_ops.start_operation(self, "GetOperation", pb.GetOperationRequest(name=name)))

    def tokenize(self, query: str, **options: Any) -> list[FtsToken]:
        """`query`'s tokens as an FTS index with LanceDB's tokenizer `options` would keep them, tokenized by
        the store (`vectorlane.tokenize` does it in this process)."""
        return self._transport.run(_ops.tokenize(query, settings=tokenizers.settings(**options).tokenizer_proto()))

    # ----- lifetime -----------------------------------------------------------------------------------
    def close(self) -> None:
        self._forget()
        self._transport.close()

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncConnection(ConnectionBase):
    """Tables in one store, every call awaited (LanceDB's `AsyncConnection`). Get one from
    `await vectorlane.connect_async(uri)`."""

    is_async = True
    _transport: AsyncTransport
    _table_class = AsyncTable

    async def table_names(self, page_token: str | None = None, limit: int | None = None) -> list[str]:
        return await self._transport.run(_ops.table_names(page_token, limit))

    async def create_table(self, name: str, data: Any = None, schema: Any = None, mode: str = "create",
                           exist_ok: bool = False, on_bad_vectors: str = "error", fill_value: float = 0.0,
                           embedding_functions: list[EmbeddingFunctionConfig] | None = None,
                           storage_options: dict[str, str] | None = None) -> AsyncTable:
        return cast(AsyncTable, await self._transport.run(self._create(
            self, name, data, schema, mode, exist_ok, on_bad_vectors, fill_value, embedding_functions)))

    async def open_table(self, name: str, version: int | None = None) -> AsyncTable:
        return cast(AsyncTable, await self._transport.run(_ops.open_table(self, name, _version_of(version))))

    async def drop_table(self, name: str, ignore_missing: bool = False) -> None:
        await self._transport.run(_ops.drop_table(name, ignore_missing))

    async def drop_all_tables(self) -> None:
        await self._transport.run(_ops.drop_all_tables())

    async def rename_table(self, cur_name: str, new_name: str, cur_namespace_path: list[str] | None = None,
                           new_namespace_path: list[str] | None = None) -> None:
        """Not supported, as in LanceDB's local databases (NotImplementedError)."""
        raise NotImplementedError(_ops.RENAME_REFUSED)

    async def get_operation(self, name: str) -> Operation:
        return await self._transport.run(_ops.start_operation(self, "GetOperation",
                                                              pb.GetOperationRequest(name=name)))

    async def tokenize(self, query: str, **options: Any) -> list[FtsToken]:
        return await self._transport.run(_ops.tokenize(query, settings=tokenizers.settings(**options)
                                                       .tokenizer_proto()))

    async def close(self) -> None:
        self._forget()
        await self._transport.close()

    async def __aenter__(self) -> "AsyncConnection":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


_latest: ConnectionBase | None = None
_latest_lock = threading.Lock()


def _latest_connection(name: str) -> ConnectionBase:
    with _latest_lock:
        connection = _latest
    if connection is None:
        raise RuntimeError(f"resolving embedding function {name!r} needs the store: call vectorlane.connect() first")
    return connection


def describe_function(name: str, settings: dict[str, Any]) -> pb.DescribeFunctionResponse:
    """Asks the most recently opened connection's store about a server function (what `ServerFunction.ndims()`
    uses: `get_registry()` is process-wide, as in LanceDB, and connect() comes first)."""
    return _latest_connection(name).describe_function(name, settings)


def compute_embeddings(name: str, settings: dict[str, Any], values: list[Any], as_queries: bool
                       ) -> list[Any]:
    """A server function's vectors, computed by the embed service through the most recent connection's store
    (always synchronous, like `describe_function`)."""
    return _latest_connection(name)._describer.run(_ops.compute_embeddings(name, settings, values, as_queries))


_STORE_DEFAULT: Any = object()  # read_consistency_interval not given: the store's own setting applies
READ_CONSISTENCY_KEY = "vectorlane-read-consistency"


def _consistency(interval: timedelta | float | None) -> tuple[tuple[str, str], ...]:
    """LanceDB's read_consistency_interval as the store reads it per call: seconds, or "none" (only the
    store's own commits are seen)."""
    if interval is _STORE_DEFAULT:
        return ()
    if interval is None:
        return ((READ_CONSISTENCY_KEY, "none"),)
    seconds = interval.total_seconds() if isinstance(interval, timedelta) else float(interval)
    if not 0 <= seconds <= 24 * 3600:
        raise ValueError("read_consistency_interval must be from 0 to 24 hours, or None")
    return ((READ_CONSISTENCY_KEY, repr(seconds)),)


def _options(api_key: str | None, timeout: float | None, grpc_options: dict[str, Any] | None,
             read_consistency_interval: timedelta | float | None = _STORE_DEFAULT) -> ChannelOptions:
    metadata = ((("authorization", f"Bearer {api_key}"),) if api_key else ()) + \
        _consistency(read_consistency_interval)
    options = {"grpc.max_send_message_length": _MAX_MESSAGE, "grpc.max_receive_message_length": _MAX_MESSAGE,
               "grpc.enable_retries": 1, "grpc.service_config": _SERVICE_CONFIG,
               # idle connections kept alive (the services allow pings every 20 s); the service config picks
               # round_robin so dns:///headless-service:port spreads calls over every pod
               "grpc.keepalive_time_ms": 30_000, "grpc.keepalive_timeout_ms": 10_000,
               "grpc.keepalive_permit_without_calls": 1, "grpc.http2.max_pings_without_data": 0,
               **(grpc_options or {})}
    return ChannelOptions(timeout=timeout, metadata=metadata, grpc_options=tuple(options.items()))


def _channel(module: Any, target: str, tls: bool, options: ChannelOptions, certificates: tuple[Any, ...]) -> Any:
    if tls:
        return module.secure_channel(target, _credentials(*certificates), options=list(options.grpc_options))
    return module.insecure_channel(target, options=list(options.grpc_options))


def connect(uri: str = DEFAULT_URI, *, api_key: str | None = None, timeout: float | None = DEFAULT_TIMEOUT,
            root_certificates: str | Path | bytes | None = None, client_cert: str | Path | bytes | None = None,
            client_key: str | Path | bytes | None = None, grpc_options: dict[str, Any] | None = None,
            upload_images: bool = True,
            read_consistency_interval: timedelta | float | None = _STORE_DEFAULT) -> Connection:
    """A connection to the store at `uri` (`grpc://host:port`; `grpcs://` for TLS, with `root_certificates`
    and, for mTLS, `client_cert` + `client_key`, as file paths or PEM bytes). `api_key` is sent as a bearer
    token on every call; `timeout` (seconds; None: none) bounds each call. `upload_images`: rows whose image URIs name
    local files send those files' bytes with them (turn it off when the embed service reads the same
    storage, so it fetches the URIs itself). `read_consistency_interval` (LanceDB's): how stale this
    connection's reads may be about versions other processes committed (a timedelta or seconds; 0: checked
    on every read; None: only the store's own commits); not given, the store's setting applies."""
    global _latest
    target, tls = _target(uri)
    options = _options(api_key, timeout, grpc_options, read_consistency_interval)
    certificates = (root_certificates, client_cert, client_key)
    transport = SyncTransport(_channel(grpc, target, tls, options, certificates), options)
    connection = Connection(uri, transport, transport, upload_images)
    with _latest_lock:
        _latest = connection
    return connection


async def connect_async(uri: str = DEFAULT_URI, *, api_key: str | None = None, timeout: float | None = DEFAULT_TIMEOUT,
                        root_certificates: str | Path | bytes | None = None,
                        client_cert: str | Path | bytes | None = None, client_key: str | Path | bytes | None = None,
                        grpc_options: dict[str, Any] | None = None, upload_images: bool = True,
                        read_consistency_interval: timedelta | float | None = _STORE_DEFAULT) -> AsyncConnection:
    """`connect` for asyncio (grpc.aio): every call of the connection and its tables is awaited."""
    global _latest
    target, tls = _target(uri)
    options = _options(api_key, timeout, grpc_options, read_consistency_interval)
    certificates = (root_certificates, client_cert, client_key)
    transport = AsyncTransport(_channel(grpc.aio, target, tls, options, certificates), options)
    describer = SyncTransport(_channel(grpc, target, tls, options, certificates), options)
    connection = AsyncConnection(uri, transport, describer, upload_images)
    with _latest_lock:
        _latest = connection
    return connection


__all__ = ["DEFAULT_URI", "AsyncConnection", "Connection", "ConnectionBase", "compute_embeddings", "connect",
           "connect_async", "describe_function"]
