"""The table owner and the typed operations, directly: each change is one named commit; what a change replaces
is let go (counted before and after); nothing slow or foreign runs under the writer's lock; an operation
prepared against a version the table moved on from is prepared again, never half-applied."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from store_service.core import StoreCore
from store_service.embedder import Embedder
from store_service.errors import Aborted, AlreadyExists
from store_service.indexes import catalog
from store_service.indexes.vector_index import IndexParams
from store_service.ingest.merge import MergeRules
from store_service.ingest.rows import Batch
from store_service.schema import vector_type
from store_service.search.vector_search import VectorSearch
from store_service.storage import maintenance
from store_service.storage.operations import Moved, Update
from store_service.storage.table import Table
from store_service.tables.owner import Held

DIMS = 8


def rows(start: int, count: int) -> pa.Table:
    rng = np.random.default_rng(start)
    vectors = rng.normal(size=(count, DIMS)).astype(np.float32)
    return pa.table({"id": pa.array(np.arange(start, start + count)),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMS)})


@pytest.fixture
def core(tmp_path):
    store = StoreCore(tmp_path / "data", Embedder(""))
    store.create_table("t", pa.schema([("id", pa.int64()), ("vector", vector_type(DIMS))]), [], rows(0, 300))
    yield store
    store.close()


def add(core: StoreCore, start: int, count: int) -> int:
    return core.add("t", [Batch(rows(start, count))]).version


def search(core: StoreCore, query: np.ndarray, limit: int = 5) -> list[int]:
    found, _ = core.search("t", query, VectorSearch(select=("id",), limit=limit))
    return found.column("id").to_pylist()


def test_every_change_is_one_commit_listed_under_its_operations_name(core):
    add(core, 300, 10)
    core.update("t", "id = 3", pa.table({"id": [1003]}))
    core.delete("t", "id = 4")
    core.merge_insert("t", [Batch(rows(5, 2))], MergeRules(on=("id",), update_matched=True,
                                                           insert_unmatched=True))
    core.create_index("t", IndexParams(kind="FLAT"))
    core.optimize("t", cleanup_older_than=-1)
    core.add_columns("t", expressions={"twice": "id * 2"})
    core.drop_index("t", "vector_idx")
    core.restore("t", 2)
    names = [m.operation for m in core.list_versions("t")[0]]
    assert names == ["create", "append", "update", "delete", "merge_insert", "create_index", "optimize:compact",
                     "add_columns", "drop_index", "restore:2"]


def test_a_refused_commit_leaves_no_files_and_no_version(core):
    owner = core.owner("t")
    core.create_index("t", IndexParams(kind="FLAT"))
    indexes_dir = owner.table.directory / "_vectorlane" / "indexes"
    files = sorted(p.name for p in indexes_dir.iterdir())
    with pytest.raises(AlreadyExists):
        core.create_index("t", IndexParams(kind="HNSW"))  # built, then refused at the commit: its file goes
    assert sorted(p.name for p in indexes_dir.iterdir()) == files
    old = owner.latest_view()
    doomed = old.locate(old.row_ids[old.mask("id < 3")])
    core.delete("t", "id < 3")  # another change deletes those rows first
    version = owner.table.latest_version()
    staged = owner.table.stage(rows(0, 3), old.schema)
    with pytest.raises(Aborted) as conflict:
        owner.commit(Update((staged,), doomed, old.snapshot.manifest))
    assert conflict.value.reason == "WRITE_CONFLICT" and owner.table.latest_version() == version
    assert not any((owner.table.directory / path).exists() for path in staged.files)


def test_an_append_prepared_for_an_old_schema_is_staged_again_not_half_applied(core, monkeypatch):
    """An add whose rows were staged before a schema change (an embedding-function switch, add_columns)
    commits once, with the rows in the new schema: its commit says Moved and the rows are staged again
    outside the writer's lock."""
    import store_service.core as core_module

    real = core_module.stage_stream
    moved = []
    real_commit = Table.commit

    def staged_then_schema_changes(*args, **kwargs):
        result = real(*args, **kwargs)
        core.add_columns("t", null_columns=pa.schema([pa.field("note", pa.string())]))
        return result

    def counting(self, operation):
        try:
            return real_commit(self, operation)
        except Moved:
            moved.append(operation.name)
            raise

    monkeypatch.setattr(core_module, "stage_stream", staged_then_schema_changes)
    monkeypatch.setattr(Table, "commit", counting)
    version = add(core, 300, 7)
    assert moved == ["append"]
    data, _, _ = core.read("t", where="id >= 300")
    assert data.num_rows == 7 and data.column("note").null_count == 7
    assert [m.operation for m in core.list_versions("t")[0]][-2:] == ["add_columns", "append"]
    assert version == core.owner("t").table.latest_version()


