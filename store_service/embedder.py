"""The store's side of the inter-service call: asks the embed service for a function's description, for
the vectors of rows added without them (source purpose), and for query vectors (query purpose).

Source values go out in chunks of `batch_size` inputs with up to `max_in_flight` chunks in the air, so the
embed service's dynamic batching stays fed while the store receives and writes other rows. The embed
service's errors come back as the store's domain errors with the embed service's reason kept; a function the
embed service does not know is a *local* function (the client computes its vectors).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import grpc
import numpy as np
import pyarrow as pa
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from rpc_common import errors
from rpc_common.service_host import CLIENT_OPTIONS
from store_service.schema import IMAGE, TEXT, FunctionConfig, is_binary, source_kind
from vectorlane_contract.embed.v1 import embed_service_pb2 as epb
from vectorlane_contract.embed.v1 import embed_service_pb2_grpc as epb_grpc

@dataclass(frozen=True)
class FunctionInfo:
    """What the embed service says about a configured function."""

    dimensions: int
    modalities: frozenset[str]
    secret_settings: tuple[str, ...]


@dataclass(frozen=True)
class Query:
    """A search query to embed: exactly one of text, image bytes or image URI."""

    text: str | None = None
    image_bytes: bytes | None = None
    image_uri: str | None = None


class Deadline:
    """The caller's deadline, passed on to the embed service so a slow model cannot outlive the call."""

    def __init__(self, seconds: float | None) -> None:
        self._at = None if seconds is None else time.monotonic() + seconds

    def remaining(self, cap: float) -> float:
        if self._at is None:
            return cap
        left = self._at - time.monotonic()
        if left <= 0:
            raise errors.DeadlineExceeded("the call's deadline passed before embedding finished",
                                          reason="DEADLINE_EXCEEDED")
        return min(cap, left)


    def check(self, what: str) -> None:
        """DEADLINE_EXCEEDED once the deadline has passed, naming `what` it cut short."""
        if self._at is not None and time.monotonic() >= self._at:
            raise errors.DeadlineExceeded(f"the call's deadline passed before {what}", reason="DEADLINE_EXCEEDED")


NO_DEADLINE = Deadline(None)


