"""LanceDB's table maintenance as RPCs: OptimizeTable (compaction that keeps row ids, indexes caught up,
cleanup of old versions that spares tagged ones), GetTableStats, and version tags."""

from __future__ import annotations

import grpc
import lance
import pytest

from tests.store_service.conftest import add, create_docs, json_rows
from vectorlane.store.v1 import store_service_pb2 as pb

DOCS = [{"id": i, "text": f"row {i} words", "category": "c"} for i in range(20)]


def error_reason(error: grpc.RpcError) -> str:
    from tests.helpers import error_info

    return error_info(error).reason


def test_optimize_compacts_keeps_row_ids_catches_indexes_up_and_cleans_up_old_versions(store):
    create_docs(store.stub, rows=DOCS)
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_HNSW))
    for i in range(20, 30):  # ten small fragments
        add(store.stub, "docs", json_rows([{"id": i, "text": f"row {i} words", "category": "c"}]))
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="id < 5"))
    dataset_dir = store.data_dir / "docs.lance"
    row_ids = lance.dataset(str(dataset_dir)).to_table(with_row_id=True, columns=["id"]).sort_by("id")
    before = store.stub.GetTableStats(pb.GetTableStatsRequest(table="docs"))
    assert before.num_fragments == 11 and before.num_rows == 25 and before.num_deleted_rows == 5
    store.stub.CreateTag(pb.CreateTagRequest(table="docs", tag="first", version=1))
    found = store.stub.Search(pb.SearchRequest(table="docs", text="row 27 words", limit=1)).rows.json.rows

    done = store.stub.OptimizeTable(pb.OptimizeTableRequest(table="docs", cleanup_older_than_seconds=1e-9))
    assert done.fragments_removed == 11 and done.fragments_added == 1 and done.indexes_caught_up == 1
    assert done.versions_removed > 0 and done.bytes_removed > 0
    after = store.stub.GetTableStats(pb.GetTableStatsRequest(table="docs"))
    assert after.num_fragments == 1 and after.num_rows == 25 and after.num_deleted_rows == 0
    assert after.total_bytes < before.total_bytes and after.num_indices == 1
    assert lance.dataset(str(dataset_dir)).to_table(with_row_id=True, columns=["id"]).sort_by("id").equals(row_ids)
    assert store.stub.Search(pb.SearchRequest(table="docs", text="row 27 words", limit=1)).rows.json.rows == found
    versions = [v.version for v in store.stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions]
    assert versions == [1, done.version]  # the tagged one and the latest are kept
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs", version=1)).count == 20
    assert [(t.name, t.version) for t in store.stub.ListTags(pb.ListTagsRequest(table="docs")).tags] == \
        [("first", 1)]


def test_optimize_with_nothing_to_do_and_a_default_retention_keeps_every_version(store):
    create_docs(store.stub, rows=DOCS)
    done = store.stub.OptimizeTable(pb.OptimizeTableRequest(table="docs"))
    assert (done.fragments_removed, done.versions_removed, done.version) == (0, 0, 1)


def test_tags_name_versions_and_bad_tags_are_refused(store):
    create_docs(store.stub, rows=DOCS)
    add(store.stub, "docs", json_rows([{"id": 99, "text": "x", "category": "c"}]))
    assert store.stub.CreateTag(pb.CreateTagRequest(table="docs", tag="v-latest")).tag.version == 2
    with pytest.raises(grpc.RpcError) as exists:
        store.stub.CreateTag(pb.CreateTagRequest(table="docs", tag="v-latest", version=1))
    assert exists.value.code() == grpc.StatusCode.ALREADY_EXISTS and error_reason(exists.value) == "TAG_EXISTS"
    for bad in ("../x", "", "a/b", "x" * 200):
        with pytest.raises(grpc.RpcError) as refused:
            store.stub.CreateTag(pb.CreateTagRequest(table="docs", tag=bad))
        assert error_reason(refused.value) == "INVALID_TAG"
    with pytest.raises(grpc.RpcError) as missing:
        store.stub.CreateTag(pb.CreateTagRequest(table="docs", tag="gone", version=9))
    assert error_reason(missing.value) == "VERSION_NOT_FOUND"
    store.stub.DeleteTag(pb.DeleteTagRequest(table="docs", tag="v-latest"))
    assert list(store.stub.ListTags(pb.ListTagsRequest(table="docs")).tags) == []
    with pytest.raises(grpc.RpcError) as not_found:
        store.stub.DeleteTag(pb.DeleteTagRequest(table="docs", tag="v-latest"))
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND and error_reason(not_found.value) == "TAG_NOT_FOUND"


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), 1e300])
def test_retention_is_bounded(store, seconds):
    create_docs(store.stub, rows=DOCS)
    with pytest.raises(grpc.RpcError) as refused:
        store.stub.OptimizeTable(pb.OptimizeTableRequest(table="docs", cleanup_older_than_seconds=seconds))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
