"""The storage adapter: tables as Lance datasets, each change one named Lance commit, made durable (fsync) and
checksummed before it returns; snapshots, restore, conflicts, names; per-fragment serving state."""

from __future__ import annotations

import json
import os
import threading

import lance
import numpy as np
import pyarrow as pa
import pytest

from store_service.errors import (Aborted, DataLoss, InvalidArgument, InvalidTableName, TableExists, TableNotFound,
                                  VersionNotFound)
from store_service.storage import durable
from store_service.storage.fragments import ROW_ID
from store_service.storage.table import TableStore
from store_service.search.table_view import TableViews
from store_service.storage import maintenance
from store_service.storage.operations import Delete, Restore

FUNCTIONS = [{"name": "sentence-transformers", "model": {"name": "all-MiniLM-L6-v2"}, "source_column": "text",
              "vector_column": "vector"}]
SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("text", pa.string()),
                    pa.field("vector", pa.list_(pa.float32(), 4))],
                   metadata={"embedding_functions": json.dumps(FUNCTIONS)})


def rows(start: int, count: int) -> pa.Table:
    ids = np.arange(start, start + count)
    return pa.table({"id": ids, "text": [f"row {i}" for i in ids],
                     "vector": pa.FixedSizeListArray.from_arrays(
                         pa.array(np.repeat(ids, 4).astype(np.float32)), 4)})


@pytest.fixture
def store(tmp_path):
    return TableStore(tmp_path / "data")


def read(table, version=None, columns=("id",)) -> pa.Table:
    view = TableViews(table).get(version)
    return view.columns(list(columns))


def ids_of(table, version=None) -> list[int]:
    return read(table, version).column("id").to_pylist()


def delete_ids(table, low: int, high: int, read_at=None):
    view = TableViews(table).get()
    chosen = view.row_ids[view.mask(f"id >= {low} AND id < {high}")]
    return table.commit(Delete(view.locate(chosen), read_at or view.snapshot.manifest, name="delete"))


def test_tables_are_lance_datasets_in_lancedbs_layout(store, tmp_path):
    table = store.create("docs", SCHEMA, rows(0, 3))
    table.append(rows(3, 2))
    assert table.directory == tmp_path / "data" / "docs.lance"
    dataset = lance.dataset(str(table.directory))
    assert dataset.has_stable_row_ids and dataset.version == 2
    assert dataset.to_table().column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert dataset.schema.metadata[b"embedding_functions"] == json.dumps(FUNCTIONS).encode()
    assert table.version_numbers() == [1, 2]
    assert [m.operation for m in table.history()] == ["create", "append"]


def test_a_new_store_finds_tables_as_they_were(store, tmp_path):
    store.create("docs", SCHEMA, rows(0, 3)).append(rows(3, 1))
    again = TableStore(tmp_path / "data")
    assert again.names() == ["docs"]
    snapshot = again.open("docs").snapshot()
    assert snapshot.version == 2 and snapshot.manifest.rows == 4
    assert json.loads(snapshot.schema.metadata[b"embedding_functions"]) == FUNCTIONS


def test_snapshots_are_pinned_and_old_versions_readable(store):
    table = store.create("docs", SCHEMA, rows(0, 2))
    pinned = TableViews(table).get()
    table.append(rows(2, 2))
    assert pinned.num_rows == 2
    assert ids_of(table, 1) == [0, 1] and ids_of(table) == [0, 1, 2, 3]
    with pytest.raises(VersionNotFound):
        table.snapshot(99)


def test_delete_and_restore(store):
    table = store.create("docs", SCHEMA, rows(0, 5))
    delete_ids(table, 1, 2)
    delete_ids(table, 3, 4)
    assert ids_of(table) == [0, 2, 4] and table.snapshot().manifest.rows == 3
    table.commit(Restore(1))
    assert ids_of(table) == [0, 1, 2, 3, 4]
    assert table.version_numbers() == [1, 2, 3, 4]
    assert table.history()[-1].operation == "restore:1"


def test_overwrite_replaces_rows_and_may_change_the_schema(store):
    table = store.create("docs", SCHEMA, rows(0, 5))
    other = pa.schema([pa.field("name", pa.string())])
    table.overwrite(pa.table({"name": ["a", "b"]}), schema=other)
    assert read(table, columns=["name"]).to_pydict() == {"name": ["a", "b"]}
    assert TableViews(table).get(1).num_rows == 5


