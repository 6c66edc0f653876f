"""A table bigger than the store could hold before: 10M × 384-d rows (15 GB of vectors on a 24 GB machine),
the store beside LanceDB 0.40 embedded on the same rows (issue 19's 10M-row section).

Measured, for each system: durable ingest rows/s (10,000-row adds), IVF_PQ build time (Lance's default
partition count, rows // 8192, and 48 sub-vectors for both), process start → first search, search p50 and
recall@10 with nprobes 20 and refine_factor 5 (as LanceDB's docs use) and 20, and the store's RSS while serving. Goals:
store RSS ≤ 4 GB, recall@10 ≥ 0.9, p50 ≤ 10 ms.

The vectors are never all in memory, here or in either system: they are generated batch by batch from a
seed, and the exact neighbours of the queries are kept as running top-10s while the batches go by.

    .venv/bin/python -m benchmarks.large --rows 10000000     # make bench-10m (about 75 minutes here)
    .venv/bin/python -m benchmarks.large --rows 200000       # a small run of the same steps
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DIMS, ROOT, rss_mib
from benchmarks.storage import BATCH, start_store, table_of

QUERIES = 40
SETTINGS = {"refine5": {"nprobes": 20, "refine_factor": 5}, "refine20": {"nprobes": 20, "refine_factor": 20},
            "nprobes10_refine20": {"nprobes": 10, "refine_factor": 20}}


class Rows:
    """The clustered rows of benchmarks.common.clustered (one centre per 100 rows, noise 0.35), generated
    batch by batch from `seed` so that every pass sees the same rows without holding them."""

    def __init__(self, rows: int, seed: int = 0) -> None:
        self.rows = rows
        self.seed = seed
        rng = np.random.default_rng(seed)
        self.centers = rng.standard_normal((max(16, rows // 100), DIMS), dtype=np.float32)
        picks = self.centers[rng.integers(0, len(self.centers), QUERIES)]
        self.queries = picks + 0.35 * rng.standard_normal((QUERIES, DIMS), dtype=np.float32)

    def batches(self) -> Iterator[tuple[int, np.ndarray]]:
        for start in range(0, self.rows, BATCH):
            rng = np.random.default_rng((self.seed, start))
            n = min(BATCH, self.rows - start)
            vectors = self.centers[rng.integers(0, len(self.centers), n)]
            vectors += 0.35 * rng.standard_normal((n, DIMS), dtype=np.float32)
            yield start, vectors


class TopK:
    """Running exact top-10 (squared L2) of each query over the batches seen."""

    def __init__(self, queries: np.ndarray, k: int = 10) -> None:
        self.queries, self.k = queries, k
        self.distances = np.full((len(queries), k), np.inf, dtype=np.float32)
        self.ids = np.full((len(queries), k), -1, dtype=np.int64)

    def see(self, first: int, vectors: np.ndarray) -> None:
        d = np.einsum("ij,ij->i", vectors, vectors)[None, :] - 2 * self.queries @ vectors.T
        d += np.einsum("ij,ij->i", self.queries, self.queries)[:, None]
        ids = np.arange(first, first + len(vectors))[None, :].repeat(len(self.queries), 0)
        both_d = np.concatenate([self.distances, d], axis=1)
        both_i = np.concatenate([self.ids, ids], axis=1)
        best = np.argpartition(both_d, self.k, axis=1)[:, :self.k]
        self.distances = np.take_along_axis(both_d, best, 1)
        self.ids = np.take_along_axis(both_i, best, 1)

    def truth(self) -> list[set[int]]:
        return [set(row.tolist()) for row in self.ids]


def searched(table: Any, queries: np.ndarray, truth: list[set[int]], options: dict[str, int]) -> dict[str, float]:
    """p50 over the queries after the first, and recall@10 over all of them (one pass)."""
    times, hits = [], 0
    for q, expected in zip(queries, truth):
        query = table.search(q).limit(10).select(["id"])
        for name, value in options.items():
            query = getattr(query, name)(value)
        started = time.perf_counter()
        found = query.to_arrow().column("id").to_pylist()
        times.append(time.perf_counter() - started)
        hits += len(expected & set(found))
    return {"p50_ms": statistics.median(times[1:]) * 1e3, "first_ms": times[0] * 1e3,
            "recall_at_10": hits / (10 * len(queries))}


def ingest(db: Any, data: Rows, top: TopK | None = None) -> tuple[Any, float]:
    """Table "t" created from the first batch and added to batch by batch: (table, seconds in the calls).
    `top` sees each batch as it goes by (the exact neighbours; not in the time)."""
    table, spent = None, 0.0
    for first, vectors in data.batches():
        if top is not None:
            top.see(first, vectors)
        batch = table_of(vectors, first)
        started = time.perf_counter()
        if table is None:
            table = db.create_table("t", data=batch)
        else:
            table.add(batch)
        spent += time.perf_counter() - started
    return table, spent


def store_side(data: Rows, work: Path, partitions: int, top: TopK, optimize: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    service, db = start_store(work / "store")
    began = time.perf_counter()
    table, spent = ingest(db, data, top)
    out["ingest_rows_per_s"] = data.rows / spent
    out["ingest_wall_s"] = time.perf_counter() - began
    if optimize:  # 1,000 fragments of 10k rows into Lance's 1M-row fragments: a take touches ≤ 10 of them
        started = time.perf_counter()
        table.optimize(cleanup_older_than=datetime.timedelta(0))
        out["optimize_s"] = time.perf_counter() - started
        out["rss_peak_after_optimize_mib"] = rss_mib(service.process.pid, "VmHWM")
    started = time.perf_counter()
    table.create_index(index_type="IVF_PQ", num_partitions=partitions, num_sub_vectors=48)
    out["ivf_pq_build_s"] = time.perf_counter() - started
    out["rss_after_build_mib"] = rss_mib(service.process.pid)
    out["rss_peak_mib"] = rss_mib(service.process.pid, "VmHWM")
    db.close()
    service.stop()

    launched = time.perf_counter()
    service, db = start_store(work / "store")
    table = db.open_table("t")
    table.search(data.queries[0]).limit(10).select(["id"]).nprobes(20).refine_factor(5).to_arrow()
    out["start_to_first_search_s"] = time.perf_counter() - launched
    out["warming"] = searched(table, data.queries, top.truth(), SETTINGS["refine5"])  # files checked meanwhile
    for label, options in SETTINGS.items():
        out[label] = searched(table, data.queries, top.truth(), options)
    out["rss_serving_mib"] = rss_mib(service.process.pid)
    out["rss_serving_peak_mib"] = rss_mib(service.process.pid, "VmHWM")
    folder = work / "store" / "t.lance"
    out["dataset_gib"] = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**30
    db.close()
    service.stop()
    out["floors"] = floors(folder, data.queries, partitions)
    return out


def floors(folder: Path, queries: np.ndarray, partitions: int) -> dict[str, float]:
    """What a refined search costs at least on this machine, in this process on the store's own files: the
    FAISS IVF_PQ scan alone (the index file read back), and Lance's take of the candidates' vectors alone."""
    import faiss
    import lance

    index_file = max((folder / "_vectorlane" / "indexes").iterdir(), key=lambda p: p.stat().st_size)
    index = faiss.read_index(str(index_file))
    faiss.extract_index_ivf(index).nprobe = 20
    dataset = lance.dataset(str(folder))
    rows = dataset.count_rows()
    rng = np.random.default_rng(3)
    found: dict[str, float] = {}
    for label, fetch in (("refine5", 50), ("refine20", 200)):
        scan, take = [], []
        for q in queries:
            started = time.perf_counter()
            _, ids = index.search(q.reshape(1, -1), fetch)
            scan.append(time.perf_counter() - started)
            chosen = sorted(rng.choice(rows, fetch, replace=False).tolist())  # as scattered as candidates are
            started = time.perf_counter()
            dataset._take_rows(chosen, columns=["vector"])
            take.append(time.perf_counter() - started)
        found[f"faiss_scan_{label}_p50_ms"] = statistics.median(scan) * 1e3
        found[f"lance_take_{label}_p50_ms"] = statistics.median(take) * 1e3
    return found


LANCEDB_SCRIPT = """
import json, sys, time
launched = float(sys.argv[3])  # the parent's wall clock when it started this process
import numpy as np
import lancedb
queries = np.load(sys.argv[2])
table = lancedb.connect(sys.argv[1]).open_table("t")
table.search(queries[0]).limit(10).nprobes(20).refine_factor(5).select(["id"]).to_arrow()
first = time.time() - launched
out = {"start_to_first_search_s": first}
settings = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {"refine5": {"nprobes": 20, "refine_factor": 5}}
for label, options in [("warming", settings["refine5"]), *settings.items()]:  # a first pass warms caches
    found, times = [], []
    for q in queries:
        started = time.perf_counter()
        found.append(table.search(q).limit(10).nprobes(options["nprobes"]).refine_factor(options["refine_factor"])
                     .select(["id"]).to_arrow().column("id").to_pylist())
        times.append(time.perf_counter() - started)
    out[label] = {"found": found, "times": times}
