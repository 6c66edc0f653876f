"""Indexes beside the dataset: listed in the version's catalog, reloaded by a new process, caught up with newer rows."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from store_service.errors import AlreadyExists, DataLoss, NotFound
from store_service.indexes import catalog
from store_service.indexes.catalog import entries
from store_service.indexes.loaded import LoadedIndexes
from store_service.schema import vector_type
from store_service.storage.table import TableStore
from store_service.search.table_view import TableViews
from store_service.indexes.vector_index import IndexParams, SearchParams
from store_service.tables.owner import TableOwner

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
    entry, manifest = catalog.create(TableOwner(t), IndexParams(kind="IVF_FLAT", num_partitions=8))
    assert manifest.operation == "create_index" and [e.name for e in entries(manifest)] == ["vector_idx"]
    new_rows = rows(rng, 500, 20)
    t.append(new_rows)
    reopened = TableStore(root).open("t")
    view = TableViews(reopened).get()
    index = LoadedIndexes(reopened).get(view, entries(view.snapshot.manifest)[0])
    assert index.size == 520
    probe = np.asarray(new_rows.column("vector").to_pylist()[7], dtype=np.float32)
    found, distances = index.search(probe, 1, options=SearchParams(nprobes=8))
    assert distances[0] == pytest.approx(0.0, abs=1e-4)


def test_one_index_per_column_unless_replaced_and_drop(table):
    t, _, _ = table
    catalog.create(TableOwner(t), IndexParams(kind="FLAT"))
    with pytest.raises(AlreadyExists):
        catalog.create(TableOwner(t), IndexParams(kind="HNSW"))
    entry, manifest = catalog.create(TableOwner(t), IndexParams(kind="HNSW"), replace=True)
    assert [e.params.kind for e in entries(manifest)] == ["HNSW"]
    catalog.drop(TableOwner(t), "vector_idx")
    assert entries(t.manifest()) == []
    with pytest.raises(NotFound):
        catalog.drop(TableOwner(t), "vector_idx")


def test_a_corrupt_index_file_is_data_loss(table):
    t, _, root = table
    entry, _ = catalog.create(TableOwner(t), IndexParams(kind="FLAT"))
    path = t.directory / entry.file.path
    path.write_bytes(path.read_bytes()[:-10])
    reopened = TableStore(root).open("t")
    with pytest.raises(DataLoss):
        LoadedIndexes(reopened).get(TableViews(reopened).get(), entries(reopened.manifest())[0])


def test_a_flipped_byte_in_an_index_file_is_data_loss_and_nothing_is_parsed(table, monkeypatch):
    """An index is checked where it lies before FAISS reads it: a same-size file with one byte changed never
    reaches the parser (which trusts the sizes inside the file)."""
    from store_service.indexes import vector_index

    t, _, root = table
    entry, _ = catalog.create(TableOwner(t), IndexParams(kind="IVF_FLAT", num_partitions=4))
    path = t.directory / entry.file.path
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    parsed = []
    monkeypatch.setattr(vector_index.faiss, "read_index", lambda *a: parsed.append(a))
    reopened = TableStore(root).open("t")
    with pytest.raises(DataLoss) as raised:
        LoadedIndexes(reopened).get(TableViews(reopened).get(), entries(reopened.manifest())[0])
    assert raised.value.reason == "FRAGMENT_CORRUPT" and parsed == []


@pytest.mark.parametrize("kind", ["FLAT", "IVF_FLAT", "IVF_PQ", "HNSW"])
def test_an_index_read_from_its_file_answers_as_the_one_built(table, kind):
    t, rng, root = table
    params = IndexParams(kind=kind, num_partitions=4, num_sub_vectors=4)
    built = LoadedIndexes(t).get(TableViews(t).get(), catalog.create(TableOwner(t), params)[0])
    reopened = TableStore(root).open("t")
    loaded = LoadedIndexes(reopened).get(TableViews(reopened).get(), entries(reopened.manifest())[0])
    probe = rng.normal(size=DIMS).astype(np.float32)
    options = SearchParams(nprobes=4)
    for got, want in zip(loaded.search(probe, 10, options=options), built.search(probe, 10, options=options)):
        np.testing.assert_array_equal(got, want)
    # served mapped from its file, it takes rows once FAISS owns a copy (adding to the mapped one would abort)
    loaded.add(probe.reshape(1, -1), np.array([10_000]))
    assert loaded.size == 501 and loaded.search(probe, 1, options=options)[0][0] == 10_000


def test_a_build_trains_on_a_sample_and_reads_the_vectors_fragment_by_fragment(tmp_path, monkeypatch):
    """Indexing never holds the table's vectors at once: IVF trains on 256 rows per partition drawn from every
    fragment, then adds fragment by fragment, and no fragment keeps its vectors afterwards."""
    from store_service.indexes import vector_index

    rng = np.random.default_rng(5)
    store = TableStore(tmp_path / "data")
    t = store.create("big", pa.schema([("id", pa.int64()), ("vector", vector_type(DIMS))]), rows(rng, 0, 1000))
    for start in range(1000, 6000, 1000):
        t.append(rows(rng, start, 1000))
    trained, added = [], []
    real_train, real_add = vector_index.VectorIndex.train, vector_index.VectorIndex.add
    monkeypatch.setattr(vector_index.VectorIndex, "train", lambda self, s: (trained.append(s), real_train(self, s)))
    monkeypatch.setattr(vector_index.VectorIndex, "add",
                        lambda self, v, i: (added.append(len(i)), real_add(self, v, i)))
    owner = TableOwner(t)
    view = owner.latest_view()
    entry, _ = catalog.create(owner, IndexParams(kind="IVF_FLAT", num_partitions=4))
    assert len(trained) == 1 and len(trained[0]) == 256 * 4  # the sample, not the 6,000 rows
    sample_ids = {tuple(v) for v in trained[0][:, :2].tolist()}
    assert len(sample_ids) == 1024  # distinct rows
    assert added == [1000] * 6  # one add per fragment
    assert not any(p.fragment.holds_vectors("vector") or p.fragment.holds("vector") for p in view.parts)
    index = LoadedIndexes(t).get(view, entry)
    probe = np.asarray(t.dataset().to_table(columns=["vector"]).column("vector")[4321].as_py(), dtype=np.float32)
    found, distances = index.search(probe, 1, options=SearchParams(nprobes=4))
    assert found[0] == 4321 and distances[0] == pytest.approx(0.0, abs=1e-4)


def test_a_large_fragment_is_read_for_an_index_in_slices(table, monkeypatch):
    """A compacted 1M-row fragment is 1.5 GB of 384-d vectors: a build reads it SLICE_ROWS at a time."""
    from store_service.indexes import vector_index
    from store_service.search import table_view

    t, _, _ = table
    monkeypatch.setattr(table_view, "SLICE_ROWS", 128)
    added = []
    real_add = vector_index.VectorIndex.add
    monkeypatch.setattr(vector_index.VectorIndex, "add",
                        lambda self, v, i: (added.append(len(i)), real_add(self, v, i)))
    owner = TableOwner(t)
    view = owner.latest_view()
    entry, _ = catalog.create(owner, IndexParams(kind="FLAT"))
    assert added == [128, 128, 128, 116]  # the fixture's one 500-row fragment
    index = LoadedIndexes(t).get(view, entry)
    assert index.size == 500


def test_narrow_result_columns_are_held_and_vectors_are_not(table, monkeypatch):
    """A search through an index takes its result ids from the fragments' held `id` columns (read once),
    not from Lance per search; its vectors stay unread."""
    from store_service.search import vector_search
    from store_service.search.vector_search import VectorSearch

    t, rng, _ = table
    t.append(rows(rng, 500, 500))
    owner = TableOwner(t)
    entry, _ = catalog.create(owner, IndexParams(kind="HNSW"))
    view = owner.latest_view()
    index = owner.indexes.get(view, entry)
    takes = []
    real = type(t).take_rows
    monkeypatch.setattr(type(t), "take_rows", lambda self, *a, **k: (takes.append(a[2]), real(self, *a, **k))[1])
    request = VectorSearch(select=("id",), limit=10)
    for q in rng.normal(size=(5, DIMS)).astype(np.float32):
        found = vector_search.search(view, q, request, index)
        assert found.num_rows == 10 and found.column_names == ["id", "_distance"]
    assert takes == []
    assert all(p.fragment.holds("id") and not p.fragment.holds_vectors("vector") and not p.fragment.holds("vector")
               for p in view.parts)


def test_a_mapped_index_whose_own_copy_cannot_be_read_is_copied_from_itself_before_an_add(table, monkeypatch):
    """If reading FAISS's own copy fails (the file is gone, an I/O error), an add still never reaches the
    mapped index, which would abort the process: the copy is made from the mapped index."""
    from store_service.indexes import vector_index

    t, rng, root = table
    catalog.create(TableOwner(t), IndexParams(kind="IVF_FLAT", num_partitions=4))
    real_read = vector_index.faiss.read_index

    def failing_copy(path, *flags):
        if not flags:
            raise RuntimeError("could not open the file")
        return real_read(path, *flags)

    monkeypatch.setattr(vector_index.faiss, "read_index", failing_copy)
    reopened = TableStore(root).open("t")
    loaded = LoadedIndexes(reopened).get(TableViews(reopened).get(), entries(reopened.manifest())[0])
    probe = rng.normal(size=DIMS).astype(np.float32)
    loaded.add(probe.reshape(1, -1), np.array([10_000]))
    assert loaded.size == 501 and loaded.search(probe, 1, options=SearchParams(nprobes=4))[0][0] == 10_000
