"""Tables on object storage: the store with `--data-dir s3://bucket/prefix` and `az://container/prefix`
against real object stores on loopback, each its own process (moto for S3, Azurite for Azure Blob Storage);
every test here runs on both. LanceDB's conformance suite runs on it too
(`VECTORLANE_TEST_STORAGE=s3`, part of `make test`); here, what that suite does not reach: the store's own
RPCs (tags, merge_insert, schema evolution, re-embedding operations, optimize with cleanup), checksums in the
bucket, LanceDB on the same bucket, two stores serving one bucket, and the settings an operator must give."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import replace
from urllib.parse import urlsplit

import grpc
import lancedb
import numpy as np
import pyarrow as pa
import pytest

from store_service.config import StoreConfig
from tests.helpers import error_info
from tests.object_store import KEY_ID, SECRET, environment
from tests.store_service.conftest import BASE, add, arrow_rows, create_docs, fields, function, json_rows, rows_of
from tests.store_service.test_function_changes import make_table, read_all, wait
from vectorlane.store.v1 import store_service_pb2 as pb

DOCS = [{"id": i, "text": f"row {i} words", "category": "odd" if i % 2 else "even"} for i in range(40)]


@pytest.fixture(params=["s3", "az"])
def cloud(request):
    """The object store a test runs on, with this process's environment reaching it."""
    server = request.getfixturevalue("local_s3" if request.param == "s3" else "local_azure")
    with environment(server.environment()):
        yield server


@pytest.fixture
def data_uri(cloud) -> str:
    return cloud.uri(cloud.bucket("stores"), uuid.uuid4().hex[:12])


@pytest.fixture
def cloud_store(start_store, embed, data_uri):
    return start_store(embed, data_dir=data_uri, read_consistency_interval="0")  # the default there is 2 s


def ids(stub, table: str = "docs", **request) -> list[int]:
    reply = stub.ReadRows(pb.ReadRowsRequest(table=table, format=pb.ROW_FORMAT_ARROW, **request))
    return sorted(rows_of(reply.rows).column("id").to_pylist())


def where(data_uri: str) -> tuple[str, str]:
    """The bucket and the key prefix of a data directory's URI."""
    parts = urlsplit(data_uri)
    return parts.netloc, parts.path.strip("/")


def keys(cloud, data_uri: str, folder: str) -> list[str]:
    bucket, prefix = where(data_uri)
    return [k for k in cloud.keys(bucket, f"{prefix}/{folder}") if not k.endswith("/")]


