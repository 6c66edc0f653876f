"""The catalogue of bad requests, across every RPC of both services: what each is and the status and
ErrorInfo reason it gets. `tests/test_bad_inputs.py` sends each one to real servers (auth on) and checks the
answer, that both services keep serving, and that no stored byte changed. The same catalogue is the README's
"Errors" section: `python -m tests.bad_inputs` rewrites it, and a test fails when the two drift apart.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
from google.protobuf import struct_pb2
from PIL import Image

from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.embed.v1 import embed_service_pb2_grpc as epb_grpc
from vectorlane.store.v1 import store_service_pb2 as pb
from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
UNAUTHENTICATED, EXHAUSTED = grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.RESOURCE_EXHAUSTED
DOCS, PLAIN, CLIP = "docs", "plain", "clip"  # the tables: with word-hash, with no function, with open-clip
STORE_TOKEN, EMBED_TOKEN = "catalogue-store-token", "catalogue-embed-token"
EMBED_MAX_MESSAGE = 4 * 1024 * 1024  # the embed service's --max-message-bytes in the catalogue's setup
IMAGE_MAX_BYTES = 50_000             # its --image-max-bytes
MAX_INPUTS = 64                      # its --max-inputs-per-request
README = Path(__file__).resolve().parents[1] / "README.md"
BEGIN, END = "<!-- errors:begin (python -m tests.bad_inputs) -->", "<!-- errors:end -->"


@dataclass
class Targets:
    """What a case may call: stubs that present the right token, the bare channels, and the image root."""
    store: pb_grpc.StorageServiceStub
    embed: epb_grpc.EmbeddingServiceStub
    store_channel: grpc.Channel
    embed_channel: grpc.Channel
    image_root: Path
    clip: epb.FunctionSpec  # the tiny open_clip checkpoint, as an embed FunctionSpec

    def raw(self, service: str, method: str, payload: bytes | list[bytes], token: str | None = "right",
            streaming: bool = False) -> Any:
        """`payload` sent as a request's bytes (a stream's messages' when a list), unchecked by protobuf."""
        full, channel, right = (("vectorlane.store.v1.StorageService", self.store_channel, STORE_TOKEN)
                                if service == "store" else
                                ("vectorlane.embed.v1.EmbeddingService", self.embed_channel, EMBED_TOKEN))
        metadata = () if token is None else (("authorization", f"Bearer {right if token == 'right' else token}"),)
        path = f"/{full}/{method}"
        if streaming:
            messages = payload if isinstance(payload, list) else [payload]
            return channel.stream_unary(path)(iter(messages), metadata=metadata, timeout=30)
        return channel.unary_unary(path)(payload, metadata=metadata, timeout=30)


@dataclass(frozen=True)
class Case:
    service: str            # "store" or "embed"
    rpc: str
    what: str               # the bad input, as the README says it
    call: Callable[[Targets], Any]
    code: grpc.StatusCode
    reason: str | None      # None: refused by the gRPC transport itself, before the service sees it

    @property
    def key(self) -> str:
        return f"{self.service} {self.rpc}: {self.what}"


# ----- request builders --------------------------------------------------------------------------------------
def struct(**kv: Any) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(kv)
    return s


def json_rows(*rows: dict[str, Any]) -> pb.Rows:
    return pb.Rows(json=pb.JsonRows(rows=[struct(**row) for row in rows]))


def add(*messages: pb.AddRowsRequest) -> Callable[[Targets], Any]:
    return lambda t: t.store.AddRows(iter(messages))


def merge(*messages: pb.MergeInsertRequest) -> Callable[[Targets], Any]:
    return lambda t: t.store.MergeInsert(iter(messages))


def nested_full_text(depth: int) -> pb.FullTextQuery:
    """A match query inside `depth - 1` boolean queries."""
    query = pb.FullTextQuery(match=pb.MatchQuery(terms="x", column="text"))
    for _ in range(depth - 1):
        query = pb.FullTextQuery(boolean=pb.BooleanQuery(clauses=[pb.BooleanClause(occur=pb.OCCUR_MUST, query=query)]))
    return query


def search(**fields: Any) -> Callable[[Targets], Any]:
    fields.setdefault("table", DOCS)
    return lambda t: t.store.Search(pb.SearchRequest(**fields))


def embed_fn(function: str, **settings: Any) -> epb.FunctionSpec:
    return epb.FunctionSpec(name=function, settings=struct(**settings))


def rerank(function: epb.FunctionSpec, query: str = "q", documents: list[str] | None = None
           ) -> Callable[[Targets], Any]:
    return lambda t: t.embed.Rerank(epb.RerankRequest(function=function, query=query,
                                                      documents=documents if documents is not None else ["d"]))


def embed(inputs: list[epb.EmbedInput], function: epb.FunctionSpec | None = None, **fields: Any
          ) -> Callable[[Targets], Any]:
    return lambda t: t.embed.Embed(epb.EmbedRequest(function=function or t.clip, inputs=inputs, **fields))


def clip_with(**settings: Any) -> Callable[[Targets], epb.FunctionSpec]:
    def spec(t: Targets) -> epb.FunctionSpec:
        merged = epb.FunctionSpec()
        merged.CopyFrom(t.clip)
        merged.settings.update(settings)
        return merged

    return spec


