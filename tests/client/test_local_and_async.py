"""Local functions (registered in the client process) and the asyncio client, through the real services."""

from __future__ import annotations

import asyncio
import zlib
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pytest

import vectorlane
from tests.helpers import GRPCURL, grpcurl
from vectorlane.embeddings import TextEmbeddingFunction, get_registry, register
from vectorlane.errors import FailedPreconditionError, NotFoundError
from vectorlane.pydantic import LanceModel, Vector


class Letters(TextEmbeddingFunction):
    """A local function: counts of the letters a-h, normalized."""

    weight: float = 1.0
    batches: ClassVar[list[int]] = []  # sizes of the batches embedded in this process

    def ndims(self) -> int:
        return 8

    def generate_embeddings(self, texts: list[str]) -> np.ndarray:
        Letters.batches.append(len(texts))
        out = np.zeros((len(texts), 8), dtype=np.float32)
        for i, text in enumerate(texts):
            for ch in text:
                if "a" <= ch <= "h":
                    out[i, ord(ch) - ord("a")] += self.weight
            out[i] /= max(np.linalg.norm(out[i]), 1e-6)
        return out


@pytest.fixture
def letters():
    register("letters")(Letters)
    yield
    get_registry().unregister("letters")


def test_a_local_function_runs_in_the_client_and_the_table_records_it(db, services, letters):
    func = get_registry().get("letters").create(weight=2.0)

    class Words(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = db.create_table("letters", schema=Words)
    Letters.batches.clear()
    table.add([{"text": "aaaa"}, {"text": "hhhh"}, {"text": "abcd"}])
    assert Letters.batches == [3]  # one call for the batch, in this process
    stored = table.to_arrow().sort_by("text")
    np.testing.assert_allclose(stored.column("vector").to_pylist()[0], [1, 0, 0, 0, 0, 0, 0, 0], atol=1e-6)
    assert table.search("hah").limit(1).to_list()[0]["text"] == "hhhh"  # query embedded here too
    recorded = db.open_table("letters").embedding_functions["vector"]
    assert isinstance(recorded.function, Letters) and recorded.function.weight == 2.0

    # a client without the function: vectors must come with the rows, and text queries are refused
    get_registry().unregister("letters")
    other = vectorlane.connect(f"grpc://{services.target}")
    table2 = other.open_table("letters")
    assert not table2.embedding_functions["vector"].function.is_local
    with pytest.raises(FailedPreconditionError) as refused:
        table2.search("abc").to_list()
    assert refused.value.reason == "LOCAL_FUNCTION"
    assert table2.search([0, 0, 0, 0, 0, 0, 0, 1.0]).limit(1).to_list()[0]["text"] == "hhhh"
    other.close()
    if GRPCURL is not None:  # and from grpcurl: the same clear refusal
        done = grpcurl(services.target, "vectorlane.store.v1.StorageService/Search",
                       data={"table": "letters", "text": "abc"})
        assert done.returncode != 0 and "FailedPrecondition" in done.stderr and "LOCAL_FUNCTION" in done.stderr


def test_the_async_client_has_the_same_surface(services):
    func = get_registry().get("word-hash").create(dims=16)

    class Words(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(16) = func.VectorField()

    async def scenario() -> None:
        async with await vectorlane.connect_async(f"grpc://{services.target}") as db:
            table = await db.create_table("words", schema=Words)
            texts = ["red apple", "blue sea", "red car"]
            version = (await table.add([{"id": i, "text": t} for i, t in enumerate(texts)])).version
            assert version == await table.version()
            assert await db.table_names() == ["words"]
            assert await table.count_rows("text LIKE 'red%'") == 2
            hits = await table.search("blue").limit(1).to_list()
            assert hits[0]["text"] == "blue sea"
            frame = await table.search("red car").limit(2).to_pandas()
            assert list(frame["id"]) == [2, 0]
            # concurrent searches on one channel
            many = await asyncio.gather(*(table.search("apple").limit(1).to_list() for _ in range(8)))
            assert {m[0]["id"] for m in many} == {0}
            await table.delete("id = 0")
            assert await table.count_rows() == 2
            with pytest.raises(NotFoundError):
                await db.open_table("missing")
            await db.drop_table("words")
            assert await db.table_names() == []

    asyncio.run(scenario())


def test_large_adds_stream_in_batches_with_progress(db, capsys):
    func = get_registry().get("word-hash").create(dims=8)

    class Doc(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(8) = func.VectorField()

    table = db.create_table("big", schema=Doc)
    rows = 60_000
    vectors = np.random.default_rng(1).standard_normal((rows, 8)).astype(np.float32)
    texts = [f"t{zlib.crc32(bytes(i))}" for i in range(rows)]
    data = pa.table({"id": pa.array(np.arange(rows)), "text": pa.array(texts),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 8)})
    version = table.add(data).version
    assert table.count_rows() == rows
    assert [v.version for v in table.list_versions()] == [1, version] and version == 2  # one version for all
    assert "60000/60000" in capsys.readouterr().err  # the tqdm bar


def test_an_add_that_fails_in_the_client_midway_raises_that_error_and_changes_nothing(db, monkeypatch):
    """The rows are produced while they stream; a failure there (here: reading the third message's rows)
    surfaces as itself, not as a bare CANCELLED, and the add is atomic."""
    from vectorlane import _ops
    from vectorlane import rows as rowlib

    func = get_registry().get("word-hash").create(dims=8)

    class Doc(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(8) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    table.add([{"id": 0, "text": "first"}])
    monkeypatch.setattr(_ops, "ROWS_PER_MESSAGE", 2)
    real_ipc, seen = rowlib.ipc, []

    def failing_ipc(part):
        seen.append(part.num_rows)
        if len(seen) == 3:
            raise OSError("disk went away while reading rows")
        return real_ipc(part)

    monkeypatch.setattr(rowlib, "ipc", failing_ipc)
    with pytest.raises(OSError, match="disk went away"):
        table.add([{"id": i, "text": f"row {i}"} for i in range(1, 8)])
    assert table.count_rows() == 1 and [v.version for v in table.list_versions()] == [1, 2]


def test_create_table_with_more_data_than_one_message_holds(db, monkeypatch):
    from vectorlane import _ops

    monkeypatch.setattr(_ops, "ROW_BYTES_PER_MESSAGE", 2_000)  # ~40 rows per message
    func = get_registry().get("word-hash").create(dims=32)
    rows = [{"id": i, "text": f"word{i} shared"} for i in range(500)]
    table = db.create_table("many", data=rows, embedding_functions=[
        vectorlane.embeddings.EmbeddingFunctionConfig(func, "text", "vector")])
    assert table.count_rows() == 500 and table.schema.field("vector").type.list_size == 32
    assert table.search("word7 shared").limit(1).to_list()[0]["id"] == 7  # the same text: distance 0
    with pytest.raises(vectorlane.VectorlaneError):  # the rest fails to embed: no table is left behind
        db.create_table("poisoned", data=rows[:100] + [{"id": 999, "text": "poison"}], embedding_functions=[
            vectorlane.embeddings.EmbeddingFunctionConfig(func, "text", "vector")])
    assert "poisoned" not in db.table_names()
