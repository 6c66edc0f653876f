"""Changing a real model for another while the table is in use: a MiniLM column (384 dimensions) becomes an
open-clip text column (the tiny checkpoint, 128 dimensions) on a few thousand rows while another thread adds
rows and searches. No search fails, no version is half switched, every row ends with the new model's vector
and the rebuilt index agrees with exact search."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa

import vectorlane
from tests.helpers import spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as embed_pb
from vectorlane.embeddings import get_registry
from vectorlane.pydantic import LanceModel, Vector

ROWS = 3000
WORDS = "river stone cloud maple copper violet harbor lantern meadow ember falcon quartz dog cat".split()
QUERIES = ("river stone", "a copper lantern by the harbor", "falcon", "violet meadow cloud")


def sentences(start: int, count: int) -> list[str]:
    rng = np.random.default_rng(start)
    return [" ".join(rng.choice(WORDS, 4)) + f" number {i}" for i in range(start, start + count)]


def as_matrix(table: pa.Table, column: str = "vector") -> np.ndarray:
    return np.asarray(table.column(column).to_pylist(), dtype=np.float32)


class Traffic(threading.Thread):
    """Adds one row and runs one text search at a time until told to stop; records any failure."""

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.target, self.stop, self.failures = target, threading.Event(), []
        self.added: list[int] = []
        self.searches = 0

    def run(self) -> None:
        with vectorlane.connect(f"grpc://{self.target}", timeout=60) as db:
            table = db.open_table("docs")
            while not self.stop.is_set():
                row_id = 100_000 + len(self.added)
                try:
                    table.add([{"id": row_id, "text": sentences(row_id, 1)[0]}])
                    self.added.append(row_id)
                    hits = table.search(QUERIES[self.searches % len(QUERIES)]).limit(5).to_arrow()
                    dims = {len(v) for v in hits.column("vector").to_pylist()}
                    assert hits.num_rows == 5 and len(dims) == 1, (hits.num_rows, dims)
                    self.searches += 1
                except Exception as error:  # noqa: BLE001 - every failure is the test's finding
                    self.failures.append(repr(error))
                    return


def test_minilm_to_open_clip_while_rows_are_added_and_searched(start_embed, start_store, tiny_clip):
    embed = start_embed()
    services = start_store(embed)
    with vectorlane.connect(f"grpc://{services.target}", timeout=120) as db:
        minilm = get_registry().get("sentence-transformers").create(device="cpu")
        clip = get_registry().get("open-clip").create(**tiny_clip.settings())

        class Docs(LanceModel):
            id: int
            text: str = minilm.SourceField()
            vector: Vector(minilm.ndims()) = minilm.VectorField()

        table = db.create_table("docs", schema=Docs)
        for start in range(0, ROWS, 1000):
            table.add([{"id": i, "text": t} for i, t in zip(range(start, start + 1000), sentences(start, 1000))])
        table.create_index(index_type="IVF_FLAT", num_partitions=8)
        before = table.version

        traffic = Traffic(services.target)
        traffic.start()
        operation = table.alter_embedding_function("vector", clip, source_type="text")
        operation.wait(timeout=600)
        traffic.stop.set()
        traffic.join(60)
        assert operation.state == "SUCCEEDED" and operation.rows_done == operation.rows_total >= ROWS
        assert traffic.failures == [] and traffic.searches > 0 and traffic.added

        table.reload()
        assert table.schema.field("vector").type == pa.list_(pa.float32(), 128)
        assert (table.embedding_functions["vector"].function.function_name,
                table.embedding_functions["vector"].source_type) == ("open-clip", "text")
        # One version switches: every version before it holds MiniLM vectors only, every one after open-clip's.
        switch = operation.result_version
        for version in range(before, table.version + 1):
            table.checkout(version)
            dims = {len(v) for v in table.to_arrow().column("vector").to_pylist()}
            assert dims == ({384} if version < switch else {128}), (version, switch, dims)
        table.checkout_latest()

        # Every row, those added during the backfill included, holds the new model's vector for its text.
        data = table.to_arrow().sort_by("id")
        assert data.num_rows == ROWS + len(traffic.added)
        assert set(traffic.added) <= set(data.column("id").to_pylist())
        stored = as_matrix(data)
        fresh = np.concatenate([
            vectors(embed.stub.Embed(embed_pb.EmbedRequest(
                function=spec("open-clip", tiny_clip.settings()), inputs=texts(*chunk))))
            for chunk in np.array_split(data.column("text").to_pylist(), 8)])
        np.testing.assert_allclose(stored, fresh, atol=1e-4)

        # The index was rebuilt for 128 dimensions, and probing every partition gives exact search's answers.
        indexes = [(i.index_type, i.vector_column) for i in table.list_indices()]
        assert indexes == [("IVF_FLAT", "vector")]
        ids = np.asarray(data.column("id").to_pylist())
        for query in QUERIES:
            found = table.search(query).nprobes(8).limit(10).select(["id"]).to_arrow().column("id").to_pylist()
            q = vectors(embed.stub.Embed(embed_pb.EmbedRequest(
                function=spec("open-clip", tiny_clip.settings()), inputs=texts(query))))[0]
            truth = ids[np.argsort(((stored - q) ** 2).sum(1), kind="stable")[:10]]
            assert found == truth.tolist(), query

        # Restoring the version before the switch brings MiniLM and its vectors back.
        table.restore(switch - 1)
        table.reload()
        assert table.embedding_functions["vector"].function.function_name == "sentence-transformers"
        assert {len(v) for v in table.to_arrow().column("vector").to_pylist()} == {384}