def image_bytes(size: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def stream_embed(*messages: epb.StreamEmbedRequest) -> Callable[[Targets], Any]:
    return lambda t: list(t.embed.StreamEmbed(iter(messages), timeout=30))


def wire_cases(service: str, rpc: str, garbage: bytes) -> list[Case]:
    """What gets refused before the request is read: bytes that are not the message, no token, a wrong one."""
    return [
        Case(service, rpc, f"bytes that are not a {rpc}Request message", lambda t: t.raw(service, rpc, garbage),
             INVALID, "MALFORMED_REQUEST"),
        Case(service, rpc, "no token", lambda t: t.raw(service, rpc, b"", token=None), UNAUTHENTICATED,
             "MISSING_CREDENTIALS"),
        Case(service, rpc, "wrong token", lambda t: t.raw(service, rpc, b"", token="guess"), UNAUTHENTICATED,
             "INVALID_TOKEN"),
    ]


def arrow_schema(*fields: tuple[str, Any]) -> pb.Schema:
    return pb.Schema(arrow_schema=pa.schema(list(fields)).serialize().to_pybytes())


def ipc_of(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def ipc_rows(compression: str | None = None, bad_offsets: bool = False) -> pb.Rows:
    """Arrow rows for the `docs` table: ZSTD-compressed, or with string offsets running backwards."""
    table = pa.table({"id": pa.array([60, 61], pa.int64()), "text": ["hello", "there"]})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(compression=compression)) as writer:
        writer.write_table(table)
    data = bytearray(sink.getvalue().to_pybytes())
    if bad_offsets:
        at = data.find(np.array([0, 5, 10], dtype=np.int32).tobytes())
        data[at:at + 12] = np.array([0, 9, 3], dtype=np.int32).tobytes()
    return pb.Rows(arrow_ipc=bytes(data))


def ors(count: int) -> str:
    return " OR ".join(f"id = {i}" for i in range(count))


def solid_png(size: int, shade: int = 0) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (10, 20, shade)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


TEXT = [epb.EmbedInput(text="hello")]
VECTOR_FIELD = pb.Field(name="v", type=pb.DATA_TYPE_VECTOR, dimensions=4)
ANY_VECTOR = pb.Field(name="v", type=pb.DATA_TYPE_VECTOR)  # dimensions from its function


def _function(name: str, source: str, vector: str, **model: Any) -> pb.EmbeddingFunctionConfig:
    return pb.EmbeddingFunctionConfig(name=name, source_column=source, vector_column=vector, model=struct(**model))


STORE_CASES = [
    # --- tables
    Case("store", "CreateTable", "name with a path separator (`a/b`)", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="a/b", schema=pb.Schema(fields=[VECTOR_FIELD]))), INVALID, "INVALID_TABLE_NAME"),
    Case("store", "CreateTable", "name `..`", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="..", schema=pb.Schema(fields=[VECTOR_FIELD]))), INVALID, "INVALID_TABLE_NAME"),
    Case("store", "CreateTable", "name with a NUL byte", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="a\x00b", schema=pb.Schema(fields=[VECTOR_FIELD]))), INVALID,
         "INVALID_TABLE_NAME"),
    Case("store", "CreateTable", "non-ASCII name (`表`)", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="表", schema=pb.Schema(fields=[VECTOR_FIELD]))), INVALID, "INVALID_TABLE_NAME"),
    Case("store", "CreateTable", "name of an existing table", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name=DOCS, schema=pb.Schema(fields=[VECTOR_FIELD]))), grpc.StatusCode.ALREADY_EXISTS,
         "TABLE_EXISTS"),
    Case("store", "CreateTable", "two columns with one name", lambda t: t.store.CreateTable(pb.CreateTableRequest(
        name="dup", schema=pb.Schema(fields=[pb.Field(name="a", type=pb.DATA_TYPE_INT32),
                                             pb.Field(name="a", type=pb.DATA_TYPE_INT32)]))), INVALID,
         "INVALID_SCHEMA"),
    Case("store", "CreateTable", "corrupt Arrow schema bytes", lambda t: t.store.CreateTable(pb.CreateTableRequest(
        name="bad", schema=pb.Schema(arrow_schema=b"not a schema"))), INVALID, "INVALID_ARROW_SCHEMA"),
    Case("store", "CreateTable", "function whose vector column is missing", lambda t: t.store.CreateTable(
             pb.CreateTableRequest(name="f", schema=pb.Schema(fields=[
                 pb.Field(name="t", type=pb.DATA_TYPE_STRING),
                 pb.Field(name="v", type=pb.DATA_TYPE_VECTOR, dimensions=32)]),
                                   embedding_functions=[_function("word-hash", "t", "nope")])), INVALID,
         "UNKNOWN_COLUMN"),
    Case("store", "CreateTable", "function setting the function does not have", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="f", schema=pb.Schema(fields=[pb.Field(name="t", type=pb.DATA_TYPE_STRING),
                                                                 pb.Field(name="v", type=pb.DATA_TYPE_VECTOR)]),
                              embedding_functions=[_function("word-hash", "t", "v", colour="red")])), INVALID,
         "UNKNOWN_SETTING"),
    Case("store", "CreateTable", "images as the source of a text-only function", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="f", schema=pb.Schema(fields=[pb.Field(name="t", type=pb.DATA_TYPE_STRING),
                                                                 pb.Field(name="v", type=pb.DATA_TYPE_VECTOR)]),
                              embedding_functions=[pb.EmbeddingFunctionConfig(
                                  name="word-hash", source_column="t", vector_column="v",
                                  source_type=pb.SOURCE_TYPE_IMAGE)])), INVALID, "INVALID_EMBEDDING_FUNCTION"),
    Case("store", "CreateTable", "neither schema nor rows", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="empty")), INVALID, "MISSING_SCHEMA"),
    Case("store", "CreateTable", "name ending in `.` (was the folder `x..lance`)", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="x.", rows=json_rows({"id": 1}))), INVALID, "INVALID_TABLE_NAME"),
    Case("store", "CreateTable", "name ending in `.lance` (the folder `t.lance.lance`)", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="t.lance", rows=json_rows({"id": 1}))), INVALID, "INVALID_TABLE_NAME"),
    Case("store", "CreateTable", "a JSON value nested 1,000 deep (answered Python's recursion error)",
         lambda t: t.store.CreateTable(pb.CreateTableRequest(name="deep", rows=pb.Rows(arrow_ipc=ipc_of(pa.table(
             {"j": pa.ExtensionArray.from_storage(pa.json_(), pa.array(["[" * 1000 + "]" * 1000]))}))))),
         INVALID, "JSON_TOO_DEEP"),
    Case("store", "CreateTable", "a multivector row of 2,000 vectors (every later search took 3.3 s)",
         lambda t: t.store.CreateTable(pb.CreateTableRequest(name="mv", rows=pb.Rows(arrow_ipc=ipc_of(pa.table(
             {"mv": pa.array([[[0.5, 0.5]] * 2000], pa.list_(pa.list_(pa.float32(), 2)))}))))),
         INVALID, "TOO_MANY_SUBVECTORS"),
    Case("store", "CountRows", "`vectorlane-read-consistency: -1` (a negative interval)", lambda t: t.store.CountRows(
        pb.CountRowsRequest(table=DOCS), metadata=(("vectorlane-read-consistency", "-1"),)), INVALID,
        "INVALID_READ_CONSISTENCY"),
    Case("store", "CountRows", "`vectorlane-read-consistency: inf`", lambda t: t.store.CountRows(
        pb.CountRowsRequest(table=DOCS), metadata=(("vectorlane-read-consistency", "inf"),)), INVALID,
        "INVALID_READ_CONSISTENCY"),
    Case("store", "CountRows", "version -1 (was NOT_FOUND here, INVALID_ARGUMENT elsewhere)", lambda t: t.store.CountRows(  # noqa: E501
        pb.CountRowsRequest(table=DOCS, version=-1)), INVALID, "INVALID_VERSION"),
    Case("store", "CreateTable", "name ending in a newline (was accepted)", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="docs2\n", schema=pb.Schema(fields=[VECTOR_FIELD]))), INVALID,
         "INVALID_TABLE_NAME"),
    Case("store", "CreateTable", "column named `_rowid` (was created, then every read INTERNAL)",
         lambda t: t.store.CreateTable(pb.CreateTableRequest(name="r", schema=pb.Schema(fields=[
             pb.Field(name="_rowid", type=pb.DATA_TYPE_INT64)]))), INVALID, "RESERVED_COLUMN"),
    Case("store", "CreateTable", "a union column (a type the store cannot serve)", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="u", schema=arrow_schema(("u", pa.dense_union([pa.field("a", pa.int32())]))))),
         INVALID, "UNSUPPORTED_TYPE"),
    Case("store", "CreateTable", "a column marked `lance-encoding:blob` (was created, then answered INTERNAL)",
         lambda t: t.store.CreateTable(pb.CreateTableRequest(name="b", schema=arrow_schema(
             pa.field("b", pa.large_binary(), metadata={"lance-encoding:blob": "true"})))),
         INVALID, "UNSUPPORTED_TYPE"),
    Case("store", "CreateTable", "sentence-transformers folder outside the model roots (`.venv/../..`)",
         lambda t: t.store.CreateTable(pb.CreateTableRequest(
             name="f", schema=pb.Schema(fields=[pb.Field(name="t", type=pb.DATA_TYPE_STRING), ANY_VECTOR]),
             embedding_functions=[pb.EmbeddingFunctionConfig(
                 name="sentence-transformers", source_column="t", vector_column="v",
                 model=struct(name=".venv/../../../../usr/lib"))])), INVALID, "MODEL_PATH_NOT_ALLOWED"),
    Case("store", "CreateTable", "`trust_remote_code` without --allow-remote-code", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="f", schema=pb.Schema(fields=[pb.Field(name="t", type=pb.DATA_TYPE_STRING),
                                                                 ANY_VECTOR]),
                              embedding_functions=[_function("sentence-transformers", "t", "v",
                                                             trust_remote_code=True)])),
         grpc.StatusCode.PERMISSION_DENIED, "REMOTE_CODE_NOT_ALLOWED"),
    Case("store", "CreateTable", "`base_url` carrying `user:key@`", lambda t: t.store.CreateTable(
        pb.CreateTableRequest(name="f", schema=pb.Schema(fields=[pb.Field(name="t", type=pb.DATA_TYPE_STRING),
                                                                 VECTOR_FIELD]),
                              embedding_functions=[_function("openai", "t", "v",
                                                             base_url="https://u:sk-key@host/v1")])), INVALID,
         "LITERAL_SECRET"),
    Case("store", "GetTable", "unknown table", lambda t: t.store.GetTable(pb.GetTableRequest(name="nope")),
         NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "ListTables", "page token it never issued", lambda t: t.store.ListTables(
        pb.ListTablesRequest(page_token="zz")), INVALID, "INVALID_PAGE_TOKEN"),
    Case("store", "DropTable", "unknown table", lambda t: t.store.DropTable(pb.DropTableRequest(name="nope")),
         NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "DropTable", "path-like name (`../docs`)", lambda t: t.store.DropTable(
        pb.DropTableRequest(name="../docs")), INVALID, "INVALID_TABLE_NAME"),
    # --- adding rows
    Case("store", "AddRows", "vector of the wrong dimension", add(pb.AddRowsRequest(
        table=DOCS, rows=json_rows({"id": 9, "vector": [1, 2]}))), INVALID, "BAD_VECTOR"),
    Case("store", "AddRows", "NaN in a vector", add(pb.AddRowsRequest(
        table=DOCS, rows=json_rows({"id": 9, "text": "x", "vector": [float("nan")] * 32}))), INVALID,
         "BAD_VECTOR"),
    Case("store", "AddRows", "column the table does not have", add(pb.AddRowsRequest(
        table=DOCS, rows=json_rows({"id": 9, "colour": "red"}))), INVALID, "UNKNOWN_COLUMN"),
    Case("store", "AddRows", "string for an integer column", add(pb.AddRowsRequest(
        table=DOCS, rows=json_rows({"id": "nine"}))), INVALID, "SCHEMA_MISMATCH"),
    Case("store", "AddRows", "corrupt Arrow IPC", add(pb.AddRowsRequest(
        table=DOCS, rows=pb.Rows(arrow_ipc=b"\xff\xff\xff\xffgarbage"))), INVALID, "INVALID_ARROW_IPC"),
    Case("store", "AddRows", "string offsets out of order (was stored, then reads crashed)", add(pb.AddRowsRequest(
        table=DOCS, rows=ipc_rows(bad_offsets=True))), INVALID, "INVALID_ARROW_IPC"),
    Case("store", "AddRows", "ZSTD-compressed Arrow IPC (a decompression bomb)", add(pb.AddRowsRequest(
        table=DOCS, rows=ipc_rows(compression="zstd"))), INVALID, "INVALID_ARROW_IPC"),
    Case("store", "AddRows", "no table named", add(pb.AddRowsRequest(rows=json_rows({"id": 1}))), INVALID,
         "MISSING_TABLE"),
    Case("store", "AddRows", "empty stream", add(), INVALID, "MISSING_TABLE"),
    Case("store", "AddRows", "unknown table", add(pb.AddRowsRequest(table="nope", rows=json_rows({"id": 1}))),
         NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "AddRows", "infinite fill value", add(pb.AddRowsRequest(
        table=DOCS, on_bad_vectors=pb.BAD_VECTOR_POLICY_FILL, fill_value=float("inf"),
        rows=json_rows({"id": 1}))), INVALID, "INVALID_FILL_VALUE"),
    Case("store", "AddRows", "text its function refuses (embed error passed through)", add(pb.AddRowsRequest(
        table=DOCS, rows=json_rows({"id": 1, "text": "poison"}))), INVALID, "INVALID_INPUT"),
    Case("store", "AddRows", "bytes that are not an AddRowsRequest",
         lambda t: t.raw("store", "AddRows", b"\x0a\xff\xff\xff", streaming=True), INVALID, "MALFORMED_REQUEST"),
    Case("store", "AddRows", "a valid first message, then bytes that are not a message", lambda t: t.raw(
        "store", "AddRows", [pb.AddRowsRequest(table=DOCS, rows=json_rows({"id": 50, "text": "fine"}))
                             .SerializeToString(), b"\x0a\xff\xff\xff"], streaming=True), INVALID,
         "MALFORMED_REQUEST"),
    # --- search
    Case("store", "Search", "unknown table", search(table="nope", text="x"), NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "Search", "path-like table name", search(table="../docs", text="x"), INVALID,
         "INVALID_TABLE_NAME"),
    Case("store", "Search", "vector of the wrong dimension", search(vector=pb.Vector(values=[1.0] * 3)), INVALID,
         "WRONG_DIMENSION"),
    Case("store", "Search", "NaN in the query vector", search(vector=pb.Vector(values=[float("nan")] * 32)),
         INVALID, "BAD_VECTOR"),
    Case("store", "Search", "infinity in the query vector", search(vector=pb.Vector(values=[float("inf")] * 32)),
         INVALID, "BAD_VECTOR"),
    Case("store", "Search", "no query", search(), INVALID, "MISSING_QUERY"),
    Case("store", "Search", "text query on a table without a function", search(table=PLAIN, text="x"), INVALID,
         "NO_EMBEDDING_FUNCTION"),
    Case("store", "Search", "image query to a text-only function", search(image_bytes=image_bytes(8)), INVALID,
         "UNSUPPORTED_QUERY_TYPE"),
    Case("store", "Search", "corrupt image query (embed error passed through)",
         search(table=CLIP, image_bytes=b"\x89PNG\r\n\x1a\nnot"), INVALID, "INVALID_IMAGE"),
    Case("store", "Search", "image URI outside what the operator allowed",
         search(table=CLIP, image_uri="file:///etc/passwd"), INVALID, "IMAGE_URI_NOT_ALLOWED"),
    Case("store", "Search", "filter that does not parse", search(text="x", where="id = = 3"), INVALID,
         "INVALID_FILTER"),
    Case("store", "Search", "filter on an unknown column", search(text="x", where="colour = 'red'"), INVALID,
         "UNKNOWN_COLUMN"),
    Case("store", "Search", "filter of 2,000 ORed comparisons", search(text="x", where=ors(2000)), INVALID,
         "INVALID_FILTER"),
    Case("store", "Search", "filter of 10,000 ORed comparisons (killed the store: SIGSEGV in Arrow)",
         search(text="x", where=ors(10_000)), INVALID, "INVALID_FILTER"),
    Case("store", "Search", "500 nested NOTs (was INTERNAL: recursion)",
         search(text="x", where="NOT " * 500 + "id = 1"),
         INVALID, "INVALID_FILTER"),
    Case("store", "Search", "offset 2^31-1 (FAISS asked for GiBs)", search(text="x", offset=2 ** 31 - 1), INVALID,
         "LIMIT_TOO_LARGE"),
    Case("store", "Search", "ef 2^31-1", search(text="x", ef=2 ** 31 - 1), INVALID, "OUT_OF_RANGE"),
    Case("store", "Search", "refine_factor 2^31-1", search(text="x", refine_factor=2 ** 31 - 1), INVALID,
         "OUT_OF_RANGE"),
    Case("store", "Search", "unknown column in select", search(text="x", select=["nope"]), INVALID,
         "UNKNOWN_COLUMN"),
    Case("store", "Search", "scalar column as the vector column", search(text="x", vector_column="id"), INVALID,
         "UNKNOWN_COLUMN"),
    Case("store", "Search", "limit over --max-search-limit", search(text="x", limit=10 ** 6), INVALID,
         "LIMIT_TOO_LARGE"),
    Case("store", "Search", "negative offset", search(text="x", offset=-1), INVALID, "OUT_OF_RANGE"),
    Case("store", "Search", "full-text search without an FTS index", search(full_text=pb.FullTextQuery(text="x")),
         grpc.StatusCode.FAILED_PRECONDITION, "NO_FTS_INDEX"),
    Case("store", "Search", "full-text query nested 9 deep", search(full_text=nested_full_text(9)), INVALID,
         "FULL_TEXT_QUERY_TOO_LARGE"),
    Case("store", "Search", "full-text query of 65 clauses", search(full_text=pb.FullTextQuery(
        boolean=pb.BooleanQuery(clauses=[pb.BooleanClause(query=pb.FullTextQuery(match=pb.MatchQuery(
            terms="a", column="text")))] * 65))), INVALID, "FULL_TEXT_QUERY_TOO_LARGE"),
    Case("store", "Search", "full-text terms of 5 KB", search(full_text=pb.FullTextQuery(text="word " * 1000)),
         INVALID, "FULL_TEXT_QUERY_TOO_LARGE"),
    Case("store", "Search", "fuzziness 5", search(full_text=pb.FullTextQuery(match=pb.MatchQuery(
        terms="x", column="text", fuzziness=5))), INVALID, "INVALID_FULL_TEXT_QUERY"),
    Case("store", "Search", "vector options on a full-text search", search(full_text=pb.FullTextQuery(text="x"),
                                                                            nprobes=5), INVALID,
         "VECTOR_OPTIONS_WITHOUT_QUERY"),
    Case("store", "Search", "hybrid fusion with k 0", search(text="x", full_text=pb.FullTextQuery(text="x"),
                                                             fusion=pb.Fusion(k=0.0)), INVALID, "INVALID_FUSION"),
    Case("store", "Search", "fusion without a hybrid search", search(full_text=pb.FullTextQuery(text="x"),
                                                                      fusion=pb.Fusion()), INVALID,
         "UNSUPPORTED_SEARCH"),
    Case("store", "Search", "undefined metric enum value", search(text="x", metric=17), INVALID, "INVALID_ENUM"),
    Case("store", "Search", "version that does not exist", search(text="x", version=99), NOT_FOUND,
         "VERSION_NOT_FOUND"),
    Case("store", "Search", "message over --max-message-bytes", search(text="x" * (65 * 1024 * 1024)), EXHAUSTED,
         None),
    *wire_cases("store", "Search", b"\xff\xff\xff"),
    # --- reads and changes
    Case("store", "ReadRows", "version that does not exist", lambda t: t.store.ReadRows(
        pb.ReadRowsRequest(table=DOCS, version=99)), NOT_FOUND, "VERSION_NOT_FOUND"),
    Case("store", "ReadRows", "unknown column in select", lambda t: t.store.ReadRows(
        pb.ReadRowsRequest(table=DOCS, select=["x"])), INVALID, "UNKNOWN_COLUMN"),
    Case("store", "ReadRows", "65 computed columns", lambda t: t.store.ReadRows(pb.ReadRowsRequest(
        table=DOCS, computed_columns=[pb.ColumnExpression(name=f"c{i}", expression="id") for i in range(65)])),
         INVALID, "TOO_MANY_COLUMNS"),
    Case("store", "ReadRows", "a computed column named `_distance`", lambda t: t.store.ReadRows(pb.ReadRowsRequest(
        table=DOCS, computed_columns=[pb.ColumnExpression(name="_distance", expression="id")])),
         INVALID, "RESERVED_COLUMN"),
    Case("store", "ReadRows", "a computed column given twice", lambda t: t.store.ReadRows(pb.ReadRowsRequest(
        table=DOCS, computed_columns=[pb.ColumnExpression(name="c", expression="id")] * 2)),
         INVALID, "INVALID_COLUMN_NAME"),
    Case("store", "ReadRows", "a computed column of an unknown column", lambda t: t.store.ReadRows(
        pb.ReadRowsRequest(table=DOCS, computed_columns=[pb.ColumnExpression(name="c", expression="nope + 1")])),
         INVALID, "INVALID_EXPRESSION"),
    Case("store", "Search", "a computed column calling `repeat` (unbounded output)", lambda t: t.store.Search(
        pb.SearchRequest(table=DOCS, text="x", computed_columns=[pb.ColumnExpression(
            name="c", expression="repeat(text, 100000000)")])), INVALID, "FUNCTION_NOT_ALLOWED"),
    # the expression gate: what reaches Lance's SQL engine is judged on the parsed tree
    Case("store", "CountRows", "a call hidden by a comment, `repeat/**/('x', 1e9)` (killed the store: 1 GB)",
         lambda t: t.store.CountRows(pb.CountRowsRequest(table=DOCS, where="length(repeat/**/('x', 1000000000)) > 0")),
         INVALID, "INVALID_FILTER"),
    Case("store", "ReadRows", "a computed column calling `` `repeat` `` in backquotes", lambda t: t.store.ReadRows(
        pb.ReadRowsRequest(table=DOCS, computed_columns=[pb.ColumnExpression(
            name="c", expression="`repeat`('x', 1000000000)")])), INVALID, "FUNCTION_NOT_ALLOWED"),
    Case("store", "CountRows", "1,000 added terms (killed the store: a stack overflow in Lance)",
         lambda t: t.store.CountRows(pb.CountRowsRequest(table=DOCS, where="+".join(["id"] * 1000) + " > 0")),
         INVALID, "EXPRESSION_TOO_COMPLEX"),
    Case("store", "DeleteRows", "1,000 concatenations (killed the store)", lambda t: t.store.DeleteRows(
        pb.DeleteRowsRequest(table=DOCS, where="||".join(["text"] * 1000) + " = ''")), INVALID,
         "EXPRESSION_TOO_COMPLEX"),
    Case("store", "ReadRows", "the row replaced into itself, nested (1.3 GB for 10 rows)", lambda t: t.store.ReadRows(
        pb.ReadRowsRequest(table=DOCS, computed_columns=[pb.ColumnExpression(
            name="c", expression="length(replace(replace(text, 'x', text), 'x', text))")])), EXHAUSTED,
         "EXPRESSION_OUTPUT_TOO_LARGE"),
    Case("store", "UpdateRows", "`values_sql` with a replacement read from the row", lambda t: t.store.UpdateRows(
        pb.UpdateRowsRequest(table=DOCS, values_sql={"text": "regexp_replace(text, 'x', text, 'g')"})), INVALID,
         "FUNCTION_NOT_ALLOWED"),
    Case("store", "AddColumns", "expression of 1,300 added terms (2,000 killed the store)", lambda t: t.store.AddColumns(  # noqa: E501
        pb.AddColumnsRequest(table=DOCS, expressions=[pb.ColumnExpression(name="n", expression="+".join(
            ["id"] * 1300))])), INVALID, "EXPRESSION_TOO_COMPLEX"),
    Case("store", "AddColumns", "expression with a comment", lambda t: t.store.AddColumns(pb.AddColumnsRequest(
        table=DOCS, expressions=[pb.ColumnExpression(name="n", expression="id -- x\n+ 1")])), INVALID,
         "INVALID_EXPRESSION"),
    Case("store", "MergeInsert", "an update condition hiding `lpad` in backquotes", merge(pb.MergeInsertRequest(
        table=DOCS, on=["id"], when_matched_update_all=True, rows=json_rows({"id": 1, "text": "t"}),
        when_matched_update_where="length(`lpad`(target.text, 1000000000)) > 0")), INVALID, "FUNCTION_NOT_ALLOWED"),
    Case("store", "CountRows", "filter that does not parse", lambda t: t.store.CountRows(
        pb.CountRowsRequest(table=DOCS, where="text LIKE")), INVALID, "INVALID_FILTER"),
    Case("store", "CountRows", "LIKE pattern of 5,000 `_` (80,000 was INTERNAL: RE2)", lambda t: t.store.CountRows(
        pb.CountRowsRequest(table=DOCS, where="text LIKE '" + "_" * 5000 + "'")), INVALID, "INVALID_FILTER"),
    Case("store", "CountRows", "AND of 5,000 comparisons (was INTERNAL)", lambda t: t.store.CountRows(
        pb.CountRowsRequest(table=DOCS, where=" AND ".join(["id > 0"] * 5000))), INVALID, "INVALID_FILTER"),
    Case("store", "DeleteRows", "no filter (deleting everything must be said: `true`)", lambda t: t.store.DeleteRows(
        pb.DeleteRowsRequest(table=DOCS)), INVALID, "MISSING_FILTER"),
    Case("store", "DeleteRows", "filter that does not parse", lambda t: t.store.DeleteRows(
        pb.DeleteRowsRequest(table=DOCS, where="id IN (1,")), INVALID, "INVALID_FILTER"),
    Case("store", "DeleteRows", "1 MB filter (echoed whole: was RESOURCE_EXHAUSTED)", lambda t: t.store.DeleteRows(
        pb.DeleteRowsRequest(table=DOCS, where="id = 1 OR " * 100_000 + "id = 2")), INVALID, "INVALID_FILTER"),
    Case("store", "UpdateRows", "unknown column", lambda t: t.store.UpdateRows(pb.UpdateRowsRequest(
        table=DOCS, where="id = 1", values=struct(colour="red"))), INVALID, "UNKNOWN_COLUMN"),
    Case("store", "UpdateRows", "string for an integer column", lambda t: t.store.UpdateRows(
        pb.UpdateRowsRequest(table=DOCS, values=struct(id="x"))), INVALID, "SCHEMA_MISMATCH"),
    Case("store", "UpdateRows", "no values", lambda t: t.store.UpdateRows(
        pb.UpdateRowsRequest(table=DOCS, where="id = 1")), INVALID, "MISSING_VALUES"),
    Case("store", "UpdateRows", "vector of the wrong dimension", lambda t: t.store.UpdateRows(
        pb.UpdateRowsRequest(table=DOCS, values=struct(vector=[1, 2]))), INVALID, "BAD_VECTOR"),
    Case("store", "UpdateRows", "`false` as a vector (found by fuzzing: was INTERNAL)", lambda t: t.store.UpdateRows(
        pb.UpdateRowsRequest(table=DOCS, values=struct(vector=False))), INVALID, "SCHEMA_MISMATCH"),
    Case("store", "MergeInsert", "no key columns", merge(pb.MergeInsertRequest(
        table=DOCS, when_not_matched_insert_all=True, rows=json_rows({"id": 1}))), INVALID, "MISSING_KEY"),
    Case("store", "MergeInsert", "one key column named twice (found by fuzzing: was INTERNAL)", merge(
        pb.MergeInsertRequest(table=DOCS, on=["id", "id"], when_not_matched_by_source_delete=True)), INVALID,
         "DUPLICATE_KEY_COLUMN"),
    Case("store", "MergeInsert", "vector column as the key", merge(pb.MergeInsertRequest(
        table=DOCS, on=["vector"], when_not_matched_insert_all=True, rows=json_rows({"id": 1}))), INVALID,
         "UNKNOWN_COLUMN"),
    Case("store", "MergeInsert", "no action asked for", merge(pb.MergeInsertRequest(
        table=DOCS, on=["id"], rows=json_rows({"id": 1}))), INVALID, "EMPTY_MERGE"),
    # --- indexes and versions
    Case("store", "CreateIndex", "no index type", lambda t: t.store.CreateIndex(pb.CreateIndexRequest(table=DOCS)),
         INVALID, "INVALID_INDEX"),
    Case("store", "CreateIndex", "more partitions than rows", lambda t: t.store.CreateIndex(pb.CreateIndexRequest(
        table=DOCS, index_type=pb.INDEX_TYPE_IVF_FLAT, num_partitions=1000)), INVALID, "INVALID_INDEX_PARAMETERS"),
    Case("store", "CreateIndex", "sub-vectors that do not divide the dimension", lambda t: t.store.CreateIndex(
        pb.CreateIndexRequest(table=DOCS, index_type=pb.INDEX_TYPE_IVF_PQ, num_partitions=1, num_sub_vectors=5)),
         INVALID, "INVALID_INDEX_PARAMETERS"),
    Case("store", "CreateIndex", "scalar column", lambda t: t.store.CreateIndex(pb.CreateIndexRequest(
        table=DOCS, index_type=pb.INDEX_TYPE_FLAT, vector_column="id")), INVALID, "UNKNOWN_COLUMN"),
    Case("store", "CreateIndex", "HNSW with m 2^31-1 (asked for GiBs)", lambda t: t.store.CreateIndex(
        pb.CreateIndexRequest(table=DOCS, index_type=pb.INDEX_TYPE_HNSW, m=2 ** 31 - 1)), INVALID,
         "INVALID_INDEX_PARAMETERS"),
    Case("store", "CreateIndex", "HNSW with m 1 (FAISS dies with SIGSEGV)", lambda t: t.store.CreateIndex(
        pb.CreateIndexRequest(table=DOCS, index_type=pb.INDEX_TYPE_HNSW, m=1)), INVALID,
         "INVALID_INDEX_PARAMETERS"),
    Case("store", "CreateIndex", "FTS index of a number column", lambda t: t.store.CreateIndex(pb.CreateIndexRequest(
        table=DOCS, index_type=pb.INDEX_TYPE_FTS, column="id")), INVALID, "INVALID_COLUMN_TYPE"),
    Case("store", "CreateIndex", "FTS tokenizer Lance would look for on disk", lambda t: t.store.CreateIndex(
        pb.CreateIndexRequest(table=DOCS, index_type=pb.INDEX_TYPE_FTS, column="text",
                              fts=pb.FtsParams(base_tokenizer="jieba/../../etc"))), INVALID, "INVALID_FTS_PARAMS"),
    Case("store", "CreateIndex", "FTS with 2,000 stop words", lambda t: t.store.CreateIndex(pb.CreateIndexRequest(
        table=DOCS, index_type=pb.INDEX_TYPE_FTS, column="text", fts=pb.FtsParams(custom_stop_words=["w"] * 2000))),
         INVALID, "INVALID_FTS_PARAMS"),
    Case("store", "CreateIndex", "FTS build with 1,000 workers", lambda t: t.store.CreateIndex(pb.CreateIndexRequest(
        table=DOCS, index_type=pb.INDEX_TYPE_FTS, column="text", fts=pb.FtsParams(num_workers=1000))),
         INVALID, "INVALID_FTS_PARAMS"),
    Case("store", "CreateIndex", "FTS build with a memory limit of 2^31-1 MiB", lambda t: t.store.CreateIndex(
        pb.CreateIndexRequest(table=DOCS, index_type=pb.INDEX_TYPE_FTS, column="text",
                              fts=pb.FtsParams(memory_limit=2 ** 31 - 1))), INVALID, "INVALID_FTS_PARAMS"),
    Case("store", "Tokenize", "a text of 1 MB", lambda t: t.store.Tokenize(pb.TokenizeRequest(text="word " * 200_000)),
         INVALID, "TEXT_TOO_LONG"),
    Case("store", "Tokenize", "a language model named by a path", lambda t: t.store.Tokenize(pb.TokenizeRequest(
        text="x", fts=pb.FtsParams(base_tokenizer="lindera/../../../etc"))), INVALID, "INVALID_FTS_PARAMS"),
    Case("store", "Tokenize", "both a column and an index name", lambda t: t.store.Tokenize(pb.TokenizeRequest(
        text="x", table=DOCS, column="text", index_name="text_idx")), INVALID, "INVALID_ARGUMENT"),
    Case("store", "Tokenize", "a column without an FTS index", lambda t: t.store.Tokenize(pb.TokenizeRequest(
        text="x", table=DOCS, column="text")), grpc.StatusCode.FAILED_PRECONDITION, "NO_FTS_INDEX"),
    Case("store", "ExplainSearch", "a search with neither a query nor a full-text query",
         lambda t: t.store.ExplainSearch(pb.ExplainSearchRequest(search=pb.SearchRequest(table=DOCS))), INVALID,
         "UNSUPPORTED_SEARCH"),
    Case("store", "ExplainSearch", "a filter calling `repeat` (unbounded output)", lambda t: t.store.ExplainSearch(
        pb.ExplainSearchRequest(search=pb.SearchRequest(table=DOCS, text="x", where="repeat(text, 1000000000) = 'a'"))),
         INVALID, "FUNCTION_NOT_ALLOWED"),
    Case("store", "Search", "order_by 9 columns", search(text="x", order_by=[pb.ColumnOrdering(column="id")] * 9),
         INVALID, "TOO_MANY_ORDERINGS"),
    Case("store", "Search", "order_by a column the results lack", search(
        text="x", order_by=[pb.ColumnOrdering(column="nope")]), INVALID, "UNKNOWN_COLUMN"),
    Case("store", "ReadRows", "order_by a vector column", lambda t: t.store.ReadRows(pb.ReadRowsRequest(
        table=DOCS, order_by=[pb.ColumnOrdering(column="vector")])), INVALID, "INVALID_ORDERING"),
    Case("store", "ListIndexes", "unknown table", lambda t: t.store.ListIndexes(
        pb.ListIndexesRequest(table="nope")), NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "DropIndex", "unknown index", lambda t: t.store.DropIndex(pb.DropIndexRequest(
        table=DOCS, name="nope")), NOT_FOUND, "INDEX_NOT_FOUND"),
    Case("store", "ListVersions", "page token it never issued", lambda t: t.store.ListVersions(
        pb.ListVersionsRequest(table=DOCS, page_token="zz")), INVALID, "INVALID_PAGE_TOKEN"),
    Case("store", "RestoreVersion", "version that does not exist", lambda t: t.store.RestoreVersion(
        pb.RestoreVersionRequest(table=DOCS, version=99)), NOT_FOUND, "VERSION_NOT_FOUND"),
    Case("store", "RestoreVersion", "version 0", lambda t: t.store.RestoreVersion(
        pb.RestoreVersionRequest(table=DOCS)), INVALID, "INVALID_VERSION"),
    Case("store", "OptimizeTable", "retention of NaN seconds", lambda t: t.store.OptimizeTable(
        pb.OptimizeTableRequest(table=DOCS, cleanup_older_than_seconds=float("nan"))), INVALID, "OUT_OF_RANGE"),
    Case("store", "OptimizeTable", "retention of 1e300 seconds (past what a timedelta holds)",
         lambda t: t.store.OptimizeTable(pb.OptimizeTableRequest(table=DOCS, cleanup_older_than_seconds=1e300)),
         INVALID, "OUT_OF_RANGE"),
    Case("store", "OptimizeTable", "table that does not exist", lambda t: t.store.OptimizeTable(
        pb.OptimizeTableRequest(table="nope")), NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "GetTableStats", "table name `..`", lambda t: t.store.GetTableStats(
        pb.GetTableStatsRequest(table="..")), INVALID, "INVALID_TABLE_NAME"),
    Case("store", "CreateTag", "tag with a path in it (`../x`)", lambda t: t.store.CreateTag(
        pb.CreateTagRequest(table=DOCS, tag="../x")), INVALID, "INVALID_TAG"),
    Case("store", "CreateTag", "tag of 10,000 characters", lambda t: t.store.CreateTag(
        pb.CreateTagRequest(table=DOCS, tag="t" * 10_000)), INVALID, "INVALID_TAG"),
    Case("store", "CreateTag", "version that does not exist", lambda t: t.store.CreateTag(
        pb.CreateTagRequest(table=DOCS, tag="later", version=99)), NOT_FOUND, "VERSION_NOT_FOUND"),
    Case("store", "CreateTag", "negative version", lambda t: t.store.CreateTag(
        pb.CreateTagRequest(table=DOCS, tag="neg", version=-1)), INVALID, "INVALID_VERSION"),
    Case("store", "DeleteTag", "tag that does not exist", lambda t: t.store.DeleteTag(
        pb.DeleteTagRequest(table=DOCS, tag="never")), NOT_FOUND, "TAG_NOT_FOUND"),
    Case("store", "ListTags", "table that does not exist", lambda t: t.store.ListTags(
        pb.ListTagsRequest(table="nope")), NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "AddColumns", "expression calling repeat() (an unbounded value)", lambda t: t.store.AddColumns(
        pb.AddColumnsRequest(table=DOCS, expressions=[pb.ColumnExpression(
            name="big", expression="repeat(text, 2000000000)")])), INVALID, "FUNCTION_NOT_ALLOWED"),
    Case("store", "AddColumns", "expression holding a query", lambda t: t.store.AddColumns(pb.AddColumnsRequest(
        table=DOCS, expressions=[pb.ColumnExpression(name="q", expression="(SELECT 1)")])), INVALID,
         "INVALID_EXPRESSION"),
    Case("store", "AddColumns", "expression of 100,000 characters", lambda t: t.store.AddColumns(
        pb.AddColumnsRequest(table=DOCS, expressions=[pb.ColumnExpression(name="long", expression="1" * 100_000)])),
         INVALID, "INVALID_EXPRESSION"),
    Case("store", "AddColumns", "expression over a column that does not exist", lambda t: t.store.AddColumns(
        pb.AddColumnsRequest(table=DOCS, expressions=[pb.ColumnExpression(name="n", expression="nope + 1")])),
         INVALID, "INVALID_EXPRESSION"),
    Case("store", "AddColumns", "a column that exists", lambda t: t.store.AddColumns(pb.AddColumnsRequest(
        table=DOCS, expressions=[pb.ColumnExpression(name="text", expression="1")])), INVALID, "COLUMN_EXISTS"),
    Case("store", "AddColumns", "reserved column name `_rowid`", lambda t: t.store.AddColumns(pb.AddColumnsRequest(
        table=DOCS, expressions=[pb.ColumnExpression(name="_rowid", expression="1")])), INVALID, "RESERVED_COLUMN"),
    Case("store", "AddColumns", "10,000 new columns", lambda t: t.store.AddColumns(pb.AddColumnsRequest(
        table=DOCS, expressions=[pb.ColumnExpression(name=f"c{i}", expression="1") for i in range(10_000)])),
         INVALID, "TOO_MANY_COLUMNS"),
    Case("store", "AddColumns", "neither expressions nor null columns", lambda t: t.store.AddColumns(
        pb.AddColumnsRequest(table=DOCS)), INVALID, "MISSING_COLUMNS"),
    Case("store", "AddColumns", "a non-nullable null column", lambda t: t.store.AddColumns(pb.AddColumnsRequest(
        table=DOCS, null_columns=pb.Schema(fields=[pb.Field(name="n", type=pb.DATA_TYPE_INT64)]))), INVALID,
         "NULL_IN_REQUIRED_COLUMN"),
    Case("store", "MergeColumns", "the other table repeating a key", lambda t: t.store.MergeColumns(
        pb.MergeColumnsRequest(table=DOCS, left_on="id", arrow_ipc=ipc_of(pa.table({"id": [1, 1], "n": [1, 2]})))),
         INVALID, "DUPLICATE_KEY"),
    Case("store", "MergeColumns", "keys of another kind (strings for an integer key)", lambda t: t.store.MergeColumns(
        pb.MergeColumnsRequest(table=DOCS, left_on="id", arrow_ipc=ipc_of(pa.table({"id": ["1"], "n": [1]})))),
         INVALID, "KEY_TYPE_MISMATCH"),
    Case("store", "MergeColumns", "ZSTD-compressed other table (a decompression bomb)", lambda t: t.store.MergeColumns(
        pb.MergeColumnsRequest(table=DOCS, left_on="id", arrow_ipc=ipc_rows(compression="zstd").arrow_ipc)),
         INVALID, "INVALID_ARROW_IPC"),
    Case("store", "MergeColumns", "no other table", lambda t: t.store.MergeColumns(
        pb.MergeColumnsRequest(table=DOCS, left_on="id")), INVALID, "MISSING_ROWS"),
    Case("store", "AlterColumns", "column that does not exist", lambda t: t.store.AlterColumns(
        pb.AlterColumnsRequest(table=DOCS, alterations=[pb.ColumnAlteration(path="nope", rename="x")])), INVALID,
         "UNKNOWN_COLUMN"),
    Case("store", "AlterColumns", "field metadata setting Lance's `lance-encoding:blob`", lambda t: t.store.AlterColumns(  # noqa: E501
        pb.AlterColumnsRequest(table=DOCS, alterations=[pb.ColumnAlteration(
            path="text", metadata={"lance-encoding:blob": "true"})])), INVALID, "INVALID_ALTERATION"),
    Case("store", "AlterColumns", "field metadata of 65 keys", lambda t: t.store.AlterColumns(
        pb.AlterColumnsRequest(table=DOCS, alterations=[pb.ColumnAlteration(
            path="text", metadata={f"k{i}": "v" for i in range(65)})])), INVALID, "INVALID_ALTERATION"),
    Case("store", "AlterColumns", "rename onto another column", lambda t: t.store.AlterColumns(
        pb.AlterColumnsRequest(table=DOCS, alterations=[pb.ColumnAlteration(path="id", rename="text")])), INVALID,
         "COLUMN_EXISTS"),
    Case("store", "AlterColumns", "cast of a string to int64", lambda t: t.store.AlterColumns(
        pb.AlterColumnsRequest(table=DOCS, alterations=[pb.ColumnAlteration(path="category", data_type="int64")])),
         INVALID, "INVALID_CAST"),
    Case("store", "AlterColumns", "type name Arrow does not know", lambda t: t.store.AlterColumns(
        pb.AlterColumnsRequest(table=DOCS, alterations=[pb.ColumnAlteration(path="id", data_type="int65; drop")])),
         INVALID, "INVALID_CAST"),
    Case("store", "AlterColumns", "cast of a vector column", lambda t: t.store.AlterColumns(
        pb.AlterColumnsRequest(table=DOCS, alterations=[pb.ColumnAlteration(path="vector", data_type="string")])),
         grpc.StatusCode.FAILED_PRECONDITION, "COLUMN_IN_USE"),
    Case("store", "AlterColumns", "the same column twice", lambda t: t.store.AlterColumns(pb.AlterColumnsRequest(
        table=DOCS, alterations=[pb.ColumnAlteration(path="id", rename="a"),
                                 pb.ColumnAlteration(path="id", rename="b")])), INVALID, "INVALID_ALTERATION"),
    Case("store", "DropColumns", "the source of an embedding function", lambda t: t.store.DropColumns(
        pb.DropColumnsRequest(table=DOCS, columns=["text"])), grpc.StatusCode.FAILED_PRECONDITION, "COLUMN_IN_USE"),
    Case("store", "DropColumns", "column that does not exist", lambda t: t.store.DropColumns(
        pb.DropColumnsRequest(table=DOCS, columns=["nope"])), INVALID, "UNKNOWN_COLUMN"),
    Case("store", "DropColumns", "every column", lambda t: t.store.DropColumns(pb.DropColumnsRequest(
        table=DOCS, columns=["id", "text", "category", "vector"])), INVALID, "INVALID_SCHEMA"),
    Case("store", "DescribeFunction", "setting the function does not have", lambda t: t.store.DescribeFunction(
        pb.DescribeFunctionRequest(function=_function("word-hash", "", "", colour="red"))), INVALID,
         "UNKNOWN_SETTING"),
    Case("store", "Search", "more query vectors than max_batch_queries", lambda t: t.store.Search(pb.SearchRequest(
        table=PLAIN, vectors=pb.Vectors(vectors=[pb.Vector(values=[1, 0, 0, 0])] * 1001))), INVALID,
         "TOO_MANY_QUERIES"),
    Case("store", "Search", "query vectors of different lengths", lambda t: t.store.Search(pb.SearchRequest(
        table=PLAIN, vectors=pb.Vectors(vectors=[pb.Vector(values=[1, 0, 0, 0]), pb.Vector(values=[1])]))),
         INVALID, "WRONG_DIMENSION"),
    Case("store", "Search", "queries x limit above max_read_rows", lambda t: t.store.Search(pb.SearchRequest(
        table=PLAIN, limit=10_000, vectors=pb.Vectors(vectors=[pb.Vector(values=[1, 0, 0, 0])] * 11))), INVALID,
         "LIMIT_TOO_LARGE"),
    Case("store", "ReadRows", "an offset outside the table", lambda t: t.store.ReadRows(pb.ReadRowsRequest(
        table=PLAIN, offsets=[0, 5])), INVALID, "INVALID_OFFSET"),
    Case("store", "ReadRows", "offsets and row ids together", lambda t: t.store.ReadRows(pb.ReadRowsRequest(
        table=PLAIN, offsets=[0], row_ids=[0])), INVALID, "INVALID_TAKE"),
    Case("store", "UpdateRows", "a value and an expression for one column", lambda t: t.store.UpdateRows(
        pb.UpdateRowsRequest(table=PLAIN, values_sql={"id": "id + 1"}, values=json_rows({"id": 3}).json.rows[0])),
         INVALID, "MISSING_VALUES"),
    Case("store", "UpdateRows", "an expression calling a function the store does not allow",
         lambda t: t.store.UpdateRows(pb.UpdateRowsRequest(
             table=PLAIN, values_sql={"id": "length(repeat('x', 2000000000))"})), INVALID, "FUNCTION_NOT_ALLOWED"),
    Case("store", "MergeInsert", "an update condition that is not one expression", lambda t: t.store.MergeInsert(iter([
        pb.MergeInsertRequest(table=PLAIN, on=["id"], when_matched_update_all=True,
                              when_matched_update_where="target.id = 1; DROP TABLE x",
                              rows=json_rows({"id": 1, "vector": [1, 0, 0, 0]}))])), INVALID, "INVALID_FILTER"),
    Case("store", "ComputeEmbeddings", "no inputs", lambda t: t.store.ComputeEmbeddings(
        pb.ComputeEmbeddingsRequest(function=_function("word-hash", "", ""))), INVALID, "MISSING_INPUT"),
    Case("store", "ComputeEmbeddings", "more inputs than max_batch_queries", lambda t: t.store.ComputeEmbeddings(
        pb.ComputeEmbeddingsRequest(function=_function("word-hash", "", ""),
                                    inputs=[pb.EmbeddingInput(text="x")] * 1001)), INVALID, "TOO_MANY_INPUTS"),
    Case("store", "ComputeEmbeddings", "an input with neither text nor image", lambda t: t.store.ComputeEmbeddings(
        pb.ComputeEmbeddingsRequest(function=_function("word-hash", "", ""), inputs=[pb.EmbeddingInput()])),
         INVALID, "MISSING_INPUT"),
    Case("store", "ComputeEmbeddings", "an image for a text function", lambda t: t.store.ComputeEmbeddings(
        pb.ComputeEmbeddingsRequest(function=_function("word-hash", "", ""),
                                    inputs=[pb.EmbeddingInput(image_bytes=b"\x89PNG")])), INVALID,
         "UNSUPPORTED_QUERY_TYPE"),
    Case("store", "ComputeEmbeddings", "function the embed service does not have",
         lambda t: t.store.ComputeEmbeddings(pb.ComputeEmbeddingsRequest(
             function=_function("no-such-function", "", ""), inputs=[pb.EmbeddingInput(text="x")])),
         grpc.StatusCode.FAILED_PRECONDITION, "LOCAL_FUNCTION"),
    Case("store", "AlterEmbeddingFunction", "source column of numbers for a text function",
         lambda t: t.store.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
             table=DOCS, function=_function("word-hash", "id", "vector"))), INVALID, "INVALID_EMBEDDING_FUNCTION"),
    Case("store", "AlterEmbeddingFunction", "function the embed service does not have",
         lambda t: t.store.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
             table=DOCS, function=_function("no-such", "text", "vector"))), grpc.StatusCode.FAILED_PRECONDITION,
         "LOCAL_FUNCTION"),
    Case("store", "AlterEmbeddingFunction", "API key hidden as the default of `$var:name:sk-...`",
         lambda t: t.store.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
             table=DOCS, function=_function("openai", "text", "vector", api_key="$var:k:sk-literal"))), INVALID,
         "LITERAL_SECRET"),
    Case("store", "AlterEmbeddingFunction", "API key given literally instead of as `$var:name`",
         lambda t: t.store.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
             table=DOCS, function=_function("openai", "text", "vector", api_key="sk-literal"))), INVALID,
         "LITERAL_SECRET"),
    Case("store", "AddEmbeddingFunction", "vector column that exists", lambda t: t.store.AddEmbeddingFunction(
        pb.AddEmbeddingFunctionRequest(table=DOCS, function=_function("word-hash", "text", "vector"))), INVALID,
         "COLUMN_EXISTS"),
    Case("store", "AddEmbeddingFunction", "path-like table name", lambda t: t.store.AddEmbeddingFunction(
        pb.AddEmbeddingFunctionRequest(table="../docs", function=_function("word-hash", "text", "v2"))), INVALID,
         "INVALID_TABLE_NAME"),
    Case("store", "DropEmbeddingFunction", "scalar column", lambda t: t.store.DropEmbeddingFunction(
        pb.DropEmbeddingFunctionRequest(table=DOCS, vector_column="id")), INVALID, "NOT_A_VECTOR_COLUMN"),
    Case("store", "DropEmbeddingFunction", "unknown column", lambda t: t.store.DropEmbeddingFunction(
        pb.DropEmbeddingFunctionRequest(table=DOCS, vector_column="nope")), INVALID, "UNKNOWN_COLUMN"),
    Case("store", "GetOperation", "path-like operation name", lambda t: t.store.GetOperation(
        pb.GetOperationRequest(name="tables/../operations/x")), INVALID, "INVALID_OPERATION_NAME"),
    Case("store", "GetOperation", "operation that does not exist", lambda t: t.store.GetOperation(
        pb.GetOperationRequest(name=f"tables/{DOCS}/operations/{'0' * 32}")), NOT_FOUND, "OPERATION_NOT_FOUND"),
    Case("store", "ListOperations", "unknown table", lambda t: t.store.ListOperations(
        pb.ListOperationsRequest(table="nope")), NOT_FOUND, "TABLE_NOT_FOUND"),
    Case("store", "ListOperations", "page token it never issued", lambda t: t.store.ListOperations(
        pb.ListOperationsRequest(table=DOCS, page_token="zz")), INVALID, "INVALID_PAGE_TOKEN"),
    Case("store", "CancelOperation", "operation that does not exist", lambda t: t.store.CancelOperation(
        pb.CancelOperationRequest(name=f"tables/{DOCS}/operations/{'1' * 32}")), NOT_FOUND, "OPERATION_NOT_FOUND"),
    Case("store", "ResumeOperation", "empty name", lambda t: t.store.ResumeOperation(
        pb.ResumeOperationRequest()), INVALID, "INVALID_OPERATION_NAME"),
]

