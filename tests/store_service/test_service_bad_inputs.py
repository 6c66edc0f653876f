"""Bad requests to every store RPC: each gets its precise status and ErrorInfo reason, the server keeps
serving, and the table's files and rows are unchanged afterwards."""

from __future__ import annotations

import hashlib

import grpc
import pytest
from google.protobuf import struct_pb2

from tests.helpers import error_info
from tests.store_service.conftest import create_docs, json_rows
from vectorlane.store.v1 import store_service_pb2 as pb

INVALID, NOT_FOUND = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
S = "docs"


def values(**kv) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(kv)
    return s


def add_stream(*messages):
    return lambda stub: stub.AddRows(iter(messages))


CASES = {
    "search unknown table": (lambda s: s.Search(pb.SearchRequest(table="nope", text="x")), NOT_FOUND,
                             "TABLE_NOT_FOUND"),
    "search traversal name": (lambda s: s.Search(pb.SearchRequest(table="../docs", text="x")), INVALID,
                              "INVALID_TABLE_NAME"),
    "search wrong dimension": (lambda s: s.Search(pb.SearchRequest(table=S, vector=pb.Vector(values=[1.0] * 3))),
                               INVALID, "WRONG_DIMENSION"),
    "search NaN vector": (lambda s: s.Search(pb.SearchRequest(table=S, vector=pb.Vector(values=[float("nan")] * 32))),
                         INVALID, "BAD_VECTOR"),
    "search no query": (lambda s: s.Search(pb.SearchRequest(table=S)), INVALID, "MISSING_QUERY"),
    "search bad filter": (lambda s: s.Search(pb.SearchRequest(table=S, text="x", where="id = = 3")), INVALID,
                          "INVALID_FILTER"),
    "search unknown filter column": (lambda s: s.Search(pb.SearchRequest(table=S, text="x", where="colour = 'red'")),
                                     INVALID, "UNKNOWN_COLUMN"),
    "search unknown select": (lambda s: s.Search(pb.SearchRequest(table=S, text="x", select=["nope"])), INVALID,
                              "UNKNOWN_COLUMN"),
    "search unknown vector column": (lambda s: s.Search(pb.SearchRequest(table=S, text="x", vector_column="id")),
                                     INVALID, "UNKNOWN_COLUMN"),
    "search huge limit": (lambda s: s.Search(pb.SearchRequest(table=S, text="x", limit=10 ** 6)), INVALID,
                          "LIMIT_TOO_LARGE"),
    "search negative offset": (lambda s: s.Search(pb.SearchRequest(table=S, text="x", offset=-1)), INVALID,
                               "INVALID_ARGUMENT"),
    "search undefined metric": (lambda s: s.Search(pb.SearchRequest(table=S, text="x", metric=17)), INVALID,
                                "INVALID_ENUM"),
    "add wrong dimension": (add_stream(pb.AddRowsRequest(table=S, rows=json_rows([{"id": 9, "vector": [1, 2]}]))),
                            INVALID, "BAD_VECTOR"),
    "add unknown column": (add_stream(pb.AddRowsRequest(table=S, rows=json_rows([{"id": 9, "colour": "red"}]))),
                           INVALID, "UNKNOWN_COLUMN"),
    "add wrong type": (add_stream(pb.AddRowsRequest(table=S, rows=json_rows([{"id": "nine"}]))), INVALID,
                       "SCHEMA_MISMATCH"),
    "add corrupt arrow": (add_stream(pb.AddRowsRequest(table=S, rows=pb.Rows(arrow_ipc=b"\xff\xff\xff\xffgarbage"))),
                          INVALID, "INVALID_ARROW_IPC"),
    "add no table": (add_stream(pb.AddRowsRequest(rows=json_rows([{"id": 1}]))), INVALID, "MISSING_TABLE"),
    "add empty stream": (add_stream(), INVALID, "MISSING_TABLE"),
    "add unknown table": (add_stream(pb.AddRowsRequest(table="nope", rows=json_rows([{"id": 1}]))), NOT_FOUND,
                          "TABLE_NOT_FOUND"),
    "add infinite fill": (add_stream(pb.AddRowsRequest(table=S, on_bad_vectors=pb.BAD_VECTOR_POLICY_FILL,
                                                       fill_value=float("inf"), rows=json_rows([{"id": 1}]))),
                          INVALID, "INVALID_FILL_VALUE"),
    "delete without filter": (lambda s: s.DeleteRows(pb.DeleteRowsRequest(table=S)), INVALID, "MISSING_FILTER"),
    "delete bad filter": (lambda s: s.DeleteRows(pb.DeleteRowsRequest(table=S, where="id IN (1,")), INVALID,
                          "INVALID_FILTER"),
    "update unknown column": (lambda s: s.UpdateRows(pb.UpdateRowsRequest(table=S, where="id = 1",
                                                                          values=values(colour="red"))),
                              INVALID, "UNKNOWN_COLUMN"),
    "update wrong type": (lambda s: s.UpdateRows(pb.UpdateRowsRequest(table=S, values=values(id="x"))), INVALID,
                          "SCHEMA_MISMATCH"),
    "update nothing": (lambda s: s.UpdateRows(pb.UpdateRowsRequest(table=S, where="id = 1")), INVALID,
                       "MISSING_VALUES"),
    "update wrong dimension": (lambda s: s.UpdateRows(pb.UpdateRowsRequest(table=S, values=values(vector=[1, 2]))),
                               INVALID, "BAD_VECTOR"),
    "merge without key": (lambda s: s.MergeInsert(iter([pb.MergeInsertRequest(
        table=S, when_not_matched_insert_all=True, rows=json_rows([{"id": 1}]))])), INVALID, "MISSING_KEY"),
    "merge vector key": (lambda s: s.MergeInsert(iter([pb.MergeInsertRequest(
        table=S, on=["vector"], when_not_matched_insert_all=True, rows=json_rows([{"id": 1}]))])), INVALID,
        "UNKNOWN_COLUMN"),
    "merge does nothing": (lambda s: s.MergeInsert(iter([pb.MergeInsertRequest(
        table=S, on=["id"], rows=json_rows([{"id": 1}]))])), INVALID, "EMPTY_MERGE"),
    "count bad filter": (lambda s: s.CountRows(pb.CountRowsRequest(table=S, where="text LIKE")), INVALID,
                         "INVALID_FILTER"),
    "read unknown version": (lambda s: s.ReadRows(pb.ReadRowsRequest(table=S, version=99)), NOT_FOUND,
                             "VERSION_NOT_FOUND"),
    "read unknown column": (lambda s: s.ReadRows(pb.ReadRowsRequest(table=S, select=["x"])), INVALID,
                            "UNKNOWN_COLUMN"),
    "restore unknown version": (lambda s: s.RestoreVersion(pb.RestoreVersionRequest(table=S, version=99)),
                                NOT_FOUND, "VERSION_NOT_FOUND"),
    "restore version zero": (lambda s: s.RestoreVersion(pb.RestoreVersionRequest(table=S)), INVALID,
                             "INVALID_VERSION"),
    "index without type": (lambda s: s.CreateIndex(pb.CreateIndexRequest(table=S)), INVALID, "INVALID_INDEX"),
    "index too many partitions": (lambda s: s.CreateIndex(pb.CreateIndexRequest(
        table=S, index_type=pb.INDEX_TYPE_IVF_FLAT, num_partitions=1000)), INVALID, "INVALID_INDEX_PARAMETERS"),
    "index bad sub-vectors": (lambda s: s.CreateIndex(pb.CreateIndexRequest(
        table=S, index_type=pb.INDEX_TYPE_IVF_PQ, num_partitions=1, num_sub_vectors=5)), INVALID,
        "INVALID_INDEX_PARAMETERS"),
    "index on scalar column": (lambda s: s.CreateIndex(pb.CreateIndexRequest(
        table=S, index_type=pb.INDEX_TYPE_FLAT, vector_column="id")), INVALID, "UNKNOWN_COLUMN"),
    "drop unknown index": (lambda s: s.DropIndex(pb.DropIndexRequest(table=S, name="nope")), NOT_FOUND,
                           "INDEX_NOT_FOUND"),
    "create duplicate columns": (lambda s: s.CreateTable(pb.CreateTableRequest(name="dup", schema=pb.Schema(fields=[
        pb.Field(name="a", type=pb.DATA_TYPE_INT32), pb.Field(name="a", type=pb.DATA_TYPE_INT32)]))), INVALID,
        "INVALID_SCHEMA"),
    "create corrupt arrow schema": (lambda s: s.CreateTable(pb.CreateTableRequest(
        name="bad", schema=pb.Schema(arrow_schema=b"not a schema"))), INVALID, "INVALID_ARROW_SCHEMA"),
    "create function on unknown column": (lambda s: s.CreateTable(pb.CreateTableRequest(
        name="f", schema=pb.Schema(fields=[pb.Field(name="v", type=pb.DATA_TYPE_VECTOR, dimensions=4)]),
        embedding_functions=[pb.EmbeddingFunctionConfig(name="mine", source_column="text", vector_column="v")])),
        INVALID, "UNKNOWN_COLUMN"),
    "create unknown server setting": (lambda s: s.CreateTable(pb.CreateTableRequest(
        name="f", schema=pb.Schema(fields=[pb.Field(name="t", type=pb.DATA_TYPE_STRING),
                                           pb.Field(name="v", type=pb.DATA_TYPE_VECTOR)]),
        embedding_functions=[pb.EmbeddingFunctionConfig(name="word-hash", source_column="t", vector_column="v",
                                                        model=values(colour="red"))])), INVALID, "UNKNOWN_SETTING"),
    "create without schema or rows": (lambda s: s.CreateTable(pb.CreateTableRequest(name="empty")), INVALID,
                                      "MISSING_SCHEMA"),
    "list versions bad token": (lambda s: s.ListVersions(pb.ListVersionsRequest(table=S, page_token="zz")), INVALID,
                                "INVALID_PAGE_TOKEN"),
    "oversized message": (lambda s: s.Search(pb.SearchRequest(table=S, text="x" * (65 * 1024 * 1024))),
                          grpc.StatusCode.RESOURCE_EXHAUSTED, None),
}


