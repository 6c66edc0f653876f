"""Full-text and hybrid search, and model reranking, side by side in one run (the goals of the issue on
full-text, hybrid search and rerankers):

- N short texts (4 to 16 words drawn with a Zipf distribution from a fixed 5,000-word vocabulary) with a
  384-d vector each, in the store (added through the Python client) and in LanceDB 0.40 embedded, each with
  an FTS index of the texts built by its own system;
- FTS p50 and QPS (one client, back to back) over 200 queries of one to three words; hybrid p50 with RRF;
- a cross-encoder rerank of 50 candidates: the embed service's Rerank RPC against the same model run
  in-process (random weights in ms-marco-MiniLM-L-6's shape, 6 layers of 384, made here).

    .venv/bin/python -m benchmarks.text_search --rows 1000000      # make bench-text
    .venv/bin/python -m benchmarks.text_search --rows 100000 --quick

Prints the goals table and writes text_search.json to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import DIMS, ROOT, Service
from benchmarks.storage import BATCH

VOCABULARY = 5_000
QUERIES = 200
CANDIDATES = 50


def words(count: int) -> list[str]:
    """`count` distinct pronounceable words, the same in every run."""
    rng = np.random.default_rng(11)
    consonants, vowels = list("bcdfghjklmnprstvz"), list("aeiou")
    found: list[str] = []
    seen: set[str] = set()
    while len(found) < count:
        word = "".join(rng.choice(consonants) + rng.choice(vowels) for _ in range(int(rng.integers(2, 4))))
        if word not in seen:
            seen.add(word)
            found.append(word)
    return found


def corpus(rows: int, vocabulary: list[str]) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(5)
    ranks = np.minimum(rng.zipf(1.3, size=rows * 16), len(vocabulary)) - 1
    lengths = rng.integers(4, 17, size=rows)
    texts, at = [], 0
    for length in lengths.tolist():
        texts.append(" ".join(vocabulary[r] for r in ranks[at:at + length].tolist()))
        at += length
    vectors = rng.standard_normal((rows, DIMS), dtype=np.float32)
    return texts, vectors


def table_of(texts: list[str], vectors: np.ndarray, first: int) -> pa.Table:
    return pa.table({"id": pa.array(np.arange(first, first + len(texts)), pa.int64()), "text": pa.array(texts),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMS)})


def fill(table: Any, texts: list[str], vectors: np.ndarray) -> None:
    for start in range(BATCH, len(texts), BATCH):
        table.add(table_of(texts[start:start + BATCH], vectors[start:start + BATCH], start))


def p50_ms(run: Any, inputs: list[Any]) -> float:
    for item in inputs[:5]:
        run(item)
    times = []
    for item in inputs:
        started = time.perf_counter()
        run(item)
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def qps(run: Any, inputs: list[Any], seconds: float) -> float:
    """Calls per second, back to back, over at least `seconds` (divided by the time they took: the last call
    ends past `seconds`)."""
    count, started = 0, time.perf_counter()
    end = started + seconds
    while time.perf_counter() < end:
        run(inputs[count % len(inputs)])
        count += 1
    return count / (time.perf_counter() - started)


def measure_search(table: Any, queries: list[str], vectors: np.ndarray, seconds: float) -> dict[str, float]:
    def fts(q: str) -> Any:
        return table.search(q, query_type="fts").limit(10).select(["id"]).to_arrow()

    def hybrid(i: int) -> Any:
        return table.search(query_type="hybrid").vector(vectors[i]).text(queries[i]).limit(10).select(["id"]) \
            .to_arrow()

    return {"fts_p50_ms": p50_ms(fts, queries), "fts_qps": qps(fts, queries, seconds),
            "hybrid_p50_ms": p50_ms(hybrid, list(range(len(queries))))}


def rerank_rates(model: Path, query: str, documents: list[str], seconds: float) -> dict[str, Any]:
    """Reranks (of `documents`) per second, in-process and through the embed service's Rerank, measured in
    alternating rounds so that both see the same machine: RERANK_ROUNDS rounds of both, which one goes first
    alternating (on 2 cores, the first calls after a switch of process pay for the other's threads still
    spinning down); the ratio is the median of the rounds' ratios. (Measured one after the other, whichever
    ran first was up to a third faster on these shared machines, whatever it was.)"""
    import grpc
    from google.protobuf import struct_pb2

    from embed_service.torchvision_compat import ensure_torchvision_importable
    from vectorlane_contract.embed.v1 import embed_service_pb2 as epb
    from vectorlane_contract.embed.v1 import embed_service_pb2_grpc as epb_grpc

    ensure_torchvision_importable()
    from sentence_transformers import CrossEncoder

    local = CrossEncoder(str(model), device="cpu")
    pairs = [(query, d) for d in documents]

    def in_process(_: Any) -> Any:
        return local.predict(pairs, batch_size=32, show_progress_bar=False)

    service = Service.start("embed_service", VECTORLANE_MODEL_ROOTS=str(model.parent), VECTORLANE_PRELOAD="")
    try:
        stub = epb_grpc.EmbeddingServiceStub(grpc.insecure_channel(service.target))
        settings = struct_pb2.Struct()
        settings.update({"name": model.name, "device": "cpu"})
        request = epb.RerankRequest(function=epb.FunctionSpec(name="cross-encoder", settings=settings), query=query,
                                    documents=documents)
        for _ in range(3):  # the model loaded, and its first calls made, before the clock
            stub.Rerank(request, timeout=600)
            in_process(None)
        rounds = []
        modes = {"in_process_per_s": in_process, "service_per_s": lambda _: stub.Rerank(request)}
        for number in range(RERANK_ROUNDS):
            order = list(modes) if number % 2 == 0 else list(modes)[::-1]
            rounds.append({mode: qps(modes[mode], [0], seconds / RERANK_ROUNDS) for mode in order})
    finally:
        service.stop()
    return {"in_process_per_s": statistics.median(r["in_process_per_s"] for r in rounds),
            "service_per_s": statistics.median(r["service_per_s"] for r in rounds),
            "ratio": statistics.median(r["service_per_s"] / r["in_process_per_s"] for r in rounds), "rounds": rounds}


RERANK_ROUNDS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="shorter QPS and rerank runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 8.0
    vocabulary = words(VOCABULARY)
    texts, vectors = corpus(args.rows, vocabulary)
    rng = np.random.default_rng(9)
    queries = [" ".join(rng.choice(vocabulary[20:2000], size=int(rng.integers(1, 4)), replace=False))
               for _ in range(QUERIES)]
    query_vectors = rng.standard_normal((QUERIES, DIMS), dtype=np.float32)
    result: dict[str, Any] = {"rows": args.rows, "queries": QUERIES}
    with tempfile.TemporaryDirectory(prefix="vectorlane-text-") as tmp:
        work = Path(tmp)
        import lancedb

        from lancedb.index import FTS
        embedded = lancedb.connect(str(work / "lancedb")).create_table(
            "t", table_of(texts[:BATCH], vectors[:BATCH], 0))
        fill(embedded, texts, vectors)
        started = time.perf_counter()
        embedded.create_index("text", config=FTS())
        result["lancedb_fts_build_s"] = time.perf_counter() - started
        result["lancedb"] = measure_search(embedded, queries, query_vectors, seconds)

        import vectorlane

        service = Service.start("store_service", VECTORLANE_DATA_DIR=str(work / "store"),
                                VECTORLANE_EMBED_ADDRESS="")
        try:
            db = vectorlane.connect(f"grpc://{service.target}", timeout=7200)
            table = db.create_table("t", data=table_of(texts[:BATCH], vectors[:BATCH], 0))
            fill(table, texts, vectors)
            started = time.perf_counter()
            table.create_fts_index("text")
            result["store_fts_build_s"] = time.perf_counter() - started
            result["store"] = measure_search(table, queries, query_vectors, seconds)
            rerank_query = vocabulary[0]  # the most frequent word: the rerank always has its 50 candidates
            candidates = table.search(rerank_query, query_type="fts").limit(CANDIDATES).to_arrow()
            documents = candidates.column("text").to_pylist()
            db.close()
        finally:
            service.stop()
        from tests.tiny_models import tiny_cross_encoder

        model = tiny_cross_encoder(work / "models" / "minilm-shaped-cross-encoder", vocabulary[:2000], hidden=384,
                                   layers=6, heads=12)
        result["rerank"] = {"candidates": len(documents), **rerank_rates(model, rerank_query, documents, seconds * 3)}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "text_search.json").write_text(json.dumps(result, indent=2))
    report(result)


def report(r: dict[str, Any]) -> None:
    store, theirs, rerank = r["store"], r["lancedb"], r["rerank"]
    print(f"\nfull-text and hybrid search, {r['rows']:,} short texts with 384-d vectors, {r['queries']} queries, "
          "one run")
    print(f"FTS index build: store {r['store_fts_build_s']:.1f} s, LanceDB {r['lancedb_fts_build_s']:.1f} s")
    print(f"FTS p50: store {store['fts_p50_ms']:.2f} ms, LanceDB embedded {theirs['fts_p50_ms']:.2f} ms: "
          f"{store['fts_p50_ms'] / theirs['fts_p50_ms']:.2f}x (goal <= 1x)")
    print(f"FTS QPS (1 client): store {store['fts_qps']:.0f}, LanceDB embedded {theirs['fts_qps']:.0f}")
    print(f"hybrid (RRF) p50: store {store['hybrid_p50_ms']:.2f} ms, LanceDB embedded "
          f"{theirs['hybrid_p50_ms']:.2f} ms: {store['hybrid_p50_ms'] / theirs['hybrid_p50_ms']:.2f}x (goal <= 1x)")
    print(f"cross-encoder rerank of {rerank['candidates']} candidates, {len(rerank['rounds'])} alternating rounds: "
          f"embed service {rerank['service_per_s']:.1f}/s, in-process {rerank['in_process_per_s']:.1f}/s (medians): "
          f"{rerank['ratio']:.2f}x, the median of the rounds' ratios (goal >= 0.9x)")


if __name__ == "__main__":
    main()