class Embedder:
    def __init__(self, address: str, *, timeout_s: float = 60.0, batch_size: int = 256, max_in_flight: int = 4,
                 metadata: Sequence[tuple[str, str]] = (), credentials: grpc.ChannelCredentials | None = None
                 ) -> None:
        """`metadata` goes with every call (the store's bearer token); `credentials`: TLS towards the embed
        service (None: plaintext)."""
        self.address = address
        self._timeout = timeout_s
        self._batch_size = batch_size
        self._max_in_flight = max_in_flight
        self._metadata = tuple(metadata)
        if not address:
            self._channel = None
        elif credentials is not None:
            self._channel = grpc.secure_channel(address, credentials, options=CLIENT_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(address, options=CLIENT_OPTIONS)
        self._stub = epb_grpc.EmbeddingServiceStub(self._channel) if self._channel else None
        self._described: dict[str, FunctionInfo | None] = {}
        self._lock = threading.Lock()

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()

    # ----- functions ----------------------------------------------------------------------------------
    def describe(self, config: FunctionConfig, deadline: Deadline = NO_DEADLINE) -> FunctionInfo | None:
        """The function as the embed service knows it, or None for a local function."""
        key = _key(config)
        with self._lock:
            if key in self._described:
                return self._described[key]
        if self._stub is None:
            info = None
        else:
            request = epb.DescribeFunctionRequest(function=_spec(config))
            try:
                reply = self._stub.DescribeFunction(request, timeout=deadline.remaining(self._timeout),
                                                    metadata=self._metadata)
            except grpc.RpcError as exc:
                reason, _ = _error_info(exc)
                if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and reason == "UNKNOWN_FUNCTION":
                    reply = None
                else:
                    raise self._translate(exc, config) from None
            info = None if reply is None else FunctionInfo(
                reply.dimensions, frozenset(_MODALITIES[m] for m in reply.modalities if m in _MODALITIES),
                tuple(reply.secret_settings))
        with self._lock:
            self._described[key] = info
        return info

    def is_server_function(self, config: FunctionConfig, deadline: Deadline = NO_DEADLINE) -> bool:
        return self.describe(config, deadline) is not None

    # ----- embedding ----------------------------------------------------------------------------------
    def embed_source(self, config: FunctionConfig, values: pa.Array, deadline: Deadline = NO_DEADLINE,
                     images: Mapping[str, bytes] | None = None) -> np.ndarray:
        """Vectors for source values (no nulls), in order: text for a text function, images (URIs as
        strings, encoded bytes as binary) for a function that embeds images, as LanceDB's open-clip does;
        a URI found in `images` is embedded from those bytes instead of being fetched."""
        info = self._require(config, deadline)
        as_images = source_kind(config, values.type, info.modalities) == IMAGE
        python = values.to_pylist()
        if is_binary(values.type):
            inputs = [epb.EmbedInput(image_bytes=v) for v in python]
        elif as_images:
            images = images or {}
            inputs = [epb.EmbedInput(image_bytes=images[v]) if v in images else epb.EmbedInput(image_uri=v)
                      for v in python]
        else:
            # Shortest texts first: each model batch then pads to similar lengths (as SentenceTransformer.encode
            # sorts its input); the vectors go back to the rows' order.
            order = np.argsort(np.fromiter(map(len, python), dtype=np.int64, count=len(python)), kind="stable")
            inputs = [epb.EmbedInput(text=python[i]) for i in order]
            out = np.empty((len(python), info.dimensions), dtype=np.float32)
            out[order] = self._embed(config, inputs, epb.INPUT_PURPOSE_SOURCE, info.dimensions, deadline, order)
            return out
        return self._embed(config, inputs, epb.INPUT_PURPOSE_SOURCE, info.dimensions, deadline)

    def embed_query(self, config: FunctionConfig, query: Query, deadline: Deadline = NO_DEADLINE) -> np.ndarray:
        return self.embed_items(config, [query], as_queries=True, deadline=deadline)[0]

    def embed_items(self, config: FunctionConfig, items: list[Query], *, as_queries: bool,
                    deadline: Deadline = NO_DEADLINE) -> np.ndarray:
        """Vectors for texts and images, in order, as search queries or as source values."""
        info = self._require(config, deadline)
        inputs = []
        for item in items:
            wanted = TEXT if item.text is not None else IMAGE
            if wanted not in info.modalities:
                raise errors.InvalidArgument(f"function {config.name!r} cannot embed a {wanted}",
                                             reason="UNSUPPORTED_QUERY_TYPE", function=config.name)
            if item.text is not None:
                inputs.append(epb.EmbedInput(text=item.text))
            elif item.image_bytes is not None:
                inputs.append(epb.EmbedInput(image_bytes=item.image_bytes))
            else:
                inputs.append(epb.EmbedInput(image_uri=item.image_uri or ""))
        purpose = epb.INPUT_PURPOSE_QUERY if as_queries else epb.INPUT_PURPOSE_SOURCE
        return self._embed(config, inputs, purpose, info.dimensions, deadline)

    def rerank(self, config: FunctionConfig, query: str, documents: list[str],
               deadline: Deadline = NO_DEADLINE) -> np.ndarray:
        """One score per document from the embed service's rerank function `config` (one call)."""
        if self._stub is None:
            raise errors.FailedPrecondition("reranking needs the embed service, and this store has none "
                                            "(--embed-address)", reason="NO_EMBED_SERVICE")
        request = epb.RerankRequest(function=_spec(config), query=query, documents=documents)
        try:
            reply = self._stub.Rerank(request, timeout=deadline.remaining(self._timeout), metadata=self._metadata)
        except grpc.RpcError as exc:
            raise self._translate(exc, config) from None
        if len(reply.scores) != len(documents):
            raise errors.ServiceError(f"the embed service answered function {config.name!r} with "
                                      f"{len(reply.scores)} scores for {len(documents)} documents",
                                      reason="EMBED_SERVICE_MISMATCH")
        return np.asarray(reply.scores, dtype=np.float32)

    def _require(self, config: FunctionConfig, deadline: Deadline) -> FunctionInfo:
        info = self.describe(config, deadline)
        if info is None:
            raise errors.FailedPrecondition(
                f"function {config.name!r} of column {config.vector_column!r} is a local function: the embed "
                "service does not have it, so its vectors must come with the rows (or the query)",
                reason="LOCAL_FUNCTION", function=config.name, column=config.vector_column)
        return info

    def _embed(self, config: FunctionConfig, inputs: list[epb.EmbedInput], purpose: int, dims: int,
               deadline: Deadline, positions: np.ndarray | None = None) -> np.ndarray:
        """Vectors of `inputs`, sent in calls of `batch_size`; an input's error names its place in the caller's
        values (`positions[i]` for input i when the caller reordered them)."""
        out = np.empty((len(inputs), dims), dtype=np.float32)
        spec = _spec(config)
        pending: list[tuple[int, grpc.Future]] = []
        where = positions if positions is not None else np.arange(len(inputs))

        def settle(start: int, future: grpc.Future) -> None:
            try:
                reply = future.result()
            except grpc.RpcError as exc:
                for _, other in pending:
                    other.cancel()
                raise self._translate(exc, config, lambda i: int(where[start + i])) from None
            if reply.dimensions != dims or len(reply.embeddings) != min(self._batch_size, len(inputs) - start):
                raise errors.ServiceError(f"the embed service answered function {config.name!r} with "
                                          f"{len(reply.embeddings)}x{reply.dimensions} vectors; expected "
                                          f"{dims} dimensions", reason="EMBED_SERVICE_MISMATCH")
            for offset, embedding in enumerate(reply.embeddings):
                out[start + offset] = embedding.values

        for start in range(0, len(inputs), self._batch_size):
            request = epb.EmbedRequest(function=spec, inputs=inputs[start:start + self._batch_size], purpose=purpose)
            assert self._stub is not None
            pending.append((start, self._stub.Embed.future(request, timeout=deadline.remaining(self._timeout),
                                                           metadata=self._metadata)))
            if len(pending) >= self._max_in_flight:
                settle(*pending.pop(0))
        while pending:
            settle(*pending.pop(0))
        return out

    def _translate(self, exc: grpc.RpcError, config: FunctionConfig,
                   place: Callable[[int], int] | None = None) -> errors.ServiceError:
        """The embed service's status as one of the store's errors, keeping its reason and metadata; the index
        of a failing input becomes its place among the values the caller gave (`place`)."""
        reason, metadata = _error_info(exc)
        code = exc.code()
        details = exc.details() or code.name
        message = f"embed service ({self.address}), function {config.name!r}: {details}"
        if place is not None and metadata.get("index", "").isdigit():
            metadata["index"] = str(place(int(metadata["index"])))
            message += f" (value {metadata['index']} of those sent)"
        metadata = {**metadata, "function": config.name}
        if code == grpc.StatusCode.UNAVAILABLE:
            return errors.Unavailable(message, reason=reason or "EMBED_SERVICE_UNAVAILABLE", **metadata)
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return errors.DeadlineExceeded(message, reason=reason or "EMBED_DEADLINE_EXCEEDED", **metadata)
        if code == grpc.StatusCode.CANCELLED and not reason:
            # Not the store's doing (it never reads a call it cancelled) and not the service's own answer (that
            # carries a reason): the embed service ended the call as it stopped. For the caller, it is away.
            return errors.Unavailable(f"{message} (the embed service ended the call: it stopped or restarted)",
                                      reason="EMBED_SERVICE_UNAVAILABLE", **metadata)
        if code == grpc.StatusCode.CANCELLED:
            return errors.Cancelled(message, reason=reason, **metadata)
        if code == grpc.StatusCode.UNAUTHENTICATED:
            return errors.FailedPrecondition(f"the store's credentials were refused by the embed service: "
                                             f"{details}", reason="EMBED_SERVICE_UNAUTHENTICATED")
        mapped = _CATEGORIES.get(code)
        if mapped is None:
            return errors.ServiceError(message, reason=reason or "EMBED_SERVICE_FAILED", **metadata)
        return mapped(message, reason=reason or mapped.reason, **metadata)


_MODALITIES = {epb.MODALITY_TEXT: TEXT, epb.MODALITY_IMAGE: IMAGE}
_CATEGORIES: dict[grpc.StatusCode, type[errors.ServiceError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: errors.InvalidArgument,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: errors.FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: errors.PermissionDenied,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.ResourceExhausted,
    grpc.StatusCode.ABORTED: errors.Aborted,
}


def _key(config: FunctionConfig) -> str:
    return config.name + " " + json.dumps(config.model, sort_keys=True)


def _spec(config: FunctionConfig) -> epb.FunctionSpec:
    settings = struct_pb2.Struct()
    settings.update(config.model)
    return epb.FunctionSpec(name=config.name, settings=settings)


def _error_info(exc: grpc.RpcError) -> tuple[str, dict[str, str]]:
    try:
        status = rpc_status.from_call(exc)
    except ValueError:
        status = None
    if status is not None:
        for detail in status.details:
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info):
                return info.reason, dict(info.metadata)
    return "", {}
