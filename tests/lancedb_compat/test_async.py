"""What LanceDB's async tests (in `test_table.py`, `test_query.py`, `test_pydantic.py`) promise of
`connect_async`: an `AsyncConnection` whose tables are `AsyncTable`s, every call awaited, with LanceDB's
forms (`await table.version()`, `table.vector_search(v)`, `table.query()`, `await table.search(q)`)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import Field

import vectorlane
from vectorlane.db import AsyncConnection
from vectorlane.pydantic import LanceModel
from vectorlane.table import AsyncTable

pytestmark = pytest.mark.asyncio
ITEMS = [{"vector": [3.1, 4.1], "item": "foo", "price": 10.0}, {"vector": [5.9, 26.5], "item": "bar", "price": 20.0}]


async def test_the_connection_and_tables_are_lancedbs_async_types(mem_db_async):
    assert isinstance(mem_db_async, AsyncConnection) and isinstance(mem_db_async, vectorlane.AsyncConnection)
    table = await mem_db_async.create_table("test", data=ITEMS)
    assert isinstance(table, AsyncTable) and table.name == "test"
    assert await mem_db_async.table_names() == ["test"]
    assert isinstance(await mem_db_async.open_table("test"), AsyncTable)
    assert (await table.schema()).field("vector").type == pa.list_(pa.float32(), 2)
    assert await table.embedding_functions() == {}


async def test_add_returns_the_version(mem_db_async):
    table = await mem_db_async.create_table("test", data=ITEMS)
    assert await table.count_rows() == 2
    result = await table.add(data=[{"vector": [10.0, 11.0], "item": "baz", "price": 30.0}])
    assert result.version == 2 and await table.count_rows() == 3 and await table.version() == 2


async def test_update_and_delete(mem_db_async):
    table = await mem_db_async.create_table("some_table", data=[{"id": 0}])
    assert (await table.update(updates={"id": 1})).rows_updated == 1
    assert (await table.to_arrow())["id"].to_pylist() == [1]
    assert (await table.update(where="id = 1", values={"id": 2})).version == 3
    assert (await table.delete("id = 2")).version == 4 and await table.count_rows() == 0


async def test_time_travel(mem_db_async):
    table = await mem_db_async.create_table("some_table", data=[{"id": 0}])
    version = await table.version()
    await table.add([{"id": 1}])
    assert await table.count_rows() == 2
    await table.checkout(version)
    assert await table.count_rows() == 1
    with pytest.raises(ValueError, match="table cannot be modified when a specific version is checked out"):
        await table.add([{"id": 2}])
    await table.checkout_latest()
    assert await table.count_rows() == 2
    await table.add([{"id": 3}])
    assert await table.count_rows() == 3
    await table.checkout(version)
    await table.restore()
    assert await table.count_rows() == 1
    await table.add([{"id": 4}])
    assert await table.count_rows() == 2
    with pytest.raises(ValueError, match="checkout before running restore"):
        await table.restore()


async def test_aliases_read_result_columns(mem_db_async):
    table = await mem_db_async.create_table("items", data=[{"vector": [8.3, 2.5], "item": "foo", "price": 12.0},
                                                           {"vector": [7.7, 3.9], "item": "bar", "price": 11.2}])

    class Item(LanceModel):
        name: str = Field(alias="item")
        price: float
        distance: float = Field(alias="_distance")

    model = (await table.vector_search([7.7, 3.9]).distance_type("cosine").limit(1).to_pydantic(Item))[0]
    assert model.name == "bar" and model.distance < 0.01


async def test_queries_are_built_then_awaited(mem_db_async):
    table = await mem_db_async.create_table("t", data=[{"id": i, "vector": [float(i), 1.0]} for i in range(5)])
    assert [r["id"] for r in await table.query().where("id > 2").select(["id"]).to_list()] == [3, 4]
    query = await table.search([4.0, 1.0])  # LanceDB's `search` is awaited before it is refined
    assert (await query.limit(1).to_list())[0]["id"] == 4
    assert (await table.search([0.0, 1.0]).limit(2).to_arrow())["id"].to_pylist() == [0, 1]
    frame = await table.vector_search([[0.0, 1.0], [4.0, 1.0]]).limit(1).to_pandas()
    assert sorted(zip(frame["query_index"], frame["id"])) == [(0, 0), (1, 4)]
    batches = [b async for b in await table.query().to_batches(2)]
    assert sum(b.num_rows for b in batches) == 5
    taken = await table.take_offsets([4, 0]).to_arrow()
    assert taken["id"].to_pylist() == [4, 0]


async def test_merge_insert(mem_db_async):
    table = await mem_db_async.create_table("t", data=pa.table({"a": [1, 2, 3], "b": ["a", "b", "c"]}))
    result = await (table.merge_insert("a").when_matched_update_all().when_not_matched_insert_all()
                    .execute(pa.table({"a": [2, 3, 4], "b": ["x", "y", "z"]})))
    assert (result.num_inserted_rows, result.num_updated_rows, result.num_deleted_rows) == (1, 2, 0)
    assert (await table.to_arrow()).sort_by("a")["b"].to_pylist() == ["a", "x", "y", "z"]


async def test_schema_evolution(mem_db_async):
    table = await mem_db_async.create_table("my_table", data=pa.table({"id": [0, 1], "category": ["a", "b"]}))
    assert (await table.add_columns({"new_col": "id + 2"})).version == 2
    assert (await table.drop_columns(["category"])).version == 3
    assert (await table.to_arrow()).column_names == ["id", "new_col"]


async def test_tags_and_indexes(mem_db_async):
    rng = np.random.default_rng(0)
    table = await mem_db_async.create_table("t", data=[{"id": i, "vector": rng.standard_normal(8).tolist()}
                                                       for i in range(300)])
    await table.tags.create("first", 1)
    assert await table.tags.list() == {"first": {"version": 1}}
    await table.create_index(index_type="IVF_FLAT", num_partitions=4)
    assert len(await table.list_indices()) == 1
    stats = await table.stats()
    assert stats["num_rows"] == 300 and stats["num_indices"] == 1


async def test_local_functions_embed_off_the_event_loop(mem_db_async):
    """A local function may block (a remote API, a model): the async client runs it on its own threads, so
    the event loop goes on serving meanwhile (LanceDB's dedicated embedding executor)."""
    import threading

    from vectorlane.embeddings import TextEmbeddingFunction, register
    from vectorlane.pydantic import Vector

    threads: list[str] = []

    @register("thread-recorder")
    class Recorder(TextEmbeddingFunction):
        def ndims(self) -> int:
            return 4

        def generate_embeddings(self, texts: list[str]) -> list[np.ndarray]:
            threads.append(threading.current_thread().name)
            return [np.full(4, float(len(t))) for t in texts]

    func = Recorder.create()

    class Words(LanceModel):
        text: str = func.SourceField()
        vector: Vector(4) = func.VectorField()

    table = await mem_db_async.create_table("words", schema=Words)
    await table.add([{"text": "hello"}, {"text": "hi"}])
    rows = await (await table.search("hey")).limit(1).to_list()
    assert rows[0]["text"] == "hi"  # the same length, the same vector
    assert len(threads) == 2 and threading.main_thread().name not in threads
    assert all(name.startswith("vectorlane-embedding") for name in threads)