def test_every_kind_of_change_is_served_from_object_storage(cloud_store, cloud, data_uri):
    stub = cloud_store.stub
    create_docs(stub, rows=DOCS[:20])
    add(stub, "docs", json_rows(DOCS[20:]))
    stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_IVF_FLAT, num_partitions=2))
    assert stub.CreateTag(pb.CreateTagRequest(table="docs", tag="full", version=2)).tag.version == 2
    stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="id >= 30"))
    stub.UpdateRows(pb.UpdateRowsRequest(table="docs", where="id = 3", values_sql={"category": "'three'"}))
    stub.MergeInsert(iter([pb.MergeInsertRequest(table="docs", on=["id"], when_matched_update_all=True,
                                           when_not_matched_insert_all=True, rows=json_rows(
                                               [{"id": 4, "text": "row four again", "category": "even"},
                                                {"id": 50, "text": "a new row", "category": "new"}]))]))
    stub.AddColumns(pb.AddColumnsRequest(table="docs", expressions=[pb.ColumnExpression(name="twice",
                                                                                       expression="id * 2")]))
    stub.AlterColumns(pb.AlterColumnsRequest(table="docs", alterations=[pb.ColumnAlteration(path="category",
                                                                                            rename="kind")]))
    stub.DropColumns(pb.DropColumnsRequest(table="docs", columns=["twice"]))
    assert ids(stub) == [*range(30), 50]
    assert ids(stub, version=2) == list(range(40))  # old versions stay readable
    found = stub.Search(pb.SearchRequest(table="docs", text="row 7 words", limit=1, format=pb.ROW_FORMAT_ARROW))
    assert rows_of(found.rows).column("id").to_pylist() == [7]
    table = stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert [f.name for f in table.schema.fields] == ["id", "text", "kind", "vector"]
    assert [i.index_type for i in table.indexes] == [pb.INDEX_TYPE_IVF_FLAT]
    assert keys(cloud, data_uri, "docs.lance/_vectorlane/indexes/")  # the FAISS file lives beside the dataset
    versions = [(v.version, v.operation) for v in stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions]
    assert [op for _, op in versions][:3] == ["create", "append", "create_index"]
    assert stub.CountRows(pb.CountRowsRequest(table="docs", version=stub.ListTags(
        pb.ListTagsRequest(table="docs")).tags[0].version)).count == 40
    optimized = stub.OptimizeTable(pb.OptimizeTableRequest(table="docs", cleanup_older_than_seconds=1e-6))
    assert optimized.versions_removed > 0 and ids(stub) == [*range(30), 50]
    stub.RestoreVersion(pb.RestoreVersionRequest(table="docs", version=2))  # the tagged version survived
    assert ids(stub) == list(range(40))
    stub.DeleteTag(pb.DeleteTagRequest(table="docs", tag="full"))
    stub.DropTable(pb.DropTableRequest(name="docs"))
    assert not stub.ListTables(pb.ListTablesRequest()).names
    assert keys(cloud, data_uri, "docs.lance/") == []


def test_a_function_switch_runs_as_an_operation_on_object_storage(cloud_store):
    make_table(cloud_store, 1200)
    done = wait(cloud_store, cloud_store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("word-hash", "text", "vector", dims=16))))
    assert done.state == pb.OPERATION_STATE_SUCCEEDED, done.error
    assert len(read_all(cloud_store).column("vector")[0].as_py()) == 16
    listed = cloud_store.stub.ListOperations(pb.ListOperationsRequest(table="docs")).operations
    assert [o.state for o in listed] == [pb.OPERATION_STATE_SUCCEEDED]