print(json.dumps(out))
"""


def lancedb_side(data: Rows, work: Path, partitions: int, truth: list[set[int]], optimize: bool
                 ) -> dict[str, Any] | None:
    try:
        import lancedb
    except ImportError:
        return None
    out: dict[str, Any] = {}
    db = lancedb.connect(str(work / "lancedb"))
    table, spent = ingest(db, data)
    out["ingest_rows_per_s"] = data.rows / spent  # LanceDB does not fsync: not durable (see the README)
    if optimize:
        started = time.perf_counter()
        table.optimize(cleanup_older_than=datetime.timedelta(0))
        out["optimize_s"] = time.perf_counter() - started
    started = time.perf_counter()
    from lancedb.index import IvfPq

    table.create_index("vector", config=IvfPq(distance_type="l2", num_partitions=partitions, num_sub_vectors=48))
    out["ivf_pq_build_s"] = time.perf_counter() - started
    del table, db
    queries = work / "queries.npy"
    np.save(queries, data.queries)
    command = [sys.executable, "-c", LANCEDB_SCRIPT, str(work / "lancedb"), str(queries), str(time.time()),
               json.dumps(SETTINGS)]
    ran = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True)
    result = json.loads(ran.stdout.strip().splitlines()[-1])
    out["start_to_first_search_s"] = result["start_to_first_search_s"]
    for label in ("warming", *SETTINGS):
        run = result[label]
        out[label] = {"p50_ms": statistics.median(run["times"][1:]) * 1e3,
                      "recall_at_10": sum(len(t & set(f)) for t, f in zip(truth, run["found"])) / (10 * len(truth))}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.large", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--no-lancedb", action="store_true")
    parser.add_argument("--optimize", action="store_true",
                        help="compact the store's table after the ingest (LanceDB's optimize), before the index")
    parser.add_argument("--work", type=Path, default=None, help="where the tables go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "vectorlane-bench-large")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vl-large-", dir=args.work))
    data = Rows(args.rows)
    partitions = max(1, min(4096, args.rows // 8192))  # Lance's default for IVF indexes
    out: dict[str, Any] = {"rows": args.rows, "dims": DIMS, "partitions": partitions, "sub_vectors": 48,
                           "settings": SETTINGS, "vector_gib": args.rows * DIMS * 4 / 2**30,
                           "machine_ram_gib": os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30}
    began = time.perf_counter()
    try:
        top = TopK(data.queries)
        out["store"] = store_side(data, work, partitions, top, args.optimize)
        print(json.dumps(out, indent=1), flush=True)
        shutil.rmtree(work / "store", ignore_errors=True)  # room on disk for LanceDB's copy
        if not args.no_lancedb:
            out["lancedb"] = lancedb_side(data, work, partitions, top.truth(), args.optimize)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out["wall_s"] = time.perf_counter() - began
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "large.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