def test_no_embedding_and_no_row_staging_happens_under_the_writer_lock(core, monkeypatch):
    in_commit = threading.local()
    real_commit, real_stage = Table.commit, Table.stage

    def commit(self, operation):
        in_commit.active = True
        try:
            return real_commit(self, operation)
        finally:
            in_commit.active = False

    def stage(self, data, schema):
        assert not getattr(in_commit, "active", False), "rows were staged under the writer lock"
        return real_stage(self, data, schema)

    monkeypatch.setattr(Table, "commit", commit)
    monkeypatch.setattr(Table, "stage", stage)
    add(core, 300, 10)
    core.update("t", "id < 5", pa.table({"id": [7]}))
    core.add_columns("t", expressions={"twice": "id * 2"})
    core.optimize("t", cleanup_older_than=-1)


def test_index_replacement_restore_and_overwrite_let_go_of_what_they_replaced(core):
    owner = core.owner("t")
    query = rows(0, 1).column("vector")[0].values.to_numpy()
    core.create_index("t", IndexParams(kind="HNSW"))
    assert search(core, query)[0] == 0
    first = owner.indexes.loaded_files()
    core.create_index("t", IndexParams(kind="FLAT"), replace=True)
    assert search(core, query)[0] == 0
    assert len(owner.indexes) == 1 and owner.indexes.loaded_files() != first  # the HNSW one is unloaded
    for start in range(300, 360, 10):
        add(core, start, 10)
    search(core, query)
    assert owner.held().fragments == 7
    core.restore("t", 1)  # one fragment, no index
    search(core, query)
    held = owner.held()
    assert held.indexes == 0 and held.fragments == 1 and held.views == 1
    core.create_table("t", pa.schema([("id", pa.int64()), ("vector", vector_type(DIMS))]), [], rows(1000, 3),
                      mode="overwrite")
    held = owner.held()  # only the new version's rows, prepared for the next read (the table is being read)
    latest = {ref.data_key for ref in owner.table.manifest().fragments}
    assert held.indexes == 0 and held.views == 1 and held.fragments == len(latest) == 1
    assert {part.ref.data_key for part in owner.view().parts} == latest
    assert sorted(search(core, query, limit=3)) == [1000, 1001, 1002]
    assert owner.held().fragments == 1


def test_a_commit_keeps_the_serving_state_of_every_fragment_it_did_not_change(core):
    owner = core.owner("t")
    add(core, 300, 10)
    before = {p.ref.data_key: p.fragment for p in owner.view().parts}
    core.delete("t", "id = 305")  # a deletion file on the second fragment: both fragments' rows are reused
    add(core, 310, 10)
    after = {p.ref.data_key: p.fragment for p in owner.view().parts}
    assert all(after[key] is fragment for key, fragment in before.items())
    assert owner.held().fragments == 3 and owner.held().views == 1


def test_dropping_a_table_stops_its_operations_and_closes_its_owner(core):
    owner = core.owner("t")
    started, release = threading.Event(), threading.Event()

    def long_operation():
        started.set()
        release.wait(5)
        owner.unregister("tables/t/operations/x")  # as the re-embedding runner does when its thread ends

    from store_service.tables.owner import RunningOperation

    thread = threading.Thread(target=long_operation)
    stop = threading.Event()
    assert owner.register("tables/t/operations/x", RunningOperation(thread, stop, threading.Event()))
    thread.start()
    started.wait(5)
    threading.Timer(0.2, release.set).start()
    core.drop_table("t")  # waits for the operation's thread
    assert stop.is_set() and not thread.is_alive() and owner.closed
    assert owner.held() == Held(views=0, fragments=0, live_masks=0, indexes=0, operations=0)
    assert core.tables.open_owners() == []


def test_compaction_is_prepared_outside_the_lock_and_refused_when_its_fragments_changed(core):
    owner = core.owner("t")
    for start in range(300, 400, 20):
        add(core, start, 20)
    compaction = maintenance.prepare_compaction(owner.table)
    assert compaction is not None
    core.delete("t", "id = 310")  # a fragment it rewrote changed meanwhile
    with pytest.raises(Moved):
        owner.commit(compaction)
    assert all((owner.table.directory / path).exists() for path in compaction.files)  # the preparer's to remove
    owner.table.remove_files(compaction.files)
    core.optimize("t", cleanup_older_than=-1)  # planned again: the deleted row stays deleted
    data, _, _ = core.read("t", where="id = 310")
    assert data.num_rows == 0 and core.count("t") == 399
    assert len(owner.table.manifest().fragments) == 1