def _flip_first_byte(cloud, bucket: str, key: str) -> None:
    body = bytearray(cloud.read(bucket, key))
    body[len(body) // 2] ^= 0xFF
    cloud.write(bucket, key, bytes(body))


def test_a_flipped_byte_in_the_bucket_is_data_loss_naming_the_table(start_store, embed, cloud, data_uri):
    first = start_store(embed, data_dir=data_uri)
    create_docs(first.stub, rows=DOCS)
    create_docs(first.stub, name="other", rows=DOCS)
    first.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    first.server.stop(grace=0.2)
    bucket = where(data_uri)[0]
    data_file = keys(cloud, data_uri, "docs.lance/data/")[0]
    index_file = keys(cloud, data_uri, "docs.lance/_vectorlane/indexes/")[0]
    _flip_first_byte(cloud, bucket, data_file)
    second = start_store(embed, data_dir=data_uri)  # a store that has verified nothing yet
    with pytest.raises(grpc.RpcError) as caught:
        second.stub.ReadRows(pb.ReadRowsRequest(table="docs"))
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    info = error_info(caught.value)
    assert info.reason == "FRAGMENT_CORRUPT" and info.metadata["table"] == "docs"
    assert len(ids(second.stub, "other")) == len(DOCS)  # the other table keeps serving
    _flip_first_byte(cloud, bucket, data_file)  # the data file whole again; now the index file
    _flip_first_byte(cloud, bucket, index_file)
    third = start_store(embed, data_dir=data_uri)
    with pytest.raises(grpc.RpcError) as caught:
        third.stub.Search(pb.SearchRequest(table="docs", text="row 3 words", limit=1))
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS and error_info(caught.value).metadata["table"] == "docs"
    for text in (caught.value.details(), str(error_info(caught.value))):
        assert cloud.endpoint not in text and not any(secret in text for secret in cloud.secrets)


def test_lancedb_and_the_store_share_tables_on_the_same_bucket(cloud_store, data_uri, lancedb_word_hash):
    create_docs(cloud_store.stub, rows=DOCS)
    db = lancedb.connect(data_uri)  # LanceDB reads the same AWS_* environment
    table = db.open_table("docs")
    assert table.count_rows() == len(DOCS)
    assert table.schema.metadata[b"embedding_functions"]  # the function travelled in the schema metadata
    written = db.create_table("theirs", pa.table({"id": np.arange(5), "vector": pa.FixedSizeListArray.from_arrays(
        pa.array(np.eye(5, 4, dtype=np.float32).ravel()), 4)}))
    assert written.count_rows() == 5
    assert sorted(cloud_store.stub.ListTables(pb.ListTablesRequest()).names) == ["docs", "theirs"]
    found = cloud_store.stub.Search(pb.SearchRequest(table="theirs", vector=pb.Vector(values=[0, 1, 0, 0]), limit=1,
                                                  format=pb.ROW_FORMAT_ARROW))
    assert rows_of(found.rows).column("id").to_pylist() == [1]
    written.add(pa.table({"id": [9], "vector": pa.FixedSizeListArray.from_arrays(pa.array([0, 0, 0, 9.0],
                                                                                          pa.float32()), 4)}))
    assert ids(cloud_store.stub, "theirs") == [0, 1, 2, 3, 4, 9]  # LanceDB's commit, seen (interval 0 here)


@pytest.fixture
def lancedb_word_hash():
    from tests.store_service.test_lancedb_interop import _LanceDbWordHash
    from lancedb.embeddings import register
    from lancedb.embeddings import get_registry as lancedb_registry

    register("word-hash")(_LanceDbWordHash)
    yield
    lancedb_registry()._functions.pop("word-hash", None)


def test_two_stores_serve_one_bucket_and_lose_no_acknowledged_write(start_store, embed, data_uri):
    a = start_store(embed, data_dir=data_uri, read_consistency_interval="0.5")
    b = start_store(embed, data_dir=data_uri, read_consistency_interval="0.5")
    create_docs(a.stub, rows=DOCS[:10])
    assert ids(b.stub) == list(range(10))  # B had never opened it
    add(a.stub, "docs", json_rows(DOCS[10:20]))
    deadline = time.monotonic() + 10
    while ids(b.stub) != list(range(20)):  # within the interval (0.5 s), then every read sees it
        assert time.monotonic() < deadline, "B never saw A's rows"
        time.sleep(0.05)
    acknowledged: list[int] = []
    refused: list[str] = []

    def writer(store, start: int) -> None:
        for i in range(start, start + 8):
            try:
                add(store.stub, "docs", json_rows([{"id": i, "text": f"row {i}", "category": "x"}]))
                acknowledged.append(i)
            except grpc.RpcError as exc:
                refused.append(error_info(exc).reason)

    threads = [threading.Thread(target=writer, args=(a, 100)), threading.Thread(target=writer, args=(b, 200))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(refused) <= {"WRITE_CONFLICT"}  # an append retries Lance's commit; a refusal says so
    time.sleep(0.6)
    for store in (a, b):
        found = ids(store.stub)
        assert set(acknowledged) <= set(found) and set(found) - set(range(20)) == set(acknowledged)
    assert len(acknowledged) >= 12


def test_object_storage_settings_refuse_plain_http_unless_allowed_and_credentials_in_the_uri(local_s3, local_azure):
    with environment(local_s3.environment()):
        with environment({"AWS_ALLOW_HTTP": ""}), pytest.raises(ValueError, match="AWS_ALLOW_HTTP"):
            replace(BASE, data_dir="s3://stores/x")
        assert local_s3.endpoint.startswith("http://")
        with pytest.raises(ValueError, match="credentials"):
            replace(BASE, data_dir=f"s3://{KEY_ID}:{SECRET}@stores/x")
        with pytest.raises(ValueError, match="bucket"):
            replace(BASE, data_dir="s3:///x")
        for odd in ("s3://stores/../x", "s3://stores//x", "s3://stores/x#y", "az://stores/./x"):
            with pytest.raises(ValueError, match="plain"):
                replace(BASE, data_dir=odd)
        for unserved in ("gcs://stores/x", "abfs://stores@account.dfs.core.windows.net/x"):
            with pytest.raises(ValueError, match="is not served"):
                replace(BASE, data_dir=unserved)
        with pytest.raises(SystemExit):  # from the command line: the message, and exit status 2
            StoreConfig.from_args(["--data-dir", "s3://stores/x?secret=1"], environ={})
        assert replace(BASE, data_dir="s3://stores/x").consistency_interval() == 2.0
        assert replace(BASE, data_dir="/tmp/x").consistency_interval() == 0.0
        assert replace(BASE, data_dir="s3://stores/x", read_consistency_interval="none").consistency_interval() is None
    with environment(local_azure.environment()):
        assert replace(BASE, data_dir="az://stores/x").consistency_interval() == 2.0
        with environment({"AZURE_ALLOW_HTTP": ""}), pytest.raises(ValueError, match="AZURE_ALLOW_HTTP"):
            replace(BASE, data_dir="az://stores/x")  # the emulator's endpoint is plain http
        with environment({"AZURE_STORAGE_ACCOUNT_NAME": ""}), pytest.raises(ValueError, match="ACCOUNT_NAME"):
            replace(BASE, data_dir="az://stores/x")
        with pytest.raises(ValueError, match="credentials"):
            replace(BASE, data_dir="az://key@stores/x")


def test_secrets_never_reach_the_logs_or_table_metadata(cloud_store, cloud, data_uri, caplog):
    caplog.set_level(logging.DEBUG)
    create_docs(cloud_store.stub, rows=DOCS)
    with pytest.raises(grpc.RpcError):
        cloud_store.stub.ReadRows(pb.ReadRowsRequest(table="docs", version=99))
    bucket, prefix = where(data_uri)
    for key in cloud.keys(bucket, prefix):
        body = cloud.read(bucket, key)
        assert not any(secret.encode() in body for secret in cloud.secrets)
    ours = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records
                     if r.name.startswith(("store_service", "rpc_common", "embed_service", "lance", "pyarrow")))
    assert ours and not any(secret in ours for secret in cloud.secrets)  # (the test's own clients log theirs)


def test_arrow_rows_and_a_schema_without_functions_work_on_object_storage(cloud_store):
    stub = cloud_store.stub
    stub.CreateTable(pb.CreateTableRequest(name="plain", schema=fields(
        ("id", pb.DATA_TYPE_INT64, 0), ("text", pb.DATA_TYPE_STRING, 0), ("category", pb.DATA_TYPE_STRING, 0),
        ("vector", pb.DATA_TYPE_VECTOR, 32))))
    rows = pa.table({"id": [1, 2], "text": ["a", "b"], "category": ["x", "y"],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(64, np.float32)), 32)})
    add(stub, "plain", arrow_rows(rows))
    assert ids(stub, "plain") == [1, 2]