def fingerprint(store) -> tuple[str, int]:
    root = store.data_dir / "tables"
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".lock"):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest(), store.stub.CountRows(pb.CountRowsRequest(table=S)).count


@pytest.fixture(scope="module")
def module_store(tmp_path_factory, tiny_clip):
    from dataclasses import replace

    import grpc as _grpc

    from embed_service.server import EmbedServer
    from store_service.server import StoreServer
    from tests.conftest import BASE_CONFIG
    from tests.store_service.conftest import BASE, RunningStore
    from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

    from embed_service.functions import get_registry
    from tests.store_service.conftest import WordHash

    get_registry().register("word-hash")(WordHash)  # before the per-test fixture: the table is made here
    embed = EmbedServer(replace(BASE_CONFIG, model_roots=(tiny_clip.root,))).start()
    data = tmp_path_factory.mktemp("bad") / "data"
    server = StoreServer(replace(BASE, data_dir=data, embed_address=f"127.0.0.1:{embed.port}")).start()
    channel = _grpc.insecure_channel(f"127.0.0.1:{server.port}",
                                     options=[("grpc.max_send_message_length", 128 * 1024 * 1024)])
    store = RunningStore(server, channel, pb_grpc.StorageServiceStub(channel), data)
    create_docs(store.stub, rows=[{"id": i, "text": f"row {i}", "category": "c"} for i in range(20)])
    yield store
    channel.close()
    server.stop(0.2)
    embed.stop(0.2)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_request_gets_its_status_and_changes_nothing(module_store, case):
    call, code, reason = CASES[case]
    before = fingerprint(module_store)
    with pytest.raises(grpc.RpcError) as caught:
        call(module_store.stub)
    assert caught.value.code() == code, caught.value.details()
    if reason is not None:
        assert error_info(caught.value).reason == reason, caught.value.details()
        assert error_info(caught.value).domain in ("store.vectorlane.dev",)
    assert fingerprint(module_store) == before
    assert module_store.stub.Search(pb.SearchRequest(table=S, text="row 3", limit=1)).rows.json.rows
