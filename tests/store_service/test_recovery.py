"""What the store puts right at start: a torn newest manifest (what a power cut leaves, since Lance never
fsyncs) is rolled back to the last good version; files no version references are collected; failure paths
leave none (found by the security review: 13 stray fragments after 42 kills, `.creating-*`/`.dropped-*`
folders of 14-44 MB, and one index file per CreateIndex refused with INDEX_EXISTS)."""

from __future__ import annotations

import grpc
import lance
import numpy as np
import pyarrow as pa
import pytest
from lance import LanceOperation
from lance.fragment import write_fragments

from store_service.errors import DataLoss, StorageFailed
from store_service.storage import recovery
from store_service.storage.table import TableStore
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
    dataset = lance.dataset(str(data_dir / "docs.lance"))
    write_fragments(dataset.to_table().slice(0, 5), str(data_dir / "docs.lance"), schema=dataset.schema)  # staged
    (data_dir / "docs.lance" / "_vectorlane" / "indexes" / "89ab.faiss").write_bytes(b"left by kill -9")
    (data_dir / "docs.lance" / "data" / ".tmpVyLNUz").write_bytes(b"a Lance write cut short")
    for folder in (".creating-0badc0de.lance", ".dropped-feedface"):
        (data_dir / folder / "data").mkdir(parents=True)
        (data_dir / folder / "data" / "x.lance").write_bytes(b"x" * 1000)
    assert table_files(data_dir, "docs") != kept
    again = start_store(embed, data_dir=data_dir)
    assert table_files(data_dir, "docs") == kept  # every stray gone, every referenced file kept
    assert sorted(p.name for p in data_dir.iterdir() if not p.name.startswith(".")) == ["docs.lance"]
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


SCHEMA = pa.schema([pa.field("id", pa.int64())])


def commit_unacknowledged(directory) -> int:
    """A commit as a power cut finds it: Lance wrote the manifest, nothing fsynced or recorded it."""
    uri = str(directory)
    fragments = write_fragments(pa.table({"id": np.arange(100, 110)}, schema=SCHEMA), uri, schema=SCHEMA)
    return lance.LanceDataset.commit(uri, LanceOperation.Append(fragments),
                                     read_version=lance.dataset(uri).version).version


def test_a_torn_newest_manifest_is_rolled_back_to_the_last_good_version(tmp_path):
    store = TableStore(tmp_path)
    table = store.create("t", SCHEMA, pa.table({"id": np.arange(10)}))
    table.append(pa.table({"id": np.arange(10, 20)}))
    torn = commit_unacknowledged(table.directory)
    from store_service.storage.manifest import manifest_file
    manifest_file(table.directory, torn).write_bytes(b"")  # what a power cut can leave
    with pytest.raises(ValueError):
        lance.dataset(str(table.directory))  # Lance alone cannot open the table any more
    found = recovery.recover(tmp_path)
    assert found.rolled_back == [("t", torn)]
    reopened = TableStore(tmp_path).open("t")
    assert reopened.latest_version() == 2 and reopened.manifest().rows == 20
    reopened.append(pa.table({"id": [99]}))  # and it takes new commits
    assert lance.dataset(str(table.directory)).count_rows() == 21


def test_an_acknowledged_manifest_that_is_damaged_is_never_rolled_back(tmp_path):
    store = TableStore(tmp_path)
    table = store.create("t", SCHEMA, pa.table({"id": np.arange(10)}))
    committed = table.append(pa.table({"id": np.arange(10, 20)}))
    from store_service.storage.manifest import manifest_file
    manifest_file(table.directory, committed.version).write_bytes(b"")
    found = recovery.recover(tmp_path)
    assert found.damaged == ["t"] and found.rolled_back == []
    with pytest.raises(DataLoss):
        TableStore(tmp_path).open("t").snapshot()


def test_files_only_an_older_version_references_are_kept_and_strays_of_every_kind_go(tmp_path):
    """Collection reads older versions only for files the newest does not reference: a deletion file and a
    fragment that only older versions use stay (they still read), a stray deletion file and index go."""
    from store_service.search.table_view import TableViews
    from store_service.storage.operations import Delete

    store = TableStore(tmp_path)
    table = store.create("t", SCHEMA, pa.table({"id": np.arange(10)}))
    table.append(pa.table({"id": np.arange(10, 20)}))
    for low, high in ((0, 2), (2, 4), (10, 20)):  # two deletion files in turn; then the second fragment goes
        view = TableViews(table).get()
        chosen = view.row_ids[view.mask(f"id >= {low} AND id < {high}")]
        table.commit(Delete(view.locate(chosen), view.snapshot.manifest, name="delete"))
    root = table.directory
    in_use = {str(p.relative_to(root)) for folder in ("data", "_deletions") for p in (root / folder).iterdir()}
    newest = lance.dataset(str(root))
    assert len(in_use) > len(newest.get_fragments()) + 1  # some files only older versions reference
    old_deletion = sorted((root / "_deletions").iterdir())[0]
    (root / "_deletions" / f"0-99-{'ab' * 8}.arrow").write_bytes(old_deletion.read_bytes())  # a stray
    (root / "_vectorlane" / "indexes").mkdir(parents=True, exist_ok=True)
    (root / "_vectorlane" / "indexes" / "cut-short.faiss").write_bytes(b"x")
    found = recovery.recover(tmp_path)
    assert found.files == 2
    left = {str(p.relative_to(root)) for folder in ("data", "_deletions", "_vectorlane/indexes")
            if (root / folder).is_dir() for p in (root / folder).iterdir()}
    assert left == in_use
    for version in range(1, newest.version + 1):  # every version still reads
        lance.dataset(str(root), version=version).to_table()