EMBED_CASES = [
    Case("embed", "Embed", "unknown function", embed(TEXT, embed_fn("no-such")), INVALID, "UNKNOWN_FUNCTION"),
    Case("embed", "Embed", "non-ASCII unknown function name", embed(TEXT, embed_fn("модель")), INVALID,
         "UNKNOWN_FUNCTION"),
    Case("embed", "Embed", "no function", lambda t: t.embed.Embed(epb.EmbedRequest(inputs=TEXT)), INVALID,
         "MISSING_FUNCTION"),
    Case("embed", "Embed", "setting the function does not have",
         lambda t: embed(TEXT, clip_with(colour="blue")(t))(t), INVALID, "UNKNOWN_SETTING"),
    Case("embed", "Embed", "setting out of range (`batch_size: -3`)",
         lambda t: embed(TEXT, clip_with(batch_size=-3)(t))(t), INVALID, "INVALID_SETTING"),
    Case("embed", "Embed", "API key given literally instead of as `$var:name`",
         embed(TEXT, embed_fn("openai", name="m", api_key="sk-literal-key")), INVALID, "LITERAL_SECRET"),
    Case("embed", "Embed", "model file outside --model-roots",
         lambda t: embed(TEXT, clip_with(pretrained="/etc/passwd")(t))(t), INVALID, "MODEL_PATH_NOT_ALLOWED"),
    Case("embed", "Embed", "model folder outside --model-roots spelt `.venv/../..` (loaded one before)",
         embed(TEXT, embed_fn("sentence-transformers", name=".venv/../../../../usr/lib")), INVALID,
         "MODEL_PATH_NOT_ALLOWED"),
    Case("embed", "Embed", "`trust_remote_code` without --allow-remote-code (ran the folder's code before)",
         embed(TEXT, embed_fn("sentence-transformers", trust_remote_code=True)), grpc.StatusCode.PERMISSION_DENIED,
         "REMOTE_CODE_NOT_ALLOWED"),
    Case("embed", "Embed", "hub model id without --allow-downloads",
         embed(TEXT, embed_fn("sentence-transformers", name="someone/some-model")),
         grpc.StatusCode.PERMISSION_DENIED, "MODEL_DOWNLOAD_NOT_ALLOWED"),
    Case("embed", "Embed", "`base_url` at the cloud metadata address (a POST into the cluster's insides)",
         embed(TEXT, embed_fn("openai", name="m", dim=4, base_url="http://169.254.169.254/latest/v1")),
         grpc.StatusCode.PERMISSION_DENIED, "ENDPOINT_NOT_ALLOWED"),
    Case("embed", "Embed", "`base_url` that parsers read two ways (`http://10.0.0.5\\@api.openai.com/v1`)",
         embed(TEXT, embed_fn("openai", name="m", dim=4, base_url="http://10.0.0.5\\@api.openai.com/v1")),
         INVALID, "INVALID_SETTING"),
    Case("embed", "Embed", "API key hidden as the default of `$var:name:sk-...`",
         embed(TEXT, embed_fn("openai", name="m", api_key="$var:k:sk-literal-key")), INVALID, "LITERAL_SECRET"),
    Case("embed", "Embed", "device that is not one (`meta`)", lambda t: embed(TEXT, clip_with(device="meta")(t))(t),
         INVALID, "INVALID_SETTING"),
    Case("embed", "Embed", "architecture open_clip does not know",
         embed(TEXT, embed_fn("open-clip", name="No-Such-Arch", pretrained=None, device="cpu")),
         grpc.StatusCode.FAILED_PRECONDITION, "MODEL_LOAD_FAILED"),
    Case("embed", "Embed", "input with nothing set", embed([epb.EmbedInput(text="a"), epb.EmbedInput()]), INVALID,
         "MISSING_INPUT"),
    Case("embed", "Embed", f"more than {MAX_INPUTS} inputs (--max-inputs-per-request)",
         embed(TEXT * (MAX_INPUTS + 1)), INVALID, "TOO_MANY_INPUTS"),
    Case("embed", "Embed", "undefined purpose enum value", embed(TEXT, purpose=17), INVALID, "INVALID_ENUM"),
    Case("embed", "Embed", "bytes that are not an image", embed([epb.EmbedInput(image_bytes=b"\x89PNG\r\n\x1a\nnot")]),
         INVALID, "INVALID_IMAGE"),
    Case("embed", "Embed", "truncated PNG", embed([epb.EmbedInput(image_bytes=image_bytes(64)[:-40])]), INVALID,
         "INVALID_IMAGE"),
    Case("embed", "Embed", f"image over --image-max-bytes ({IMAGE_MAX_BYTES})",
         embed([epb.EmbedInput(image_bytes=image_bytes(200))]), INVALID, "IMAGE_TOO_LARGE"),
    Case("embed", "Embed", "image to a text-only function", embed([epb.EmbedInput(image_bytes=image_bytes(8))],
                                                                   embed_fn("word-hash")), INVALID,
         "UNSUPPORTED_MODALITY"),
    Case("embed", "Embed", "image path outside --image-roots", embed([epb.EmbedInput(image_uri="/etc/hostname")]),
         INVALID, "IMAGE_URI_NOT_ALLOWED"),
    Case("embed", "Embed", "`..` out of the image root", embed([epb.EmbedInput(image_uri="../secret.png")]),
         INVALID, "IMAGE_URI_NOT_ALLOWED"),
    Case("embed", "Embed", "`file:///etc/passwd`", embed([epb.EmbedInput(image_uri="file:///etc/passwd")]),
         INVALID, "IMAGE_URI_NOT_ALLOWED"),
    Case("embed", "Embed", "http URL to a host not in --image-allowed-hosts",
         embed([epb.EmbedInput(image_uri="http://169.254.169.254/latest/meta-data")]), INVALID,
         "IMAGE_URI_NOT_ALLOWED"),
    Case("embed", "Embed", "image URL whose port is `abc` (was INTERNAL)",
         embed([epb.EmbedInput(image_uri="http://127.0.0.1:abc/x.png")]), INVALID, "INVALID_IMAGE_URI"),
    Case("embed", "Embed", "images over the decoded pixels per request (8 of 3000x3000)",
         embed([epb.EmbedInput(image_bytes=solid_png(3000, shade)) for shade in range(8)]), INVALID,
         "IMAGE_TOO_LARGE"),
    Case("embed", "Embed", "image under the root that does not exist",
         embed([epb.EmbedInput(image_uri="missing.png")]), INVALID, "INVALID_IMAGE_URI"),
    Case("embed", "Embed", "message over --max-message-bytes", embed([epb.EmbedInput(text="x" * EMBED_MAX_MESSAGE)]),
         EXHAUSTED, None),
    *wire_cases("embed", "Embed", b"\x12\x05ab"),
    Case("embed", "StreamEmbed", "first message without a function", stream_embed(
        epb.StreamEmbedRequest(sequence=1, inputs=TEXT)), INVALID, "MISSING_FUNCTION"),
    Case("embed", "StreamEmbed", "unknown function", stream_embed(
        epb.StreamEmbedRequest(sequence=1, function=embed_fn("no-such"), inputs=TEXT)), INVALID,
         "UNKNOWN_FUNCTION"),
    Case("embed", "DescribeFunction", "unknown function", lambda t: t.embed.DescribeFunction(
        epb.DescribeFunctionRequest(function=embed_fn("no-such"))), INVALID, "UNKNOWN_FUNCTION"),
    Case("embed", "DescribeFunction", "setting the function does not have", lambda t: t.embed.DescribeFunction(
        epb.DescribeFunctionRequest(function=clip_with(colour="blue")(t))), INVALID, "UNKNOWN_SETTING"),
    Case("embed", "ListFunctions", "page token it never issued", lambda t: t.embed.ListFunctions(
        epb.ListFunctionsRequest(page_token="garbage!")), INVALID, "INVALID_PAGE_TOKEN"),
    Case("embed", "Rerank", "an embedding function", rerank(embed_fn("open-clip")), INVALID, "NOT_A_RERANKER"),
    Case("embed", "Rerank", "unknown function", rerank(embed_fn("no-such")), INVALID, "UNKNOWN_FUNCTION"),
    Case("embed", "Rerank", "1,001 documents", rerank(embed_fn("cross-encoder"), documents=["d"] * 1001), INVALID,
         "TOO_MANY_INPUTS"),
    Case("embed", "Rerank", "a query of 70 KB", rerank(embed_fn("cross-encoder"), query="q" * 70_000), INVALID,
         "QUERY_TOO_LONG"),
    Case("embed", "Rerank", "a model it would have to download", rerank(embed_fn("cross-encoder")),
         grpc.StatusCode.PERMISSION_DENIED, "MODEL_DOWNLOAD_NOT_ALLOWED"),
]

