"""The storage layer: fragments, versioned manifests, snapshots, restore, checksums, names."""

from __future__ import annotations

import json
import threading

import numpy as np
import pyarrow as pa
import pytest

from store_service.errors import (Aborted, DataLoss, InvalidArgument, InvalidTableName, TableExists, TableNotFound,
                                  VersionNotFound)
from store_service.storage.table import TableStore

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


def test_create_append_and_read_back(store):
    table = store.create("docs", SCHEMA, rows(0, 3))
    table.append(rows(3, 2))
    data = table.snapshot().to_arrow()
    assert data.column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert data.schema.metadata[b"embedding_functions"] == json.dumps(FUNCTIONS).encode()
    assert table.version_numbers() == [1, 2]


def test_a_new_store_finds_tables_as_they_were(store, tmp_path):
    store.create("docs", SCHEMA, rows(0, 3)).append(rows(3, 1))
    again = TableStore(tmp_path / "data")
    assert again.names() == ["docs"]
    snapshot = again.open("docs").snapshot()
    assert snapshot.version == 2 and snapshot.to_arrow().num_rows == 4
    assert json.loads(snapshot.schema.metadata[b"embedding_functions"]) == FUNCTIONS


def test_snapshots_are_pinned_and_old_versions_readable(store):
    table = store.create("docs", SCHEMA, rows(0, 2))
    pinned = table.snapshot()
    table.append(rows(2, 2))
    assert pinned.to_arrow().num_rows == 2
    assert table.snapshot(1).to_arrow().num_rows == 2 and table.snapshot().to_arrow().num_rows == 4
    with pytest.raises(VersionNotFound):
        table.snapshot(99)


def test_delete_and_restore(store):
    table = store.create("docs", SCHEMA, rows(0, 5))
    with_ids = table.snapshot().to_arrow(with_row_ids=True)
    table.delete_row_ids(with_ids.column("_rowid").to_numpy()[[1, 3]])
    assert table.snapshot().to_arrow().column("id").to_pylist() == [0, 2, 4]
    assert table.snapshot().manifest.rows == 3
    table.restore(1)
    assert table.snapshot().to_arrow().column("id").to_pylist() == [0, 1, 2, 3, 4]
    assert table.version_numbers() == [1, 2, 3]
    assert table.manifest().operation == "restore:1"


def test_overwrite_replaces_rows_and_may_change_the_schema(store):
    table = store.create("docs", SCHEMA, rows(0, 5))
    other = pa.schema([pa.field("name", pa.string())])
    table.overwrite(pa.table({"name": ["a", "b"]}), schema=other)
    assert table.snapshot().to_arrow().to_pydict() == {"name": ["a", "b"]}
    assert table.snapshot(1).to_arrow().num_rows == 5


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
    assert table.snapshot().to_arrow().to_pydict() == {"id": [7], "text": [None], "vector": [None]}
    assert table.version_numbers() == [1, 2]  # the refused appends left no version behind


def test_names_cannot_leave_the_data_directory(store, tmp_path):
    for name in ("../escape", "a/b", "..", ".hidden", "", "x" * 129, "a..b", "/abs", "tab\\le", "nul\x00"):
        with pytest.raises(InvalidTableName):
            store.create(name, SCHEMA)
    assert not (tmp_path / "escape").exists()
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


