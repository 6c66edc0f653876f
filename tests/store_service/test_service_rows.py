"""Row RPCs through a real store and embed service: add (embedded or with vectors, atomic), read, count,
delete, update (re-embedding changed sources), merge_insert, versions and restore."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pytest
import grpc
from google.protobuf import struct_pb2

from tests.helpers import error_info
from tests.store_service.conftest import (POISON, WordHash, add, arrow_rows, create_docs, json_rows, rows_of,
                                          table_files)
from vectorlane import wire
from vectorlane.store.v1 import store_service_pb2 as pb

DOCS = [{"id": i, "text": t, "category": c} for i, (t, c) in enumerate([
    ("red apple pie", "food"), ("green apple tart", "food"), ("fast red car", "car"),
    ("slow blue truck", "car"), ("blue whale song", "animal"), ("red fox jumps", "animal")])]


def expected_vector(text: str, dims: int = 32) -> np.ndarray:
    return WordHash(dims=dims).embed_texts([text], None)[0]


def read_all(store, table="docs", **kw) -> pa.Table:
    reply = store.stub.ReadRows(pb.ReadRowsRequest(table=table, format=pb.ROW_FORMAT_ARROW, **kw))
    return rows_of(reply.rows).sort_by("id")


def values(**kv) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(kv)
    return s


def test_rows_without_vectors_are_embedded_and_given_vectors_kept(store):
    create_docs(store.stub)
    given = [0.5] * 32
    reply = add(store.stub, "docs", json_rows(DOCS[:3]),
                json_rows([{"id": 10, "text": "kept as given", "vector": given}]))
    assert (reply.rows_added, reply.version) == (4, 2)
    data = read_all(store)
    vectors = np.asarray(data.column("vector").to_pylist(), dtype=np.float32)
    np.testing.assert_allclose(vectors[0], expected_vector("red apple pie"), rtol=1e-5)
    np.testing.assert_allclose(vectors[3], given)


def test_arrow_ipc_rows_and_results(store):
    create_docs(store.stub)
    batch = pa.table({"id": pa.array([1, 2], pa.int64()), "text": ["blue sky", "grey sky"]})
    assert add(store.stub, "docs", arrow_rows(batch)).rows_added == 2
    reply = store.stub.Search(pb.SearchRequest(table="docs", text="blue", limit=1, format=pb.ROW_FORMAT_ARROW))
    result = rows_of(reply.rows)
    assert result.column("id").to_pylist() == [1]
    assert result.schema.field("_distance").type == pa.float32()


def test_wire_encoded_arrow_adds_land_like_protobuf_ones(store):
    """The client's fast path (vectorlane.wire: no protobuf copies) and a plain protobuf message with the
    same rows give the same table; JSON and Arrow messages mix in one stream."""
    create_docs(store.stub)
    ids = pa.array(range(100, 150), pa.int64())
    batch = pa.table({"id": ids, "text": [f"word{i} sky" for i in range(50)],
                      "vector": pa.array([[float(i)] * 32 for i in range(50)], pa.list_(pa.float32(), 32))})
    add_rows = store.channel.stream_unary("/vectorlane.store.v1.StorageService/AddRows",
                                          response_deserializer=pb.AddRowsResponse.FromString)
    reply = add_rows(iter([
        wire.encode(pb.AddRowsRequest(table="docs"), "rows", arrow_rows(batch.slice(0, 25)).arrow_ipc),
        pb.AddRowsRequest(rows=json_rows(DOCS[:2])).SerializeToString(),
        wire.encode(pb.AddRowsRequest(), "rows", memoryview(arrow_rows(batch.slice(25)).arrow_ipc))]))
    assert (reply.rows_added, reply.version) == (52, 2)
    data = read_all(store)
    assert data.column("id").to_pylist() == [0, 1] + list(range(100, 150))
    assert data.filter(pa.compute.field("id") >= 100).select(["id", "text", "vector"]).equals(batch)


def test_overwrite_mode_replaces_rows_in_one_version(store):
    create_docs(store.stub, rows=DOCS)
    reply = add(store.stub, "docs", json_rows([{"id": 99, "text": "only row"}]), mode=pb.ADD_MODE_OVERWRITE)
    assert read_all(store).column("id").to_pylist() == [99]
    assert read_all(store, version=reply.version - 1).num_rows == len(DOCS)


def test_an_add_that_fails_midway_leaves_nothing(store):
    create_docs(store.stub, rows=DOCS)
    before = table_files(store.data_dir, "docs")
    batches = [json_rows([{"id": 100 + i, "text": f"fine row {i}"}]) for i in range(5)]
    batches.append(json_rows([{"id": 200, "text": f"a {POISON} row"}]))
    with pytest.raises(grpc.RpcError) as caught:
        add(store.stub, "docs", *batches)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "INVALID_INPUT"  # the embed service's reason, passed on
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs")).count == len(DOCS)
    assert store.stub.GetTable(pb.GetTableRequest(name="docs")).table.version == 1
    assert table_files(store.data_dir, "docs") == before  # staged fragments were removed


def test_a_failing_input_is_named_by_its_place_among_the_rows(store):
    create_docs(store.stub, rows=DOCS)
    texts = ["a much longer text than the others here", "short", f"the {POISON} is here", "mid length text", "x"]
    with pytest.raises(grpc.RpcError) as caught:
        add(store.stub, "docs", json_rows([{"id": 300 + i, "text": t} for i, t in enumerate(texts)]))
    info = error_info(caught.value)
    assert (info.reason, info.metadata["index"]) == ("INVALID_INPUT", "2")  # sent sorted by length, named as given
    assert "(value 2 of those sent)" in caught.value.details()


def test_embed_service_going_away_midway_is_unavailable_and_changes_nothing(start_store, start_embed):
    embed = start_embed()
    store = start_store(embed)
    create_docs(store.stub, rows=DOCS)

    def stream():
        yield pb.AddRowsRequest(table="docs", rows=json_rows([{"id": 50, "text": "first batch"}]))
        embed.server.stop(grace=0)
        yield pb.AddRowsRequest(rows=json_rows([{"id": 51, "text": "second batch"}]))

    with pytest.raises(grpc.RpcError) as caught:
        store.stub.AddRows(stream(), timeout=20)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs")).count == len(DOCS)
    embed_again = start_embed()
    store.server.stop(0.2)  # one store per data directory
    retry = start_store(embed_again, data_dir=store.data_dir / ".." / "data")
    assert add(retry.stub, "docs", json_rows([{"id": 50, "text": "first batch"}])).rows_added == 1


@pytest.mark.parametrize("policy,expected_rows", [(pb.BAD_VECTOR_POLICY_DROP, 1), (pb.BAD_VECTOR_POLICY_FILL, 3),
                                                  (pb.BAD_VECTOR_POLICY_NULL, 3)])
def test_bad_vector_policies(start_store, policy, expected_rows):
    store = start_store(None)
    store.stub.CreateTable(pb.CreateTableRequest(name="v", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR,
                                                               dimensions=2, nullable=True)])))
    rows = [{"id": 1, "vector": [1, 2]}, {"id": 2, "vector": [1, 2, 3]}, {"id": 3, "vector": [float("nan"), 1]}]
    message = json_rows(rows)
    with pytest.raises(grpc.RpcError) as caught:
        add(store.stub, "v", message)
    assert error_info(caught.value).reason == "BAD_VECTOR"
    assert add(store.stub, "v", message, on_bad_vectors=policy, fill_value=7).rows_added == expected_rows
    data = read_all(store, "v")
    if policy == pb.BAD_VECTOR_POLICY_FILL:
        assert data.column("vector").to_pylist()[1:] == [[1, 2], [7, 1]]  # cut to length; NaN replaced (LanceDB)
    if policy == pb.BAD_VECTOR_POLICY_NULL:
        assert data.column("vector").to_pylist()[1:] == [None, None]


def test_update_recomputes_vectors_of_changed_sources(store):
    create_docs(store.stub, rows=DOCS)
    reply = store.stub.UpdateRows(pb.UpdateRowsRequest(table="docs", where="id = 2",
                                                       values=values(text="purple submarine")))
    assert reply.rows_updated == 1
    row = read_all(store, where="id = 2")
    assert row.column("text").to_pylist() == ["purple submarine"]
    np.testing.assert_allclose(row.column("vector").to_pylist()[0], expected_vector("purple submarine"), rtol=1e-5)
    other = store.stub.UpdateRows(pb.UpdateRowsRequest(table="docs", where="category = 'food'",
                                                       values=values(category="dessert")))
    assert other.rows_updated == 2
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs", where="category = 'dessert'")).count == 2
    found = store.stub.Search(pb.SearchRequest(table="docs", text="purple submarine", limit=1, select=["id"]))
    assert found.rows.json.rows[0]["id"] == 2
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs")).count == len(DOCS)


def test_delete_count_and_versions(store):
    create_docs(store.stub, rows=DOCS)
    deleted = store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="category = 'car' OR id = 0"))
    assert deleted.rows_deleted == 3 and deleted.version == 2
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs")).count == 3
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs", version=1)).count == 6
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs"))
    assert error_info(caught.value).reason == "MISSING_FILTER"
    restored = store.stub.RestoreVersion(pb.RestoreVersionRequest(table="docs", version=1))
    assert restored.version == 3
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs")).count == 6
    versions = store.stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions
    assert [(v.version, v.operation, v.num_rows) for v in versions] == [
        (1, "create", 6), (2, "delete", 3), (3, "restore:1", 6)]
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.ReadRows(pb.ReadRowsRequest(table="docs", version=42))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(caught.value).reason == "VERSION_NOT_FOUND"


def test_merge_insert(store):
    create_docs(store.stub, rows=DOCS)

    def merge(rows, **rules):
        return store.stub.MergeInsert(iter([pb.MergeInsertRequest(table="docs", on=["id"], rows=json_rows(rows),
                                                                  **rules)]))

    reply = merge([{"id": 1, "text": "yellow banana", "category": "food"}, {"id": 7, "text": "new row"}],
                  when_matched_update_all=True, when_not_matched_insert_all=True)
    assert (reply.rows_updated, reply.rows_inserted, reply.rows_deleted) == (1, 1, 0)
    data = read_all(store)
    assert data.column("id").to_pylist() == [0, 1, 2, 3, 4, 5, 7]
    banana = data.filter(pa.compute.equal(data.column("id"), 1))
    np.testing.assert_allclose(banana.column("vector").to_pylist()[0], expected_vector("yellow banana"), rtol=1e-5)
    only_insert = merge([{"id": 2, "text": "ignored"}, {"id": 8, "text": "inserted"}],
                        when_not_matched_insert_all=True)
    assert (only_insert.rows_updated, only_insert.rows_inserted) == (0, 1)
    assert read_all(store, where="id = 2").column("text").to_pylist() == ["fast red car"]
    prune = merge([{"id": 0, "text": "keep"}], when_not_matched_by_source_delete=True,
                  when_not_matched_by_source_delete_where="category = 'animal'")
    assert prune.rows_deleted == 2
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs", where="category = 'animal'")).count == 0
    with pytest.raises(grpc.RpcError) as caught:
        merge([{"id": 3, "text": "a"}, {"id": 3, "text": "b"}], when_matched_update_all=True)
    assert error_info(caught.value).reason == "DUPLICATE_KEY"


def test_select_limit_offset_on_reads(store):
    create_docs(store.stub, rows=DOCS)
    reply = store.stub.ReadRows(pb.ReadRowsRequest(table="docs", select=["id"], limit=2, offset=1,
                                                   where="id >= 0"))
    assert [dict(r) for r in reply.rows.json.rows] == [{"id": 1.0}, {"id": 2.0}]


def test_a_corrupt_fragment_is_data_loss_naming_the_table_and_others_keep_working(start_store, embed):
    store = start_store(embed)
    create_docs(store.stub, rows=DOCS)
    create_docs(store.stub, name="healthy", rows=DOCS)
    fragment = next((store.data_dir / "docs.lance" / "data").iterdir())
    raw = bytearray(fragment.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    fragment.write_bytes(bytes(raw))
    store.server.stop(0.2)  # one store per data directory
    fresh = start_store(embed, data_dir=store.data_dir)  # nothing cached: the file is read again
    with pytest.raises(grpc.RpcError) as caught:
        fresh.stub.ReadRows(pb.ReadRowsRequest(table="docs"))
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    info = error_info(caught.value)
    assert info.reason == "FRAGMENT_CORRUPT" and info.metadata["table"] == "docs"
    assert fresh.stub.CountRows(pb.CountRowsRequest(table="healthy")).count == len(DOCS)


@pytest.mark.parametrize("rules", [
    {"when_matched_update_all": True},
    {"when_matched_update_all": True, "when_not_matched_insert_all": True},
    {"when_matched_update_all": True, "when_not_matched_by_source_delete": True},
    {"when_matched_update_all": True, "when_not_matched_insert_all": True, "when_not_matched_by_source_delete": True,
     "when_not_matched_by_source_delete_where": "category = 'car'"},
    {"when_not_matched_insert_all": True},
])
def test_merge_with_some_of_the_columns_keeps_the_others(store, rules):
    """Found by the security review: a merge sending only `id` and `category` set `text` and `vector` to NULL."""
    create_docs(store.stub, rows=DOCS)
    before = {row["id"]: row for row in read_all(store).to_pylist()}
    reply = store.stub.MergeInsert(iter([pb.MergeInsertRequest(
        table="docs", on=["id"], rows=json_rows([{"id": 1, "category": "dessert"}, {"id": 9, "category": "new"}]),
        on_bad_vectors=pb.BAD_VECTOR_POLICY_NULL, **rules)]))  # the inserted row has no source: no vector
    after = {row["id"]: row for row in read_all(store).to_pylist()}
    if rules.get("when_matched_update_all"):
        assert reply.rows_updated == 1
        assert after[1]["category"] == "dessert"
        assert after[1]["text"] == before[1]["text"] == "green apple tart"  # kept, not NULL
        np.testing.assert_allclose(after[1]["vector"], before[1]["vector"])  # its source did not change
    else:
        assert after[1] == before[1]
    if rules.get("when_not_matched_insert_all"):
        assert after[9]["category"] == "new" and after[9]["text"] is None and after[9]["vector"] is None
    for key in set(before) - {1} - ({2, 3} if rules.get("when_not_matched_by_source_delete") else set()):
        if key in after:
            assert after[key] == before[key], key


def test_merge_giving_a_source_recomputes_its_vector_and_keeps_the_rest(store):
    create_docs(store.stub, rows=DOCS)
    store.stub.MergeInsert(iter([pb.MergeInsertRequest(table="docs", on=["id"], when_matched_update_all=True,
                                                       rows=json_rows([{"id": 4, "text": "yellow submarine"}]))]))
    row = read_all(store).filter(pa.compute.equal(read_all(store).column("id"), 4)).to_pylist()[0]
    assert row["category"] == "animal" and row["text"] == "yellow submarine"
    np.testing.assert_allclose(row["vector"], expected_vector("yellow submarine"), rtol=1e-5)