CASES = {case.key: case for case in STORE_CASES + EMBED_CASES}
assert len(CASES) == len(STORE_CASES) + len(EMBED_CASES), "two cases share a description"


# ----- the services the cases go to -------------------------------------------------------------------------
class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor,
              grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call, as the client library does."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + (self._header,))

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    intercept_stream_unary = intercept_unary_stream = intercept_stream_stream = intercept_unary_unary


@contextmanager
def serving(root: Path, tiny_clip: Any) -> Iterator[Targets]:
    """A store and an embed service with auth on, as the catalogue expects them, with its three tables."""
    from embed_service.functions import get_registry
    from embed_service.server import EmbedServer
    from store_service.server import StoreServer
    from tests.conftest import BASE_CONFIG
    from tests.store_service.conftest import BASE, WordHash, create_docs, fields, function

    get_registry().register("word-hash")(WordHash)
    (root / "images").mkdir()
    embed = EmbedServer(replace(BASE_CONFIG, model_roots=(tiny_clip.root,), auth_tokens=(EMBED_TOKEN,),
                                image_roots=(root / "images",), image_max_bytes=IMAGE_MAX_BYTES,
                                max_inputs_per_request=MAX_INPUTS,
                                max_message_bytes=EMBED_MAX_MESSAGE)).start()
    store = StoreServer(replace(BASE, data_dir=root / "data", embed_address=f"127.0.0.1:{embed.port}",
                                auth_tokens=(STORE_TOKEN,), embed_auth_token=EMBED_TOKEN)).start()
    big = [("grpc.max_send_message_length", 128 * 1024 * 1024)]
    store_channel = grpc.insecure_channel(f"127.0.0.1:{store.port}", options=big)
    embed_channel = grpc.insecure_channel(f"127.0.0.1:{embed.port}", options=big)
    found = Targets(
        store=pb_grpc.StorageServiceStub(grpc.intercept_channel(store_channel, _Bearer(STORE_TOKEN))),
        embed=epb_grpc.EmbeddingServiceStub(grpc.intercept_channel(embed_channel, _Bearer(EMBED_TOKEN))),
        store_channel=store_channel, embed_channel=embed_channel, image_root=root / "images",
        clip=embed_fn("open-clip", **tiny_clip.settings()))
    create_docs(found.store, rows=[{"id": i, "text": f"row {i}", "category": "c"} for i in range(20)])
    found.store.CreateTable(pb.CreateTableRequest(name=PLAIN, schema=fields(
        ("id", pb.DATA_TYPE_INT64, 0), ("vector", pb.DATA_TYPE_VECTOR, 4)),
        rows=json_rows(*({"id": i, "vector": [float(i), 0.0, 1.0, 0.5]} for i in range(5)))))
    found.store.CreateTable(pb.CreateTableRequest(name=CLIP, schema=fields(
        ("id", pb.DATA_TYPE_INT64, 0), ("text", pb.DATA_TYPE_STRING, 0), ("vector", pb.DATA_TYPE_VECTOR, 0)),
        embedding_functions=[function("open-clip", "text", "vector", **tiny_clip.settings())]))
    try:
        yield found
    finally:
        store_channel.close()
        embed_channel.close()
        store.stop(0.2)
        embed.stop(0.2)
        get_registry().unregister("word-hash")