def test_a_replica_reports_ready_once_it_has_loaded_the_tables_it_serves(start_store, embed, data_uri):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    first = start_store(embed, data_dir=data_uri)
    create_docs(first.stub, rows=DOCS)
    first.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    create_docs(first.stub, name="other", rows=DOCS[:3])
    second = start_store(embed, data_dir=data_uri)
    health = health_pb2_grpc.HealthStub(second.channel)
    deadline = time.monotonic() + 60
    while health.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, "the replica never became ready"
        time.sleep(0.05)
    owners = {o.name: o.held() for o in second.server.core.tables.open_owners()}
    assert set(owners) == {"docs", "other"}
    assert owners["docs"].views == 1 and owners["docs"].indexes == 1 and owners["other"].views == 1


def test_a_replica_catching_up_reuses_what_did_not_change(start_store, embed, data_uri):
    a = start_store(embed, data_dir=data_uri, read_consistency_interval="0")
    b = start_store(embed, data_dir=data_uri, read_consistency_interval="0")
    create_docs(a.stub, rows=DOCS[:20])
    add(a.stub, "docs", json_rows(DOCS[20:30]))
    a.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    assert ids(b.stub) == list(range(30))
    b.stub.Search(pb.SearchRequest(table="docs", text="row 3 words", limit=1))  # B loads A's index
    owner = b.server.core.owner("docs")
    before = {p.ref.data_key: p.fragment for p in owner.view().parts}
    loaded = owner.indexes.loaded_objects()
    add(a.stub, "docs", json_rows(DOCS[30:]))
    found = b.stub.Search(pb.SearchRequest(table="docs", text="row 35 words", limit=1, format=pb.ROW_FORMAT_ARROW))
    assert rows_of(found.rows).column("id").to_pylist() == [35]  # A's new rows, through the caught-up index
    view = owner.view()
    assert len(view.parts) == 3 and sum(before.get(p.ref.data_key) is p.fragment for p in view.parts) == 2
    assert owner.indexes.loaded_objects() == loaded  # caught up, not read from the bucket again


