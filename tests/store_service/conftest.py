"""Store fixtures: real store servers on 127.0.0.1 (ephemeral ports, a temporary data directory), wired to a
real embed service that hosts, besides the built-ins, `word-hash`: a small deterministic text embedding
(hashed bag of words) so tests can reason about which rows are close without loading a model."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pydantic
import pytest
from google.protobuf import struct_pb2

from embed_service.errors import InvalidInput
from embed_service.functions import EmbeddingFunction, get_registry
from store_service.config import StoreConfig
from store_service.server import StoreServer
from tests.conftest import RunningEmbed
import vectorlane
from vectorlane.store.v1 import store_service_pb2 as pb
from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

POISON = "poison"  # word-hash refuses any text containing it: an embed failure on demand


class WordHash(EmbeddingFunction):
    """Each word adds a fixed pseudo-random direction; texts sharing words are close."""

    description = "hashed bag of words (test function)"
    dims: int = pydantic.Field(32, ge=2, le=1024)

    def ndims(self) -> int:
        return self.dims

    def embed_texts(self, texts: list[str], purpose: Any) -> np.ndarray:
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            if POISON in text:
                raise InvalidInput(f"input {i} is poisoned", index=i)
            for word in text.lower().split():
                rng = np.random.default_rng(zlib.crc32(word.encode()))
                out[i] += rng.standard_normal(self.dims).astype(np.float32)
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
        return out


@pytest.fixture(autouse=True)
def word_hash_registered() -> Iterator[None]:
    """Registered for each store test only, so the embed service's own tests see the registry as shipped."""
    get_registry().register("word-hash")(WordHash)
    yield
    get_registry().unregister("word-hash")


@dataclass
class RunningStore:
    server: StoreServer
    channel: grpc.Channel
    stub: pb_grpc.StorageServiceStub
    data_dir: Path

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


BASE = StoreConfig(port=0, metrics_port=0, grace_seconds=1.0, embed_timeout_s=30.0)


@pytest.fixture
def start_store(tmp_path: Path) -> Iterator[Callable[..., RunningStore]]:
    running: list[RunningStore] = []

    def start(embed: RunningEmbed | None = None, **overrides: Any) -> RunningStore:
        overrides.setdefault("data_dir", tmp_path / "data")
        overrides.setdefault("embed_address", embed.target if embed else "")
        server = StoreServer(replace(BASE, **overrides)).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        handle = RunningStore(server, channel, pb_grpc.StorageServiceStub(channel), overrides["data_dir"])
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.channel.close()
        handle.server.stop(grace=0.2)


@pytest.fixture
def store(start_store: Callable[..., RunningStore], embed: RunningEmbed) -> RunningStore:
    return start_store(embed)


@pytest.fixture
def db(start_store: Callable[..., RunningStore]) -> Iterator[vectorlane.Connection]:
    """A client of a store without an embed service (`db.store`: the store it talks to)."""
    store = start_store()
    connection = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    connection.store = store  # type: ignore[attr-defined]
    yield connection
    connection.close()


# ----- request builders -----------------------------------------------------------------------------------
def json_rows(rows: list[dict[str, Any]]) -> pb.Rows:
    structs = []
    for row in rows:
        s = struct_pb2.Struct()
        s.update(row)
        structs.append(s)
    return pb.Rows(json=pb.JsonRows(rows=structs))


def arrow_rows(table: pa.Table) -> pb.Rows:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return pb.Rows(arrow_ipc=sink.getvalue().to_pybytes())


def rows_of(message: pb.Rows) -> pa.Table:
    if message.WhichOneof("format") == "arrow_ipc":
        return pa.ipc.open_stream(pa.py_buffer(message.arrow_ipc)).read_all()
    from google.protobuf import json_format
    return pa.Table.from_pylist([json_format.MessageToDict(r) for r in message.json.rows])


def function(registry_name: str, source: str, vector: str, **model: Any) -> pb.EmbeddingFunctionConfig:
    s = struct_pb2.Struct()
    s.update(model)
    return pb.EmbeddingFunctionConfig(name=registry_name, model=s, source_column=source, vector_column=vector)


def fields(*specs: tuple[str, int, int]) -> pb.Schema:
    return pb.Schema(fields=[pb.Field(name=n, type=t, dimensions=d, nullable=True) for n, t, d in specs])


DOCS_SCHEMA = fields(("id", pb.DATA_TYPE_INT64, 0), ("text", pb.DATA_TYPE_STRING, 0),
                     ("category", pb.DATA_TYPE_STRING, 0), ("vector", pb.DATA_TYPE_VECTOR, 0))


def create_docs(stub: pb_grpc.StorageServiceStub, name: str = "docs", rows: list[dict[str, Any]] | None = None,
                **model: Any) -> pb.Table:
    request = pb.CreateTableRequest(name=name, schema=DOCS_SCHEMA,
                                    embedding_functions=[function("word-hash", "text", "vector", **model)])
    if rows:
        request.rows.CopyFrom(json_rows(rows))
    return stub.CreateTable(request).table


def add(stub: pb_grpc.StorageServiceStub, table: str, *batches: pb.Rows, **options: Any) -> pb.AddRowsResponse:
    def messages() -> Iterator[pb.AddRowsRequest]:
        for i, rows in enumerate(batches):
            yield pb.AddRowsRequest(table=table, rows=rows, **options) if i == 0 else pb.AddRowsRequest(rows=rows)

    return stub.AddRows(messages())


def table_files(data_dir: Path, table: str) -> set[str]:
    root = data_dir / f"{table}.lance"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != ".lock"}