def test_rows_must_fit_the_schema(store):
    table = store.create("docs", SCHEMA)
    with pytest.raises(InvalidArgument) as err:
        table.append(pa.table({"id": [1], "colour": ["red"]}))
    assert err.value.reason == "UNKNOWN_COLUMN"
    with pytest.raises(InvalidArgument) as err:
        table.append(pa.table({"text": ["no id"]}))
    assert err.value.reason == "MISSING_COLUMN"
    with pytest.raises(InvalidArgument) as err:
        table.append(pa.table({"id": ["not a number"]}))
    assert err.value.reason == "SCHEMA_MISMATCH"
    table.append(pa.table({"id": [7]}))  # nullable columns may be left out
    assert read(table, columns=["id", "text", "vector"]).to_pydict() == {"id": [7], "text": [None], "vector": [None]}
    assert table.version_numbers() == [1, 2]  # the refused appends left no version behind


def test_names_cannot_leave_the_data_directory(store, tmp_path):
    for name in ("../escape", "a/b", "..", ".hidden", "", "x" * 129, "a..b", "/abs", "tab\\le", "nul\x00"):
        with pytest.raises(InvalidTableName):
            store.create(name, SCHEMA)
    assert not (tmp_path / "escape").exists() and not (tmp_path / "escape.lance").exists()
    assert store.names() == []


def test_create_twice_and_missing_tables(store):
    store.create("docs", SCHEMA)
    with pytest.raises(TableExists):
        store.create("docs", SCHEMA)
    with pytest.raises(TableNotFound):
        store.open("nope")
    store.drop("docs")
    assert store.names() == []
    with pytest.raises(TableNotFound):
        store.drop("docs")


def flip_a_byte(path):
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))


def test_a_flipped_byte_in_a_data_file_is_data_loss_which_lance_alone_would_serve(store, tmp_path):
    table = store.create("docs", SCHEMA, rows(0, 300))
    store.create("healthy", SCHEMA, rows(0, 3))
    flip_a_byte(table.directory / table.manifest().fragments[0].files[0])
    fresh = TableStore(tmp_path / "data")  # a new process: nothing verified yet
    view = TableViews(fresh.open("docs")).get()  # row ids come from the manifest: nothing of the file is read
    for read in (lambda: view.columns(["text"]), lambda: view.take(np.arange(2), ["id"]), lambda: view.mask("id > 3")):
        with pytest.raises(DataLoss) as err:  # the first read of the file's data checks it, every time
            read()
        assert err.value.reason == "FRAGMENT_CORRUPT" and err.value.metadata["table"] == "docs"
    assert TableViews(fresh.open("healthy")).get().num_rows == 3  # the other tables keep serving


def test_checksums_are_crc32_and_lines_written_as_sha256_before_are_still_checked(store, tmp_path):
    """New lines carry `crc32:`; a table whose log was written with bare SHA-256 values (before the switch)
    keeps verifying with them: intact files serve, a flipped byte is still DATA_LOSS."""
    import hashlib

    table = store.create("docs", SCHEMA, rows(0, 300))
    log = table.directory / "_vectorlane" / "checksums.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert lines and all(line["checksum"].startswith("crc32:") and "sha256" not in line for line in lines)
    legacy = [{"path": e["path"], "bytes": e["bytes"],
               "sha256": hashlib.sha256((table.directory / e["path"]).read_bytes()).hexdigest()} for e in lines]
    log.write_text("".join(json.dumps(e) + "\n" for e in legacy))
    assert TableViews(TableStore(tmp_path / "data").open("docs")).get().columns(["id"]).num_rows == 300
    flip_a_byte(table.directory / table.manifest().fragments[0].files[0])
    with pytest.raises(DataLoss) as err:
        TableViews(TableStore(tmp_path / "data").open("docs")).get().columns(["text"])
    assert err.value.reason == "FRAGMENT_CORRUPT"


