"""LanceDB's schema evolution through the client, sync and async: `add_columns` (SQL expressions or
pyarrow fields), `alter_columns` (rename, nullable, data_type), `drop_columns`, with LanceDB's result
objects, and the table's schema following."""

from __future__ import annotations

import asyncio

import pyarrow as pa
import pytest

import vectorlane
from vectorlane.embeddings import get_registry
from vectorlane.errors import VectorlaneError
from vectorlane.pydantic import LanceModel, Vector
from vectorlane.results import AddColumnsResult, AlterColumnsResult, DropColumnsResult

func = get_registry().get("word-hash").create(dims=16)


class Items(LanceModel):
    id: int
    price: float
    text: str = func.SourceField()
    vector: Vector(16) = func.VectorField()  # type: ignore[valid-type]


ROWS = [{"id": i, "price": 1.5 * i, "text": f"item {i}"} for i in range(5)]


def test_add_alter_and_drop_columns_as_in_lancedb(db):
    table = db.create_table("items", schema=Items)
    table.add(ROWS)
    added = table.add_columns({"price_with_tax": "price * 1.2", "name": "upper(text)"})
    assert isinstance(added, AddColumnsResult) and added.version == table.version
    assert table.schema.names[-2:] == ["price_with_tax", "name"]  # the schema follows
    rows = table.to_pandas().sort_values("id")
    assert rows["price_with_tax"].round(6).tolist() == [round(1.8 * i, 6) for i in range(5)]
    assert rows["name"].tolist()[1] == "ITEM 1"
    table.add_columns(pa.field("note", pa.string()))
    table.add_columns([pa.field("a", pa.int32()), pa.field("b", pa.float64())])
    assert table.to_arrow().column("note").null_count == 5

    altered = table.alter_columns({"path": "text", "rename": "title"},
                                  {"path": "id", "data_type": pa.int32()},
                                  {"path": "price", "nullable": True})
    assert isinstance(altered, AlterColumnsResult)
    assert table.schema.field("id").type == pa.int32() and "title" in table.schema.names
    assert table.embedding_functions["vector"].source_column == "title"
    table.add([{"id": 9, "price": 2.0, "title": "item nine"}])  # embedded from the renamed source
    assert table.search("item nine").limit(1).to_list()[0]["id"] == 9

    dropped = table.drop_columns(["note", "a"])
    assert isinstance(dropped, DropColumnsResult)
    assert "note" not in table.schema.names and "b" in table.schema.names
    with pytest.raises(VectorlaneError) as in_use:
        table.drop_columns("title")
    assert in_use.value.reason == "COLUMN_IN_USE"
    with pytest.raises(VectorlaneError) as bad:
        table.add_columns({"x": "repeat(title, 1000000)"})
    assert bad.value.reason == "FUNCTION_NOT_ALLOWED"
    with pytest.raises(ValueError):
        table.alter_columns({"path": "id", "rename": "k", "colour": "red"})


def test_the_async_client_has_them_too(services):
    async def scenario() -> None:
        async with await vectorlane.connect_async(f"grpc://{services.target}") as db:
            table = await db.create_table("items", schema=Items)
            await table.add(ROWS)
            result = await table.add_columns({"double": "id * 2"})
            assert result.version == await table.version()
            await table.alter_columns({"path": "double", "rename": "twice"})
            assert (await table.to_arrow()).sort_by("id").column("twice").to_pylist() == [0, 2, 4, 6, 8]
            await table.drop_columns(["twice"])
            assert "twice" not in (await table.schema()).names
    asyncio.run(scenario())
