"""The store on Lance, measured against its own baselines in the same run (issue 19's goals):

- durable ingest through gRPC ÷ the write+fsync floor (the same Arrow bytes written and fsynced per batch),
  beside Lance alone made durable (`write_dataset` per batch, then fsync), the bound of any store on Lance;
- store RSS growth after searching ÷ (bytes of vectors + bytes of the index), after a restart;
- the first search after a 10-row add ÷ the steady p50, exact and through the index;
- process start → first approximate search (IVF_FLAT, and IVF_PQ with refine as LanceDB's default), beside
  LanceDB's open → first search, with recall@10 of both;
- disk bytes after 100 add/delete cycles and `optimize()` ÷ the live data's bytes.

    .venv/bin/python -m benchmarks.storage --rows 1000000      # make bench-storage
    .venv/bin/python -m benchmarks.storage --rows 100000 --quick

Prints a table and writes storage.json to --out. 384-d clustered vectors (benchmarks.common.clustered).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import DIMS, Service, clustered, rss_mib

BATCH = 10_000
SETTLE_S = 10.0  # after a start, before steady latencies and memory are measured


def table_of(vectors: np.ndarray, first: int) -> pa.Table:
    return pa.table({"id": pa.array(np.arange(first, first + len(vectors)), pa.int64()),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMS)})


def floor_rate(vectors: np.ndarray, work: Path) -> float:
    """Rows/s of writing each batch's Arrow bytes to a new file and fsyncing it (and its folder)."""
    folder = work / "floor"
    folder.mkdir()
    started = time.perf_counter()
    for start in range(0, len(vectors), BATCH):
        sink = pa.BufferOutputStream()
        part = table_of(vectors[start:start + BATCH], start)
        with pa.ipc.new_file(sink, part.schema) as writer:
            writer.write_table(part)
        with open(folder / f"{start}.arrow", "wb") as f:
            f.write(sink.getvalue())
            f.flush()
            os.fsync(f.fileno())
        fd = os.open(folder, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    return len(vectors) / (time.perf_counter() - started)


def lance_rate(vectors: np.ndarray, work: Path) -> float:
    """Rows/s of Lance alone made durable: each batch appended with `lance.write_dataset` (a data file and a
    manifest), then the files it added and their folders fsynced (what the store must do at least)."""
    import lance

    folder = work / "lance-alone.lance"
    seen: set[Path] = set()
    started = time.perf_counter()
    for start in range(0, len(vectors), BATCH):
        lance.write_dataset(table_of(vectors[start:start + BATCH], start), str(folder),
                            mode="append" if start else "create")
        for path in folder.rglob("*"):
            if path.is_file() and path not in seen:
                seen.add(path)
                fd = os.open(path, os.O_RDONLY)
                os.fsync(fd)
                os.close(fd)
        for sub in ("data", "_versions", "_transactions", ""):
            fd = os.open(folder / sub, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    return len(vectors) / (time.perf_counter() - started)


def start_store(data_dir: Path) -> tuple[Service, Any]:
    import vectorlane

    service = Service.start("store_service", VECTORLANE_DATA_DIR=str(data_dir), VECTORLANE_EMBED_ADDRESS="")
    return service, vectorlane.connect(service.target, timeout=7200)


def timed(call) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def search_p50(table: Any, queries: np.ndarray, **options: Any) -> float:
    times = [timed(lambda q=q: _search(table, q, **options)) for q in queries]
    return statistics.median(times)


def _search(table: Any, q: np.ndarray, **options: Any) -> list[int]:
    query = table.search(q).limit(10).select(["id"])
    for name, value in options.items():
        query = getattr(query, name)(value)
    return query.to_arrow().column("id").to_pylist()


def recall(table: Any, vectors: np.ndarray, queries: np.ndarray, **options: Any) -> float:
    norms = np.einsum("ij,ij->i", vectors, vectors)
    hits = 0
    for q in queries:
        truth = set(np.argpartition(norms - 2 * vectors @ q, 10)[:10].tolist())
        hits += len(truth & set(_search(table, q, **options)))
    return hits / (10 * len(queries))


def first_after_add(table: Any, queries: np.ndarray, rng: np.random.Generator, first_id: int, **options: Any
                    ) -> list[float]:
    """Seconds of the first search after each of 5 ten-row adds."""
    found = []
    for i in range(5):
        table.add(table_of(rng.standard_normal((10, DIMS), dtype=np.float32), first_id + 10 * i))
        found.append(timed(lambda i=i: _search(table, queries[i], **options)))
    return found


def disk_cycles(work: Path, cycles: int) -> dict[str, float]:
    """A 10k-row table, then `cycles` times: add 1,000 rows, delete the 1,000 oldest; then optimize."""
    import datetime

    service, db = start_store(work / "cycles")
    rng = np.random.default_rng(7)
    table = db.create_table("churn", data=table_of(rng.standard_normal((10_000, DIMS), dtype=np.float32), 0))
    next_id, oldest = 10_000, 0
    for _ in range(cycles):
        table.add(table_of(rng.standard_normal((1_000, DIMS), dtype=np.float32), next_id))
        next_id += 1_000
        table.delete(f"id < {oldest + 1_000}")
        oldest += 1_000
    folder = work / "cycles" / "churn.lance"
    before = _du(folder)
    table.optimize(cleanup_older_than=datetime.timedelta(0))
    after = _du(folder)
    live = table.count_rows() * (DIMS * 4 + 8)
    db.close()
    service.stop()
    return {"bytes_before_optimize": before, "bytes_after_optimize": after, "live_bytes": live,
            "ratio_before": before / live, "ratio_after": after / live}


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def lancedb_open_to_first_search(vectors: np.ndarray, queries: np.ndarray, work: Path, index: bool
                                 ) -> dict[str, float] | None:
    try:
        import lancedb
    except ImportError:
        return None
    db = lancedb.connect(str(work / "lancedb"))
    table = db.create_table("t", data=table_of(vectors[:BATCH], 0))
    for start in range(BATCH, len(vectors), BATCH):
        table.add(table_of(vectors[start:start + BATCH], start))
    result = {}
    if index:
        started = time.perf_counter()
        table.create_index(metric="l2", num_partitions=max(1, int(np.sqrt(len(vectors)))), num_sub_vectors=48,
                           vector_column_name="vector")
        result["index_build_s"] = time.perf_counter() - started
    started = time.perf_counter()
    again = lancedb.connect(str(work / "lancedb")).open_table("t")
    again.search(queries[0]).limit(10).nprobes(20).refine_factor(5).select(["id"]).to_arrow()
    result["open_to_first_search_s"] = time.perf_counter() - started  # in this process: imported, warm
    result["process_start_to_first_search_s"] = _fresh_process_first_search(work / "lancedb", queries, work)
    result["recall_at_10"] = recall(again, vectors, queries[10:40], nprobes=20, refine_factor=5)
    return result


def _fresh_process_first_search(folder: Path, queries: np.ndarray, work: Path) -> float:
    """LanceDB measured as the store is: a new Python process importing it, opening, searching once."""
    import subprocess
    import sys

    from benchmarks.large import LANCEDB_SCRIPT

    np.save(work / "queries.npy", queries[:2])
    command = [sys.executable, "-c", LANCEDB_SCRIPT, str(folder), str(work / "queries.npy"), str(time.time())]
    ran = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(ran.stdout.strip().splitlines()[-1])["start_to_first_search_s"]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.storage", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cycles", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=0, help="IVF_FLAT partitions (0: sqrt(rows))")
    parser.add_argument("--no-lancedb", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "vectorlane-bench-storage")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vl-storage-"))
    out: dict[str, Any] = {"rows": args.rows, "dims": DIMS}
    try:
        vectors, queries = clustered(args.rows, 60)
        out["floor_rows_per_s"] = floor_rate(vectors, work)
        out["lance_alone_rows_per_s"] = lance_rate(vectors, work)
        out["lance_alone_vs_floor"] = out["lance_alone_rows_per_s"] / out["floor_rows_per_s"]
        shutil.rmtree(work / "lance-alone.lance")

        service, db = start_store(work / "store")
        started = time.perf_counter()
        table = db.create_table("t", data=table_of(vectors[:BATCH], 0))
        for start in range(BATCH, args.rows, BATCH):
            table.add(table_of(vectors[start:start + BATCH], start))
        out["ingest_rows_per_s"] = args.rows / (time.perf_counter() - started)
        out["ingest_vs_floor"] = out["ingest_rows_per_s"] / out["floor_rows_per_s"]
        partitions = args.partitions or max(1, int(np.sqrt(args.rows)))
        started = time.perf_counter()
        table.create_index(index_type="IVF_FLAT", num_partitions=partitions)
        out["index_build_s"] = time.perf_counter() - started
        db.close()
        service.stop()
        index_bytes = sum(p.stat().st_size for p in (work / "store" / "t.lance" / "_vectorlane" / "indexes").iterdir())
        vector_bytes = args.rows * DIMS * 4

        # start -> first approximate search, then memory, then the steady and after-add latencies
        launched = time.perf_counter()
        service, db = start_store(work / "store")
        table = db.open_table("t")
        _search(table, queries[0], nprobes=20)
        out["start_to_first_approximate_s"] = time.perf_counter() - launched
        out["rss_index_at_first_search_mib"] = rss_mib(service.process.pid)
        time.sleep(SETTLE_S)  # what a start leaves running (the index's own copy, the checksum scrub) ends
        steady_index = search_p50(table, queries[10:40], nprobes=20)
        rss_index = rss_mib(service.process.pid)
        after_index = first_after_add(table, queries[40:], np.random.default_rng(1), args.rows, nprobes=20)
        out["index_steady_p50_ms"] = steady_index * 1e3
        out["index_first_after_add_ms"] = statistics.median(after_index) * 1e3
        out["index_first_after_add_vs_steady"] = statistics.median(after_index) / steady_index
        db.close()
        service.stop()

        service, db = start_store(work / "store")
        rss_start = rss_mib(service.process.pid)
        table = db.open_table("t")
        table.drop_index("vector_idx")
        _search(table, queries[0])
        steady = search_p50(table, queries[10:30])
        rss_exact = rss_mib(service.process.pid)
        after = first_after_add(table, queries[40:], np.random.default_rng(2), args.rows + 100)
        out["exact_steady_p50_ms"] = steady * 1e3
        out["exact_first_after_add_ms"] = statistics.median(after) * 1e3
        out["exact_first_after_add_vs_steady"] = statistics.median(after) / steady
        out["rss_start_mib"] = rss_start
        out["rss_growth_exact_vs_vectors"] = (rss_exact - rss_start) * 2**20 / vector_bytes
        out["rss_growth_index_vs_vectors_plus_index"] = (rss_index - rss_start) * 2**20 / (vector_bytes + index_bytes)
        out["vector_mib"] = vector_bytes / 2**20
        out["index_mib"] = index_bytes / 2**20
        db.close()
        service.stop()

        # IVF_PQ, as LanceDB builds by default: the vectors stay on disk, refine reads its candidates' rows
        service, db = start_store(work / "store")
        table = db.open_table("t")
        started = time.perf_counter()
        table.create_index(index_type="IVF_PQ", num_partitions=partitions, num_sub_vectors=48)
        out["ivf_pq_build_s"] = time.perf_counter() - started
        db.close()
        service.stop()
        launched = time.perf_counter()
        service, db = start_store(work / "store")
        rss_start = rss_mib(service.process.pid)
        table = db.open_table("t")
        pq = {"nprobes": 20, "refine_factor": 5}
        _search(table, queries[0], **pq)
        out["ivf_pq_start_to_first_approximate_s"] = time.perf_counter() - launched
        out["ivf_pq_steady_p50_ms"] = search_p50(table, queries[10:40], **pq) * 1e3
        out["ivf_pq_recall_at_10"] = recall(table, vectors, queries[10:40], **pq)
        folder = work / "store" / "t.lance" / "_vectorlane" / "indexes"
        newest = max(folder.iterdir(), key=lambda p: p.stat().st_mtime)
        pq_bytes = newest.stat().st_size  # the IVF_PQ index: the last file written there
        out["ivf_pq_rss_growth_mib"] = rss_mib(service.process.pid) - rss_start
        out["ivf_pq_index_mib"] = pq_bytes / 2**20
        db.close()
        service.stop()

        out["disk"] = disk_cycles(work, args.cycles)
        if not args.no_lancedb:
            out["lancedb"] = lancedb_open_to_first_search(vectors, queries, work, index=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "storage.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