def test_conflicting_updates_on_two_replicas_are_retried_by_the_client_and_both_land(start_store, embed, data_uri):
    import vectorlane

    a = start_store(embed, data_dir=data_uri, read_consistency_interval="0")
    b = start_store(embed, data_dir=data_uri, read_consistency_interval="0")
    create_docs(a.stub, rows=DOCS)
    tables = [vectorlane.connect(f"grpc://{s.target}").open_table("docs") for s in (a, b)]
    errors: list[BaseException] = []

    def update(table, category: str, ids: range) -> None:
        try:
            for i in ids:
                table.update(where=f"id = {i}", values={"category": category})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=update, args=(tables[0], "from-a", range(0, 20))),
               threading.Thread(target=update, args=(tables[1], "from-b", range(20, 40)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    rows = rows_of(a.stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW)).rows).sort_by("id")
    assert rows.column("category").to_pylist() == ["from-a"] * 20 + ["from-b"] * 20


def test_tables_at_a_buckets_root(start_store, embed, cloud):
    bucket = cloud.bucket(f"root-{uuid.uuid4().hex[:8]}")
    store = start_store(embed, data_dir=cloud.uri(bucket), read_consistency_interval="0")
    create_docs(store.stub, rows=DOCS)
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    again = start_store(embed, data_dir=cloud.uri(bucket))  # reads the index file and checksums back
    found = again.stub.Search(pb.SearchRequest(table="docs", text="row 9 words", limit=1, format=pb.ROW_FORMAT_ARROW))
    assert rows_of(found.rows).column("id").to_pylist() == [9]
    assert any(k.startswith("docs.lance/_vectorlane/indexes/") for k in cloud.keys(bucket))
    store.stub.DropTable(pb.DropTableRequest(name="docs"))
    assert [k for k in cloud.keys(bucket) if not k.endswith("/")] == []


