"""Filters and prefiltered search, the store beside LanceDB 0.40 embedded on the same rows (issue 19's goal:
prefiltered search at 10 % selectivity, recall@10 ≥ 0.95, p50 ≤ ½ of LanceDB's).

- filter evaluation (CountRows): a filter in the store's grammar (evaluated with Arrow over the fragments
  it holds) and one outside it (handed to Lance's SQL engine per fragment), first call and cached;
- prefiltered search at 10 % selectivity through the store's IVF_FLAT (FAISS with an id selector) and
  LanceDB's IVF_PQ with refine, p50 and recall@10 against the exact filtered neighbours.

    .venv/bin/python -m benchmarks.filters --rows 1000000     # make bench-filters
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import DIMS, clustered
from benchmarks.storage import BATCH, start_store, timed

BUCKETS = 10  # bucket = id % 10: each value selects 10 %


def rows_of(vectors: np.ndarray, first: int) -> pa.Table:
    ids = np.arange(first, first + len(vectors))
    return pa.table({"id": pa.array(ids, pa.int64()), "bucket": pa.array(ids % BUCKETS, pa.int64()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMS)})


def exact_filtered(vectors: np.ndarray, queries: np.ndarray, bucket: int, k: int = 10) -> list[set[int]]:
    ids = np.flatnonzero(np.arange(len(vectors)) % BUCKETS == bucket)
    chosen = vectors[ids]
    norms = np.einsum("ij,ij->i", chosen, chosen)
    truth = []
    for q in queries:
        distances = norms - 2 * chosen @ q
        truth.append(set(ids[np.argpartition(distances, k)[:k]].tolist()))
    return truth


def filtered_search(table: Any, queries: np.ndarray, where: str, truth: list[set[int]], **options: Any
                    ) -> dict[str, float]:
    times, hits = [], 0
    for q, expected in zip(queries, truth):
        query = table.search(q).where(where, prefilter=True).limit(10).select(["id"])
        for name, value in options.items():
            query = getattr(query, name)(value)
        started = time.perf_counter()
        found = query.to_arrow().column("id").to_pylist()
        times.append(time.perf_counter() - started)
        hits += len(expected & set(found))
    return {"p50_ms": statistics.median(times[1:]) * 1e3, "first_ms": times[0] * 1e3,
            "recall_at_10": hits / (10 * len(queries))}


def count_times(table: Any, where: str) -> dict[str, float]:
    first = timed(lambda: table.count_rows(where))
    again = statistics.median(timed(lambda: table.count_rows(where)) for _ in range(5))
    return {"first_ms": first * 1e3, "cached_ms": again * 1e3, "count": table.count_rows(where)}


def _at_recall(store: dict[str, Any], lance_side: dict[str, Any], floor: float) -> dict[str, Any]:
    """Each system's fastest setting whose recall@10 reaches `floor`, and the ratio of their p50s."""
    def fastest(side: dict[str, Any]) -> tuple[str, dict[str, float]] | None:
        runs = [(k, v) for k, v in side.items() if k.startswith("search_") and v["recall_at_10"] >= floor]
        return min(runs, key=lambda kv: kv[1]["p50_ms"]) if runs else None

    ours, theirs = fastest(store), fastest(lance_side)
    found: dict[str, Any] = {"store": ours, "lancedb": theirs}
    if ours and theirs:
        found["store_vs_lancedb_p50"] = ours[1]["p50_ms"] / theirs[1]["p50_ms"]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.filters", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--no-lancedb", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "vectorlane-bench-filters")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vl-filters-"))
    out: dict[str, Any] = {"rows": args.rows, "dims": DIMS, "selectivity": 1 / BUCKETS}
    try:
        vectors, queries = clustered(args.rows, args.queries)
        truth = exact_filtered(vectors, queries, bucket=3)
        partitions = max(1, int(np.sqrt(args.rows)))

        service, db = start_store(work / "store")
        table = db.create_table("t", data=rows_of(vectors[:BATCH], 0))
        for start in range(BATCH, args.rows, BATCH):
            table.add(rows_of(vectors[start:start + BATCH], start))
        table.create_index(index_type="IVF_FLAT", num_partitions=partitions)
        table.count_rows()  # the first read loads the fragments: not what is measured here
        store: dict[str, Any] = {
            "count_arrow": count_times(table, "bucket = 3"),
            "count_lance": count_times(table, "bucket % 10 = 3"),
        }
        for nprobes in (20, 40, 100):
            store[f"search_ivf_flat_nprobes{nprobes}"] = filtered_search(table, queries, "bucket = 3", truth,
                                                                         nprobes=nprobes)
        store["search_exact"] = filtered_search(table, queries[:20], "bucket = 3", truth[:20], nprobes=partitions)
        out["store"] = store
        db.close()
        service.stop()

        try:
            import lancedb
        except ImportError:
            lancedb = None
        if args.no_lancedb:
            lancedb = None
        if lancedb is not None:
            ldb = lancedb.connect(str(work / "lancedb"))
            other = ldb.create_table("t", data=rows_of(vectors[:BATCH], 0))
            for start in range(BATCH, args.rows, BATCH):
                other.add(rows_of(vectors[start:start + BATCH], start))
            started = time.perf_counter()
            other.create_index(metric="l2", num_partitions=partitions, num_sub_vectors=48,
                               vector_column_name="vector")
            lance_side: dict[str, Any] = {"index_build_s": time.perf_counter() - started,
                                          "count": count_times(other, "bucket = 3")}
            for nprobes, refine in ((20, 5), (40, 5), (40, 20), (100, 20)):  # up to a recall of 0.95 and past
                lance_side[f"search_ivf_pq_nprobes{nprobes}_refine{refine}"] = filtered_search(
                    other, queries, "bucket = 3", truth, nprobes=nprobes, refine_factor=refine)
            out["lancedb"] = lance_side
            out["at_recall_0.95"] = _at_recall(store, lance_side, 0.95)
            for nprobes in (20, 40):
                out[f"prefiltered_p50_store_vs_lancedb_nprobes{nprobes}"] = (
                    store[f"search_ivf_flat_nprobes{nprobes}"]["p50_ms"] /
                    lance_side[f"search_ivf_pq_nprobes{nprobes}_refine5"]["p50_ms"])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "filters.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