# ----- the README section ------------------------------------------------------------------------------------
def markdown() -> str:
    lines = [BEGIN,
             "Every bad request below is sent by `tests/test_bad_inputs.py` to both services running with auth on;",
             "each gets exactly this status and `google.rpc.ErrorInfo` reason (domain `store.vectorlane.dev` or",
             "`embed.vectorlane.dev`), both services keep serving, and no stored byte changes. A reason of *(none)*",
             f"means gRPC itself refuses the message before the service reads it. {len(CASES)} cases:",
             "",
             "| service | RPC | bad input | status | reason |",
             "|---|---|---|---|---|"]
    for case in STORE_CASES + EMBED_CASES:
        reason = f"`{case.reason}`" if case.reason else "*(none)*"
        lines.append(f"| {case.service} | {case.rpc} | {case.what} | {case.code.name} | {reason} |")
    lines.append(END)
    return "\n".join(lines)


def readme_section(text: str) -> str | None:
    found = re.search(re.escape(BEGIN) + r".*?" + re.escape(END), text, flags=re.S)
    return found.group(0) if found else None


def write_readme() -> None:
    text = README.read_text()
    if readme_section(text) is None:
        raise SystemExit(f"README.md has no {BEGIN} ... {END} block to fill")
    README.write_text(text.replace(readme_section(text) or "", markdown()))


if __name__ == "__main__":
    write_readme()
    print(f"README.md: errors section rewritten ({len(CASES)} cases)", file=sys.stderr)