def test_a_table_dropped_or_made_again_on_one_replica_is_seen_so_on_the_others(start_store, embed, data_uri):
    a = start_store(embed, data_dir=data_uri, read_consistency_interval="0")
    b = start_store(embed, data_dir=data_uri, read_consistency_interval="0")
    create_docs(a.stub, rows=DOCS)
    a.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    add(a.stub, "docs", json_rows([{"id": 99, "text": "row 99 words", "category": "odd"}]))
    assert ids(b.stub) == [*range(40), 99]  # B serves the first table: views of 2 versions, its index loaded
    b.stub.Search(pb.SearchRequest(table="docs", text="row 3 words", limit=1))
    first = b.server.core.tables.open_owners()[0]
    a.stub.DropTable(pb.DropTableRequest(name="docs"))
    create_docs(a.stub, rows=[{"id": 500 + i, "text": f"new {i}", "category": "n"} for i in range(3)])
    add(a.stub, "docs", json_rows([{"id": 600, "text": "newer", "category": "n"}]))  # versions 1, 2 again
    assert ids(b.stub) == [500, 501, 502, 600]  # the new table's rows, not the old version 2's
    assert ids(b.stub, version=1) == [500, 501, 502]
    found = b.stub.Search(pb.SearchRequest(table="docs", text="new 1", limit=1, format=pb.ROW_FORMAT_ARROW))
    assert rows_of(found.rows).column("id").to_pylist() == [501]
    assert first.closed and first.held().views == 0 and first.held().indexes == 0  # the old one's state let go
    a.stub.DropTable(pb.DropTableRequest(name="docs"))
    with pytest.raises(grpc.RpcError) as caught:
        ids(b.stub)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert b.server.core.tables.open_owners() == []  # dropped elsewhere: nothing of it held here


@pytest.fixture(scope="module")
def local_gcs():
    from tests.object_store import LocalGcs

    with LocalGcs() as gcs:
        yield gcs


def test_a_gcs_bucket_is_reached_through_its_own_api(local_gcs):
    from store_service.storage.location import ObjectFolder

    with environment(local_gcs.environment()):
        files = ObjectFolder(local_gcs.uri(local_gcs.bucket("stores"), uuid.uuid4().hex[:8]))
        files.publish("docs.lance/_vectorlane/a.json", b"one")
        files.publish("docs.lance/_vectorlane/b.json", b"two!")
        assert files.put_if_absent("docs.lance/_vectorlane/lease.json", b"held") is not None
        assert sorted((e.name, e.size) for e in files.entries("docs.lance/_vectorlane")) == [
            ("a.json", 3), ("b.json", 4), ("lease.json", 4)]
        assert files.folders() == ["docs.lance"] and files.exists("docs.lance") and not files.exists("other")
        assert files.read("docs.lance/_vectorlane/b.json") == b"two!"
        assert files.size("docs.lance/_vectorlane/a.json") == 3
        assert files.read_tagged("docs.lance/_vectorlane/lease.json")[0] == b"held"  # (its tag: this emulator's
        # generations are not Google's, and it ignores them as conditions: see the next test)
        with pytest.raises(FileNotFoundError):
            files.read("docs.lance/missing.json")
        files.remove("docs.lance/_vectorlane/a.json")
        assert [e.name for e in files.entries("docs.lance/_vectorlane")] == ["b.json", "lease.json"]
        files.remove_all()
        assert not files.exists()


def test_a_bucket_that_ignores_conditional_writes_is_refused_at_start(local_gcs, embed):
    from store_service.errors import StorageFailed
    from store_service.server import StoreServer

    with environment(local_gcs.environment()):
        bucket = local_gcs.bucket("ignores")  # this emulator takes a second put-if-absent of one object
        with pytest.raises(StorageFailed) as caught:
            StoreServer(replace(BASE, data_dir=local_gcs.uri(bucket, "tables"), embed_address=embed.target))
        assert caught.value.reason == "NO_CONDITIONAL_WRITES"
        with environment({"GOOGLE_ALLOW_HTTP": ""}), pytest.raises(ValueError, match="GOOGLE_ALLOW_HTTP"):
            replace(BASE, data_dir="gs://ignores/tables")


