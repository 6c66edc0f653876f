"""Files no version references are collected when the store starts, and failure paths leave none (found by
the security review: 13 stray fragments after 42 kills, `.creating-*`/`.dropped-*` folders of 14-44 MB, and
one index file per CreateIndex refused with INDEX_EXISTS)."""

from __future__ import annotations

import grpc
import pytest

from store_service.errors import StorageFailed
from tests.store_service.conftest import create_docs, table_files
from vectorlane.store.v1 import store_service_pb2 as pb

DOCS = [{"id": i, "text": f"row {i} words", "category": "c"} for i in range(30)]


def test_what_a_crash_leaves_is_collected_at_start_and_what_versions_use_is_kept(start_store, embed):
    store = start_store(embed)
    create_docs(store.stub, rows=DOCS)
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="id < 3"))
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    kept = table_files(store.data_dir, "docs")
    before = store.stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW)).rows
    data_dir = store.data_dir
    store.server.stop(0.2)
    tables = data_dir / "tables"
    for stray in ("data/0123abcd.arrow", "_deletions/4567.arrow", "_indexes/89ab.faiss",
                  "_versions/.00000000000000000009.manifest.1234.tmp"):
        (tables / "docs" / stray).write_bytes(b"left by kill -9")
    for folder in (".creating-0badc0de", ".dropped-feedface"):
        (tables / folder / "data").mkdir(parents=True)
        (tables / folder / "data" / "x.arrow").write_bytes(b"x" * 1000)
    again = start_store(embed, data_dir=data_dir)
    assert table_files(data_dir, "docs") == kept  # every stray gone, every referenced file kept
    assert sorted(p.name for p in tables.iterdir()) == ["docs"]
    after = again.stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW)).rows
    assert after == before
    versions = again.stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions
    for version in versions:  # every version still reads
        again.stub.CountRows(pb.CountRowsRequest(table="docs", version=version.version))


def test_a_refused_create_index_leaves_no_file(start_store, embed):
    store = start_store(embed)
    create_docs(store.stub, rows=DOCS)
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    files = table_files(store.data_dir, "docs")
    for _ in range(3):
        with pytest.raises(grpc.RpcError) as refused:
            store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_HNSW))
        assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert table_files(store.data_dir, "docs") == files


def test_a_second_store_on_one_data_directory_refuses_to_start(start_store, embed):
    store = start_store(embed)
    with pytest.raises(StorageFailed) as refused:
        start_store(embed, data_dir=store.data_dir)
    assert refused.value.reason == "DATA_DIR_IN_USE"
    assert store.stub.ListTables(pb.ListTablesRequest()).names == []  # the first one serves on