def test_a_view_checks_its_files_in_the_background_and_a_damaged_one_still_fails_its_first_read(store, tmp_path):
    """The scrub checks every fragment a new view holds ahead of the reads; one it finds damaged is not marked
    checked, so the first read of it is still DATA_LOSS."""
    import time

    table = store.create("docs", SCHEMA, rows(0, 100))
    for start in range(100, 500, 100):
        table.append(rows(start, 100))
    damaged = table.manifest().fragments[2].files[0]
    flip_a_byte(table.directory / damaged)
    fresh = TableStore(tmp_path / "data").open("docs")  # a new process: nothing checked yet
    view = TableViews(fresh).get()
    files = [path for ref in fresh.manifest().fragments for path in ref.files]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not all(fresh.checksums.is_verified(f) for f in files if f != damaged):
        time.sleep(0.05)
    assert all(fresh.checksums.is_verified(f) for f in files if f != damaged)  # no read asked for them
    assert not fresh.checksums.is_verified(damaged)
    with pytest.raises(DataLoss) as err:
        view.columns(["text"])
    assert err.value.reason == "FRAGMENT_CORRUPT"


def test_a_damaged_acknowledged_manifest_is_data_loss(store, tmp_path):
    table = store.create("docs", SCHEMA, rows(0, 3))
    table.append(rows(3, 3))
    newest = sorted((table.directory / "_versions").glob("*.manifest"))[0]  # v2 names count down
    flip_a_byte(newest)
    with pytest.raises(DataLoss) as err:
        TableStore(tmp_path / "data").open("docs").snapshot()
    assert err.value.reason == "MANIFEST_CORRUPT"


def test_every_file_a_commit_adds_is_fsynced_before_it_returns(store, monkeypatch):
    table = store.create("docs", SCHEMA, rows(0, 3))
    synced: set[str] = set()
    real_file, real_dir = durable.fsync_file, durable.fsync_dir
    monkeypatch.setattr(durable, "fsync_file", lambda p: (synced.add(str(p)), real_file(p)))
    monkeypatch.setattr(durable, "fsync_dir", lambda p: (synced.add(str(p)), real_dir(p)))

    def tree():
        return {os.path.join(b, n) for b, _, names in os.walk(table.directory) for n in names}

    for change in (lambda: table.append(rows(3, 2)), lambda: delete_ids(table, 0, 1),
                   lambda: delete_ids(table, 3, 5), lambda: table.commit(Restore(2))):
        before = tree()
        synced.clear()
        change()
        added = {p for p in tree() - before if "/_vectorlane/" not in p}
        assert added and added <= synced, added - synced
        assert {os.path.dirname(p) for p in added} <= synced  # and their folders


def test_readers_see_whole_versions_while_a_writer_commits(store):
    table = store.create("docs", SCHEMA)
    stop = threading.Event()
    seen: list[int] = []
    views = TableViews(table)

    def reader():
        while not stop.is_set():
            seen.append(views.get().num_rows)

    thread = threading.Thread(target=reader)
    thread.start()
    for i in range(20):
        table.append(rows(i * 10, 10))
    stop.set()
    thread.join()
    assert seen and all(n % 10 == 0 for n in seen)
    assert views.get().num_rows == 200


def test_deleting_every_row_of_a_fragment_drops_it_and_older_versions_keep_it(store):
    table = store.create("docs", SCHEMA, rows(0, 3))
    table.append(rows(3, 3))
    table.append(rows(6, 3))
    delete_ids(table, 4, 6)  # part of the second fragment: a deletion file
    latest = table.manifest()
    assert len(latest.fragments) == 3 and latest.fragments[1].deleted == 2
    delete_ids(table, 3, 4)  # its last row: the whole fragment leaves
    latest = table.manifest()
    assert len(latest.fragments) == 2 and latest.rows == 6
    assert ids_of(table) == [0, 1, 2, 6, 7, 8]
    assert ids_of(table, 4) == [0, 1, 2, 3, 6, 7, 8]
    table.commit(Restore(4))
    assert ids_of(table) == [0, 1, 2, 3, 6, 7, 8]
    delete_ids(table, 0, 100)
    assert table.manifest().fragments == () and table.manifest().rows == 0
    table.append(rows(9, 1))
    view = TableViews(table).get()
    assert ids_of(table) == [9] and view.row_ids.tolist() == [9]  # row ids are never reused