def test_a_corrupt_fragment_is_data_loss_never_data(store, tmp_path):
    table = store.create("docs", SCHEMA, rows(0, 3))
    fragment = tmp_path / "data" / "tables" / "docs" / table.manifest().fragments[0].path
    raw = bytearray(fragment.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    fragment.write_bytes(bytes(raw))
    fresh = TableStore(tmp_path / "data").open("docs")  # no cached copy
    with pytest.raises(DataLoss) as err:
        fresh.snapshot().to_arrow()
    assert err.value.reason == "FRAGMENT_CORRUPT" and err.value.metadata["table"] == "docs"


def test_a_corrupt_manifest_is_data_loss(store, tmp_path):
    store.create("docs", SCHEMA, rows(0, 3))
    path = next((tmp_path / "data" / "tables" / "docs" / "_versions").glob("*.manifest"))
    path.write_text("{ not json")
    with pytest.raises(DataLoss) as err:
        TableStore(tmp_path / "data").open("docs").snapshot()
    assert err.value.reason == "MANIFEST_CORRUPT"


def test_readers_see_whole_versions_while_a_writer_commits(store):
    table = store.create("docs", SCHEMA)
    stop = threading.Event()
    seen: list[int] = []

    def read():
        while not stop.is_set():
            seen.append(table.snapshot().to_arrow().num_rows)

    reader = threading.Thread(target=read)
    reader.start()
    for i in range(20):
        table.append(rows(i * 10, 10))
    stop.set()
    reader.join()
    assert seen and all(n % 10 == 0 for n in seen)
    assert table.snapshot().to_arrow().num_rows == 200


def ids_of(table) -> list[int]:
    return table.snapshot().to_arrow().column("id").to_pylist()


def row_ids_where(table, low: int, high: int) -> np.ndarray:
    data = table.snapshot().to_arrow(with_row_ids=True)
    chosen = [(low <= i < high) for i in data.column("id").to_pylist()]
    return data.column("_rowid").to_numpy()[chosen]


def test_deleting_every_row_of_a_fragment_drops_it_and_older_versions_keep_it(store):
    table = store.create("docs", SCHEMA, rows(0, 3))
    table.append(rows(3, 3))
    table.append(rows(6, 3))
    table.delete_row_ids(row_ids_where(table, 4, 6))  # part of the second fragment: recorded as deletions
    assert len(table.manifest().fragments) == 3 and table.manifest().deletions.rows == 2
    table.delete_row_ids(row_ids_where(table, 3, 4))  # its last row: the whole fragment leaves
    latest = table.manifest()
    assert len(latest.fragments) == 2 and latest.deletions is None and latest.rows == 6
    assert ids_of(table) == [0, 1, 2, 6, 7, 8]
    assert table.snapshot(4).to_arrow().column("id").to_pylist() == [0, 1, 2, 3, 6, 7, 8]
    assert table.snapshot().missing_row_ids().tolist() == [3, 4, 5]
    table.restore(4)
    assert ids_of(table) == [0, 1, 2, 3, 6, 7, 8]
    table.delete_row_ids(row_ids_where(table, 0, 100))
    assert table.manifest().fragments == () and table.manifest().rows == 0
    table.append(rows(9, 1))
    assert ids_of(table) == [9] and table.snapshot().to_arrow(with_row_ids=True).column("_rowid").to_pylist() == [9]


def test_a_change_read_before_a_fragment_was_dropped_conflicts_only_if_it_touches_those_rows(store):
    table = store.create("docs", SCHEMA, rows(0, 3))
    table.append(rows(3, 3))
    read_at = table.manifest()
    first, second = row_ids_where(table, 0, 3), row_ids_where(table, 3, 6)
    table.delete_row_ids(first)  # another writer drops the first fragment
    with pytest.raises(Aborted) as conflict:
        table.commit_rows(delete_row_ids=first[:1], read_at=read_at, operation="update")
    assert conflict.value.reason == "WRITE_CONFLICT"
    table.commit_rows(delete_row_ids=second[:1], read_at=read_at, operation="delete")  # other rows: no conflict
    assert ids_of(table) == [4, 5]


def test_the_fragment_cache_follows_the_versions_in_use(store):
    table = store.create("docs", SCHEMA)
    for i in range(60):
        table.append(rows(i * 10, 10))
        table.snapshot().to_arrow()
        if i >= 3:
            table.delete_row_ids(row_ids_where(table, (i - 3) * 10, (i - 2) * 10))
            table.snapshot().to_arrow()
    assert ids_of(table) == list(range(570, 600))
    assert len(table.manifest().fragments) == 3
    assert len(table._cache) <= 8  # the fragments of the last few versions, not the 60 ever written
