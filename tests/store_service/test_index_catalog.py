"""Indexes beside the dataset: listed in the version's catalog, reloaded by a new process, caught up with newer rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from store_service.errors import AlreadyExists, DataLoss, NotFound
from store_service.search.index_catalog import LoadedIndexes, create_index, drop_index, entries
from store_service.schema import vector_type
from store_service.storage.table import TableStore
from store_service.search.table_view import ViewCache
from store_service.search.vector_index import IndexParams, SearchParams

DIMS = 16


def rows(rng, start, count):
    return pa.table({"id": np.arange(start, start + count),
                     "vector": pa.array(list(rng.normal(size=(count, DIMS)).astype(np.float32)), vector_type(DIMS))})


@pytest.fixture
def table(tmp_path):
    rng = np.random.default_rng(3)
    store = TableStore(tmp_path / "data")
    schema = pa.schema([("id", pa.int64()), ("vector", vector_type(DIMS))])
    return store.create("t", schema, rows(rng, 0, 500)), rng, tmp_path / "data"


def test_an_index_is_recorded_reloaded_and_caught_up(table):
    t, rng, root = table
    entry, manifest = create_index(t, ViewCache().get(t), IndexParams(kind="IVF_FLAT", num_partitions=8))
    assert manifest.operation == "create_index" and [e.name for e in entries(manifest)] == ["vector_idx"]
    new_rows = rows(rng, 500, 20)
    t.append(new_rows)
    reopened = TableStore(root).open("t")
    view = ViewCache().get(reopened)
    index = LoadedIndexes().get(reopened, view, entries(view.snapshot.manifest)[0])
    assert index.size == 520
    probe = np.asarray(new_rows.column("vector").to_pylist()[7], dtype=np.float32)
    found, distances = index.search(probe, 1, options=SearchParams(nprobes=8))
    assert distances[0] == pytest.approx(0.0, abs=1e-4)


def test_one_index_per_column_unless_replaced_and_drop(table):
    t, _, _ = table
    create_index(t, ViewCache().get(t), IndexParams(kind="FLAT"))
    with pytest.raises(AlreadyExists):
        create_index(t, ViewCache().get(t), IndexParams(kind="HNSW"))
    entry, manifest = create_index(t, ViewCache().get(t), IndexParams(kind="HNSW"), replace=True)
    assert [e.params.kind for e in entries(manifest)] == ["HNSW"]
    drop_index(t, "vector_idx")
    assert entries(t.manifest()) == []
    with pytest.raises(NotFound):
        drop_index(t, "vector_idx")


def test_a_corrupt_index_file_is_data_loss(table):
    t, _, root = table
    entry, _ = create_index(t, ViewCache().get(t), IndexParams(kind="FLAT"))
    path = t.directory / entry.file.path
    path.write_bytes(path.read_bytes()[:-10])
    reopened = TableStore(root).open("t")
    with pytest.raises(DataLoss):
        LoadedIndexes().get(reopened, ViewCache().get(reopened), entries(reopened.manifest())[0])
