"""The client's embedding-function lifecycle: alter, add and drop with an Operation to wait on (a progress
bar when asked), sync and async, in LanceDB's style."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

import vectorlane
from tests.store_service.conftest import WordHash
from vectorlane.embeddings import get_registry
from vectorlane.operations import Operation, OperationFailed
from vectorlane.pydantic import LanceModel, Vector

TEXTS = [f"{c} {n} row {i}" for i, (c, n) in enumerate(
    (c, n) for c in ("red", "blue", "green", "amber") for n in ("apple", "sea", "car", "stone", "river"))]


def words_model(func):
    class Words(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(16) = func.VectorField()
    return Words


def test_alter_add_and_drop_a_function_from_the_client(db, capsys):
    table = db.create_table("words", schema=words_model(get_registry().get("word-hash").create(dims=16)))
    table.add([{"id": i, "text": t} for i, t in enumerate(TEXTS)])
    before = table.version
    wider = get_registry().get("word-hash").create(dims=24)
    operation = table.alter_embedding_function("vector", wider, progress=True)
    assert isinstance(operation, Operation) and operation.state == "SUCCEEDED"
    assert operation.rows_done == operation.rows_total == len(TEXTS)
    assert "rows" in capsys.readouterr().err  # the progress bar
    assert table.schema.field("vector").type.list_size == 24
    assert table.embedding_functions["vector"].function.settings()["dims"] == 24
    data = table.to_arrow().sort_by("id")
    np.testing.assert_allclose(np.asarray(data.column("vector").to_pylist(), dtype=np.float32),
                               WordHash(dims=24).embed_texts(data.column("text").to_pylist(), None), atol=1e-5)
    assert table.search("blue sea").limit(1).to_list()[0]["text"].startswith("blue sea")

    added = table.add_embedding_function("small", get_registry().get("word-hash").create(dims=8), "text", wait=True)
    assert added.state == "SUCCEEDED" and "small" in table.embedding_functions
    data = table.to_arrow().sort_by("id")
    np.testing.assert_allclose(np.asarray(data.column("small").to_pylist(), dtype=np.float32),
                               WordHash(dims=8).embed_texts(data.column("text").to_pylist(), None), atol=1e-5)
    assert len(table.search("green car", vector_column_name="small").limit(3).to_list()) == 3
    table.drop_embedding_function("small")
    assert "small" not in table.schema.names
    assert [o.state for o in table.list_operations()] == ["SUCCEEDED"] * 3
    assert db.get_operation(operation.name).result_version == before + 1
    table.restore(before)
    table.reload()
    assert table.schema.field("vector").type.list_size == 16


def test_a_refused_change_raises_before_any_work_and_a_failed_wait_raises(db):
    table = db.create_table("words", schema=words_model(get_registry().get("word-hash").create(dims=16)))
    with pytest.raises(vectorlane.VectorlaneError) as refused:
        table.add_embedding_function("vector", get_registry().get("word-hash").create(dims=8), "text")
    assert refused.value.reason == "COLUMN_EXISTS"
    table.add([{"id": 0, "text": "red apple"}])
    operation = table.alter_embedding_function("vector", get_registry().get("word-hash").create(dims=8))
    try:
        operation.cancel()
    except vectorlane.VectorlaneError:
        pytest.skip("the operation finished before the cancel")
    with pytest.raises(OperationFailed) as failed:
        operation.wait()
    assert failed.value.operation.state == "CANCELLED"


def test_the_async_client_alters_functions_too(services):
    async def scenario() -> None:
        async with await vectorlane.connect_async(f"grpc://{services.target}") as db:
            table = await db.create_table("words", schema=words_model(get_registry().get("word-hash").create(dims=16)))
            await table.add([{"id": i, "text": t} for i, t in enumerate(TEXTS)])
            operation = await table.alter_embedding_function("vector", get_registry().get("word-hash").create(dims=12))
            await operation.wait(timeout=60)
            assert operation.state == "SUCCEEDED"
            assert (await table.schema()).field("vector").type.list_size == 12
            assert len(await table.list_operations()) == 1
            hits = await table.search("amber stone").limit(1).to_list()
            assert hits[0]["text"].startswith("amber stone")

    asyncio.run(scenario())