def test_metrics_scrapes_do_not_list_the_bucket_each_time(cloud_store, monkeypatch):
    from store_service.storage.location import ObjectFolder
    from tests.test_metrics import scrape, value

    create_docs(cloud_store.stub, rows=DOCS)
    create_docs(cloud_store.stub, name="other", rows=DOCS[:5])
    first = scrape(cloud_store.server.metrics_url())
    assert value(first, "vectorlane_store_tables") == 2
    assert value(first, "vectorlane_store_table_rows", table="docs") == len(DOCS)
    listings: list[str] = []
    for method in ("entries", "folders"):
        original = getattr(ObjectFolder, method)
        monkeypatch.setattr(ObjectFolder, method, lambda self, *a, _o=original, _m=method: (
            listings.append(_m), _o(self, *a))[1])
    for _ in range(3):  # what Prometheus does every few seconds
        again = scrape(cloud_store.server.metrics_url())
    assert listings == [] and again == first
    add(cloud_store.stub, "docs", json_rows([{"id": 99, "text": "row 99", "category": "odd"}]))
    assert value(scrape(cloud_store.server.metrics_url()), "vectorlane_store_table_rows", table="docs") == 41


def test_an_add_does_not_download_what_it_uploaded_and_its_lines_are_etags(cloud_store, cloud, data_uri,
                                                                             monkeypatch):
    from store_service.storage import buckets

    create_docs(cloud_store.stub, rows=DOCS[:10])
    fetched: list[str] = []
    for kind in (buckets.S3Bucket, buckets.AzureContainer):
        for method in ("get", "get_tagged"):
            original = getattr(kind, method)
            monkeypatch.setattr(kind, method, lambda self, key, _o=original: (fetched.append(key), _o(self, key))[1])
    add(cloud_store.stub, "docs", json_rows(DOCS[10:]))
    assert [key for key in fetched if "/data/" in key or "/_versions/" in key] == []  # HEADs, not GETs
    bucket, prefix = where(data_uri)
    lines = b"".join(cloud.read(bucket, key) for key in keys(cloud, data_uri, "docs.lance/_vectorlane/checksums/"))
    assert b'"etag:' in lines and b'"crc32:' not in lines


def test_an_unreachable_bucket_is_unavailable_and_the_store_stays_up(start_store, embed):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    from tests.object_store import LocalS3

    with LocalS3() as own, environment(own.environment()):  # a server of its own, to stop
        store = start_store(embed, data_dir=own.uri(own.bucket("going"), "x"), read_consistency_interval="0")
        create_docs(store.stub, rows=DOCS[:5])
        own.process.kill()
        own.process.wait()
        calls = [lambda: store.stub.ReadRows(pb.ReadRowsRequest(table="docs"), timeout=60),
                 lambda: add(store.stub, "docs", json_rows(DOCS[5:7])),
                 lambda: store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT),
                                                timeout=60),
                 lambda: store.stub.ListTables(pb.ListTablesRequest(), timeout=60)]
        for call in calls:
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # retry later: not INTERNAL, not DATA_LOSS
            assert error_info(caught.value).reason == "STORAGE_UNREACHABLE"
            assert own.endpoint not in caught.value.details()
        health = health_pb2_grpc.HealthStub(store.channel)
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def test_a_missing_container_is_unreachable_storage_not_a_missing_object(local_azure):
    from store_service.errors import StorageUnreachable
    from store_service.storage.location import ObjectFolder

    with environment(local_azure.environment()):
        files = ObjectFolder(local_azure.uri("never-made", "x"))  # the container does not exist
        for look in (lambda: files.read("a.json"), lambda: files.read_tagged("a.json"), lambda: files.size("a.json"),
                     lambda: files.put_if_absent("lease.json", b"1")):
            with pytest.raises(StorageUnreachable):  # not FileNotFoundError / None: leases must not look held
                look()


def test_an_error_while_a_body_streams_is_unreachable_storage():
    from store_service.errors import StorageUnreachable
    from store_service.storage.buckets import S3Bucket, _Stream, _streamed

    def broken(size: int = -1) -> bytes:
        raise ConnectionResetError("reset by http://10.1.2.3:9000")  # what an SDK raises mid-body

    failed = S3Bucket._failed.__get__(object.__new__(S3Bucket))
    for read in (lambda f: f.read(1 << 22), lambda f: f.read()):
        with pytest.raises(StorageUnreachable) as caught, _streamed(_Stream(broken, broken, failed)) as stream:
            read(stream)
        assert "10.1.2.3" not in str(caught.value)