def test_a_change_read_before_a_fragment_was_dropped_conflicts_only_if_it_touches_those_rows(store):
    table = store.create("docs", SCHEMA, rows(0, 3))
    table.append(rows(3, 3))
    old = TableViews(table).get()
    first = old.locate(old.row_ids[old.mask("id < 3")])
    second = old.locate(old.row_ids[old.mask("id = 3")])
    delete_ids(table, 0, 3)  # another writer drops the first fragment
    with pytest.raises(Aborted) as conflict:
        table.commit(Delete(first, old.snapshot.manifest, name="update"))
    assert conflict.value.reason == "WRITE_CONFLICT"
    table.commit(Delete(second, old.snapshot.manifest, name="delete"))  # other rows: no conflict
    assert ids_of(table) == [4, 5]


def test_serving_state_is_kept_per_fragment_and_follows_the_versions_in_use(store):
    table = store.create("docs", SCHEMA)
    views = TableViews(table)
    for i in range(30):
        table.append(rows(i * 10, 10))
        previous = views.get()
        if i >= 3:
            delete_ids(table, (i - 3) * 10, (i - 2) * 10)
        current = views.get()
        shared = {id(p.fragment) for p in previous.parts} & {id(p.fragment) for p in current.parts}
        assert len(shared) == len(current.parts) if i >= 3 else True  # a delete reuses every fragment's rows
    assert ids_of(table) == list(range(270, 300))
    assert views.held()[1] <= 6  # the fragments of the kept views, not the 30 ever written


def test_what_lance_reports_reaches_callers_without_the_data_directory(store, tmp_path):
    table = store.create("docs", SCHEMA, rows(0, 3))
    (table.directory / "_vectorlane" / "checksums.jsonl").unlink()  # as LanceDB writes: no checksum lines
    path = table.directory / table.manifest().fragments[0].files[0]
    path.write_bytes(path.read_bytes()[:-64])
    with pytest.raises(DataLoss) as err:  # the row ids come from the manifest; the first column read fails
        TableViews(TableStore(tmp_path / "data").open("docs")).get().columns(["id"])
    assert err.value.reason == "FRAGMENT_CORRUPT" and str(tmp_path) not in str(err.value)


def test_rows_a_restore_brings_back_are_served_with_their_ids_and_values(store):
    """A fragment first read while some of its rows were deleted is read again when a version holds those
    rows (a restore to before the delete, which has no deletion file at all): found by the crash trials."""
    table = store.create("docs", SCHEMA, rows(0, 8))
    views = TableViews(table)
    delete_ids(table, 2, 5)
    assert views.get().num_rows == 5  # the fragment's state, read with rows 2-4 deleted
    restored = table.commit(Restore(1))
    view = views.get(restored.version)
    taken = view.take(np.arange(8), ["id", "text", ROW_ID])
    assert taken.column("id").to_pylist() == list(range(8)) and taken.column("text").to_pylist()[3] == "row 3"
    assert sorted(taken.column(ROW_ID).to_pylist()) == list(range(8))


def test_a_storage_error_without_an_errno_says_what_lance_said_without_the_data_directory(tmp_path):
    """Lance raises some write failures as OSError text with no errno: callers see that text (it was shown
    as a bare "Input/output error", which hid a flaky failure's cause), never the data directory's path."""
    from store_service.errors import StorageFailed

    where = tmp_path / "data" / "docs.lance" / "data" / "fragment"
    with pytest.raises(StorageFailed) as err, durable.storage_errors(where):
        raise OSError(f"LanceError(IO): odd state at {tmp_path / 'data'}/docs.lance/data/x.lance, /home/r/x.rs:1")
    assert "odd state at <data_dir>/docs.lance" in err.value.message and str(tmp_path) not in err.value.message


def test_lance_refusing_what_the_store_built_is_not_called_a_storage_failure(tmp_path):
    """Lance's "Invalid user input" for a transaction the store built is the store's bug: it reaches the error
    mapping as it is (INTERNAL, logged with a request id), not UNAVAILABLE as if the disk had failed (found
    with a cast whose field kept the old column's id)."""
    where = tmp_path / "data" / "docs.lance" / "_versions" / "manifest"
    with pytest.raises(OSError, match="Invalid user input") as err, durable.storage_errors(where):
        raise OSError("Invalid user input: Merge operation remaps field id 0, /home/r/validate.rs:289:24")
    assert type(err.value) is OSError


