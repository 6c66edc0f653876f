"""Soak: writers and readers at once against both services (each its own process, MiniLM embedding the
texts) for `VECTORLANE_SOAK_SECONDS` (short in `make test`, 5 minutes in `make stress`): no errors, exact
final counts, every read sees whole adds only (a committed version), and memory stays flat."""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pyarrow as pa
import pytest

from tests.reliability.crash_trials import ServiceProcess, StoreProcess
from tests.store_service.conftest import function, json_rows
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.embed.v1 import embed_service_pb2_grpc as epb_grpc
from vectorlane.store.v1 import store_service_pb2 as pb

pytestmark = pytest.mark.slow
SECONDS = float(os.environ.get("VECTORLANE_SOAK_SECONDS", "20"))
BATCH = 10  # rows per add; ids come in whole batches, so a partly visible add shows as a short batch
LIVE_BATCHES = 40  # a writer deletes once it holds more: the table stays small, so growing memory is a leak
WORDS = "river stone cloud maple copper violet harbor lantern meadow ember falcon quartz".split()


@pytest.fixture(scope="module")
def services(tmp_path_factory) -> Iterator[tuple[ServiceProcess, StoreProcess]]:
    embed = ServiceProcess("embed_service", VECTORLANE_PRELOAD="sentence-transformers")
    store = StoreProcess(tmp_path_factory.mktemp("soak") / "data", embed.target)
    yield embed, store
    store.stop()
    embed.stop()


def sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(6))


@pytest.mark.timeout(SECONDS + 300)  # the run itself, plus start-up and the model load
def test_writers_and_readers_at_once_see_only_whole_adds_and_exact_counts(services):
    embed, store = services
    embed_stub = epb_grpc.EmbeddingServiceStub(embed.channel)
    store.stub.CreateTable(pb.CreateTableRequest(name="soak", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="text", type=pb.DATA_TYPE_STRING),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR)]),
        embedding_functions=[function("sentence-transformers", "text", "vector")]), timeout=120)
    errors: list[str] = []
    live: dict[int, set[int]] = {0: set(), 1: set()}  # writer -> batches it added and has not deleted
    stop = threading.Event()
    counts = {"adds": 0, "deletes": 0, "searches": 0, "reads": 0, "embeds": 0}
    lock = threading.Lock()

    def loop(name: str, body: Callable[[random.Random], None], seed: int) -> Callable[[], None]:
        def run() -> None:
            rng = random.Random(seed)
            while not stop.is_set():
                try:
                    body(rng)
                except (grpc.RpcError, AssertionError) as exc:
                    errors.append(f"{name}: {exc}")
                    return
        return run

    def writer(index: int) -> Callable[[random.Random], None]:
        next_batch = [index * 1_000_000]

        def body(rng: random.Random) -> None:
            mine = live[index]
            if len(mine) > LIVE_BATCHES or (mine and rng.random() < 0.2):
                batch = rng.choice(sorted(mine))
                start = batch * BATCH
                store.stub.DeleteRows(pb.DeleteRowsRequest(table="soak", where=f"id >= {start} AND id < "
                                                                              f"{start + BATCH}"), timeout=60)
                mine.discard(batch)
                with lock:
                    counts["deletes"] += 1
                return
            batch = next_batch[0]
            next_batch[0] += 1
            rows = [{"id": batch * BATCH + i, "text": sentence(rng)} for i in range(BATCH)]
            store.stub.AddRows(iter([pb.AddRowsRequest(table="soak", rows=json_rows(rows))]), timeout=60)
            mine.add(batch)
            with lock:
                counts["adds"] += 1
        return body

    def reader(rng: random.Random) -> None:
        if rng.random() < 0.5:
            found = store.stub.Search(pb.SearchRequest(table="soak", text=sentence(rng), limit=5), timeout=60)
            assert found.version >= 1
            key = "searches"
        else:
            reply = store.stub.ReadRows(pb.ReadRowsRequest(table="soak", select=["id"], limit=100_000,
                                                           format=pb.ROW_FORMAT_ARROW), timeout=60)
            ids = pa.ipc.open_stream(pa.py_buffer(reply.rows.arrow_ipc)).read_all().column("id").to_pylist()
            per_batch: dict[int, int] = {}
            for i in ids:
                per_batch[i // BATCH] = per_batch.get(i // BATCH, 0) + 1
            assert all(n == BATCH for n in per_batch.values()), f"a partly visible add at version {reply.version}"
            key = "reads"
        with lock:
            counts[key] += 1

    def embedder(rng: random.Random) -> None:
        reply = embed_stub.Embed(epb.EmbedRequest(function=epb.FunctionSpec(name="sentence-transformers"),
                                                  inputs=[epb.EmbedInput(text=sentence(rng))]), timeout=60)
        assert len(reply.embeddings[0].values) == 384
        with lock:
            counts["embeds"] += 1

    warm = store.stub.Search(pb.SearchRequest(table="soak", text="warm up", limit=1), timeout=120)
    assert warm is not None
    rss_start = {"store": store.rss_mib(), "embed": embed.rss_mib()}
    threads = [threading.Thread(target=loop(f"writer {i}", writer(i), i)) for i in (0, 1)]
    threads += [threading.Thread(target=loop(f"reader {i}", reader, 10 + i)) for i in (0, 1)]
    threads.append(threading.Thread(target=loop("embedder", embedder, 20)))
    for thread in threads:
        thread.start()
    samples = []
    for _ in range(10):
        time.sleep(SECONDS / 10)
        samples.append(round(store.rss_mib()))
    stop.set()
    for thread in threads:
        thread.join(120)
    rss_end = {"store": store.rss_mib(), "embed": embed.rss_mib()}
    print(f"\nsoak {SECONDS:.0f} s: {counts}; RSS MiB start {rss_start} end {rss_end}; store RSS over time {samples}")

    assert not errors, errors
    expected = BATCH * (len(live[0]) + len(live[1]))
    assert store.stub.CountRows(pb.CountRowsRequest(table="soak")).count == expected
    assert counts["adds"] > 0 and counts["reads"] > 0 and counts["searches"] > 0 and counts["embeds"] > 0
    # Flat: once warm (the first tenth of the run loads the model's and the table's working set), what the rest
    # of the run adds stays well under what the process already holds.
    warm_rss = samples[0]
    assert rss_end["store"] < warm_rss * 1.25 + 64, (warm_rss, rss_end["store"], samples)
    assert rss_end["embed"] < rss_start["embed"] * 1.25 + 64, (rss_start["embed"], rss_end["embed"])