def test_catch_up_keeps_the_loaded_index_under_its_new_file(core):
    owner = core.owner("t")
    core.create_index("t", IndexParams(kind="HNSW"))
    query = rows(0, 1).column("vector")[0].values.to_numpy()
    search(core, query)
    loaded = owner.indexes.loaded_objects()
    add(core, 300, 10)
    assert catalog.catch_up(owner)
    assert owner.indexes.loaded_objects() == loaded and len(owner.indexes) == 1  # the same FAISS object


def test_read_consistency_interval_none_sees_only_this_owners_commits(tmp_path):
    core = StoreCore(tmp_path / "data", Embedder(""))
    core.create_table("t", pa.schema([("id", pa.int64()), ("vector", vector_type(DIMS))]), [], rows(0, 10))
    owner = core.owner("t")
    owner.read_consistency_interval = None
    assert owner.view().num_rows == 10
    other = Table(owner.table.directory, "t")  # another writer of the same dataset
    other.append(rows(10, 5))
    assert owner.view().num_rows == 10  # not looked for
    assert owner.latest_view().num_rows == 15  # a change reads the latest
    add(core, 100, 1)
    assert owner.view().num_rows == 16
    owner.read_consistency_interval = 0.0
    other.append(rows(200, 1))
    assert owner.view().num_rows == 17
    core.close()


def test_a_table_dropped_while_a_request_runs_is_not_served_again_and_its_name_is_free(core):
    """A request arriving while a drop waits for the table's operations gets TABLE_NOT_FOUND (it used to make
    a new owner of the dropped table, which then answered for a table created later under the name)."""
    from store_service.errors import TableNotFound
    from store_service.tables.owner import RunningOperation

    owner = core.owner("t")
    release = threading.Event()

    def operation() -> None:
        release.wait(5)
        owner.unregister("x")

    thread = threading.Thread(target=operation)
    assert owner.register("x", RunningOperation(thread, threading.Event(), threading.Event()))
    thread.start()
    dropping = threading.Thread(target=core.drop_table, args=("t",))
    dropping.start()
    while not owner.closed:
        pass
    with pytest.raises(TableNotFound):
        core.count("t")
    release.set()
    dropping.join(10)
    core.create_table("t", pa.schema([("id", pa.int64()), ("vector", vector_type(DIMS))]), [], rows(0, 5))
    assert core.count("t") == 5 and core.owner("t") is not owner


def test_rows_staged_before_a_same_dimension_function_switch_are_staged_again(core):
    """A switch that keeps the vector length changes only the schema's metadata: an append staged before it
    must still be told Moved (its vectors came from the old function)."""
    from store_service.storage.operations import Append, ChangeSchema

    owner = core.owner("t")
    table = owner.table
    staged = table.stage(rows(900, 3), table.schema())

    def new_function(schema, indexes):
        return schema.with_metadata({**(schema.metadata or {}), b"switched": b"yes"}), indexes

    owner.commit(ChangeSchema(new_function, table.manifest(), name="switch"))
    with pytest.raises(Moved):
        owner.commit(Append((staged,)))
    assert all((table.directory / path).exists() for path in staged.files)  # kept for the restage


def test_a_commit_that_could_not_be_made_durable_keeps_its_files(core, monkeypatch):
    from store_service.errors import StorageFailed
    from store_service.storage.operations import Append, CommittedNotDurable

    owner = core.owner("t")
    table = owner.table
    staged = table.stage(rows(900, 3), table.schema())
    before = table.latest_version()

    def failing(self, version, transaction_id):
        raise StorageFailed("fsync failed")

    monkeypatch.setattr(Table, "_sync_commit", failing)
    with pytest.raises(CommittedNotDurable):
        owner.commit(Append((staged,)))
    monkeypatch.undo()
    assert table.latest_version() == before + 1  # Lance committed it
    assert all((table.directory / path).exists() for path in staged.files)
    assert core.count("t") == 303


def test_the_latest_version_an_owner_has_seen_never_moves_back(core):
    owner = core.owner("t")
    owner.read_consistency_interval = None
    assert owner._saw(7) == 7
    assert owner._saw(3) == 7  # a reader that looked before a commit does not make the owner forget it