def test_a_crc_computed_in_pieces_on_several_cores_is_the_crc_of_the_whole():
    import zlib

    from store_service.storage.checksums import PARALLEL_FROM_BYTES, checksum, checksum_parallel, crc32_combine

    rng = np.random.default_rng(11)
    for _ in range(100):
        a, b = rng.bytes(int(rng.integers(0, 200))), rng.bytes(int(rng.integers(0, 200)))
        assert crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    data = rng.bytes(PARALLEL_FROM_BYTES + 12_345)
    for workers in (2, 3, 7):
        assert checksum_parallel(data, workers=workers) == checksum(data) == f"crc32:{zlib.crc32(data):08x}"
    legacy = "0" * 64  # a SHA-256 from before cannot be split: it is computed whole
    assert checksum_parallel(data, legacy, workers=4) == checksum(data, legacy)


def test_a_few_ids_are_found_part_by_part_as_the_whole_tables_ids_would_find_them(store):
    """Row ids looked up fragment by fragment (no join of the table's ids per version) agree with a lookup
    in all the ids, through deletions, a compaction that keeps ids, and ids that are not there."""
    table = store.create("docs", SCHEMA, rows(0, 50))
    for start in range(50, 300, 50):
        table.append(rows(start, 50))
    delete_ids(table, 20, 70)
    delete_ids(table, 140, 150)
    checked = 0
    for _ in range(2):
        view = TableViews(table).get()
        everything = view.row_ids
        probe = np.concatenate([everything[::7], everything[-3:], [everything.max() + 5, 10**9, 25]])
        assert view._ordered_parts()  # the part-by-part path is the one taken
        positions, found = view.positions(probe)
        expected = {int(r): i for i, r in enumerate(everything)}
        for row_id, position, hit in zip(probe.tolist(), positions.tolist(), found.tolist()):
            assert hit == (row_id in expected) and (not hit or position == expected[row_id])
            checked += 1
        compaction = maintenance.prepare_compaction(table, 120)
        if compaction is not None:
            table.commit(compaction)
    assert checked > 60


def test_a_commit_in_the_same_clock_tick_as_the_last_look_is_still_seen(store, tmp_path):
    """The versions folder's time is coarse: another process's commit within the tick of this process's last
    look leaves it unchanged. The table then looks for the next manifest rather than trusting the time."""
    table = store.create("docs", SCHEMA, rows(0, 3))
    assert table.latest_version() == 1
    versions = table.directory / "_versions"
    stamp = os.stat(versions).st_mtime_ns
    TableStore(tmp_path / "data").open("docs").append(rows(3, 2))  # another writer of the same dataset
    os.utime(versions, ns=(stamp, stamp))  # as the same clock tick would leave it
    assert table.latest_version() == 2
    assert ids_of(table) == [0, 1, 2, 3, 4]


def test_a_streamed_stage_written_again_for_a_changed_schema_keeps_every_row(store, monkeypatch):
    """Lance checks the schema after taking the first batch; written again for the schema it was staged for,
    the stream goes on from the batch after those taken, inside a message of several batches too (a replay
    that split each message again lost the rest of the first one)."""
    table = store.create("docs", SCHEMA, rows(0, 3))
    wider = SCHEMA.append(pa.field("note", pa.string()))
    looks = iter([wider])  # the first look sees the schema staged for; a function switch then changes it
    latest = table.schema
    monkeypatch.setattr(table, "schema", lambda: next(looks, None) or latest())
    first = pa.concat_tables([rows(10, 2), rows(12, 2)])  # one message, two batches
    staged = table.stage_stream(iter([first, rows(14, 1)]), wider)
    assert staged.rows == 5
    from lance.file import LanceFileReader
    ids = [i for path in staged.files for i in
           LanceFileReader(str(table.directory / path)).read_all().to_table().column("id").to_pylist()]
    assert sorted(ids) == [10, 11, 12, 13, 14]
    table.discard([staged])
