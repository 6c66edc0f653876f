"""Search and durable ingest of 384-d vectors: each system measured in its own worker process on the same data,
with the floors that bound what a gRPC service can reach on this machine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import (DIMS, K, ROOT, clustered, latencies, percentile_ms, recall_at_k, reset_peak_rss,
                               rss_mib, summary, throughput)
from benchmarks.systems import SYSTEMS, Search, arrow_parts

CLIENTS = (1, 4, 16)
BATCH = 100  # queries per call in the batch-query measurement (an evaluation or deduplication pass)


def prepare(rows: int, queries: int, work: str) -> dict[str, Any]:
    """Writes the data, the queries and exact top-k (FAISS IndexFlatL2) for one size."""
    import faiss

    data, q = clustered(rows, queries, seed=rows)
    exact = faiss.IndexFlatL2(DIMS)
    exact.add(data)
    _, truth = exact.search(q, K)
    directory = Path(work)
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / "data.npy", data)
    np.save(directory / "queries.npy", q)
    np.save(directory / "truth.npy", truth)
    return {"rows": rows, "queries": queries}


def measure(run: Search, queries: np.ndarray, truth: np.ndarray, *, passes: int, repeats: int,
            seconds: float) -> dict[str, Any]:
    for q in queries[:3]:
        run(q)  # warm: views, indexes and caches load on first use
    p50, p99, found = [], [], None
    for _ in range(passes):
        times, results = latencies(run, queries)
        found = found or results
        p50.append(percentile_ms(times, 50))
        p99.append(percentile_ms(times, 99))
    qps = {str(c): summary([throughput(run, queries, c, seconds) for _ in range(repeats)]) for c in CLIENTS}
    return {"p50_ms": summary(p50), "p99_ms": summary(p99), "qps": qps, "recall": recall_at_k(found, truth)}


def run_system(system: str, work: str, batch: int, ingest_repeats: int, repeats: int, seconds: float,
               exact_queries: int) -> dict[str, Any]:
    """Everything measured for one system at one size, in this (fresh) process."""
    directory = Path(work)
    data = np.load(directory / "data.npy", mmap_mode="r")
    queries, truth = np.load(directory / "queries.npy"), np.load(directory / "truth.npy")
    parts = arrow_parts(data, batch)
    del data
    rows = sum(p.num_rows for p in parts)
    target = SYSTEMS[system](directory / system)
    result: dict[str, Any] = {"system": target.name, "rows": rows}
    table = "bench"
    try:
        if target.ingests:
            result["ingest"] = ingest(target, parts, ingest_repeats, keep=table)
        else:
            target.ingest(table, parts)
        del parts
        if target.exact_label:
            print(f"  {target.name}: exact search", flush=True)
            result["exact"] = {"label": target.exact_label, **measure(
                target.exact(table), queries[:exact_queries], truth[:exact_queries], passes=repeats,
                repeats=repeats, seconds=seconds)}
        if hasattr(target, "exact_batch"):
            print(f"  {target.name}: {BATCH} queries per call", flush=True)
            result["batch"] = batch_queries(target.exact(table), target.exact_batch(table), queries, repeats)
        if system == "vectorlane":
            result["empty_call"] = empty_call_floor(target, len(queries))
        print(f"  {target.name}: building {target.index_label}", flush=True)
        start = time.perf_counter()
        target.build_index(table, rows)
        result["index"] = {"label": target.index_label, "build_s": time.perf_counter() - start, "settings": []}
        for label, run in target.approximate(table, rows):
            print(f"  {target.name}: approximate search, {label}", flush=True)
            result["index"]["settings"].append({"label": label, **measure(
                run, queries, truth, passes=repeats, repeats=repeats, seconds=seconds)})
    finally:
        target.close()
    return result


def ingest(target: Any, parts: list[pa.Table], repeats: int, keep: str) -> dict[str, Any]:
    """rows/s of one durable add per batch, repeated into new tables; the last one is kept for searching.
    Peak memory is the growth of resident memory over the ingest, summed over the processes involved."""
    rows = sum(p.num_rows for p in parts)
    speeds, peaks = [], []
    for r in range(repeats):
        name = keep if r == repeats - 1 else f"ingest{r}"
        pids = ["self", *target.pids()]
        for pid in pids:
            reset_peak_rss(pid)
        before = [rss_mib(pid) for pid in pids]
        print(f"  {target.name}: ingest run {r + 1}/{repeats}", flush=True)
        start = time.perf_counter()
        target.ingest(name, parts)
        speeds.append(rows / (time.perf_counter() - start))
        peaks.append(sum(rss_mib(pid, "VmHWM") - b for pid, b in zip(pids, before)))
        if name != keep:
            target.drop(name)
    return {"rows_per_s": summary(speeds), "peak_mib": summary(peaks), "batch_rows": parts[0].num_rows}


def batch_queries(single: Search, many: Any, queries: np.ndarray, repeats: int) -> dict[str, Any]:
    """QPS of BATCH exact queries sent in one call against the same queries sent one call each, in the same
    process and run; and whether both give the same ids."""
    chosen = np.asarray(queries[:BATCH])
    single(chosen[0])
    many(chosen[:2])  # warm
    one_by_one, together, same = [], [], True
    for _ in range(repeats):
        start = time.perf_counter()
        singles = [single(q) for q in chosen]
        one_by_one.append(len(chosen) / (time.perf_counter() - start))
        start = time.perf_counter()
        grouped = many(chosen)
        together.append(len(chosen) / (time.perf_counter() - start))
        same = same and [sorted(g) for g in grouped] == [sorted(s) for s in singles]
    return {"queries": len(chosen), "single_qps": summary(one_by_one), "batch_qps": summary(together),
            "same_results": same}


def empty_call_floor(target: Any, calls: int) -> dict[str, Any]:
    """Latency of an empty unary call (grpc.health Check) to the same store process: the floor of any RPC."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(target.service.target) as channel:
        check = health_pb2_grpc.HealthStub(channel).Check
        check(health_pb2.HealthCheckRequest())
        times, _ = latencies(lambda _: check(health_pb2.HealthCheckRequest()), range(max(calls, 200)))
    return {"p50_ms": percentile_ms(times, 50), "p99_ms": percentile_ms(times, 99)}


# ----- ingest floors -----------------------------------------------------------------------------------------

def drain_server() -> None:
    """A bare gRPC server that takes AddRows streams and throws the bytes away; prints its port."""
    from concurrent import futures

    import grpc

    from vectorlane.store.v1 import store_service_pb2 as pb

    def drain(requests: Iterator[bytes], context: Any) -> bytes:
        return pb.AddRowsResponse(rows_added=sum(1 for _ in requests)).SerializeToString()

    server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.max_receive_message_length", 256 << 20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "vectorlane.store.v1.StorageService", {"AddRows": grpc.stream_unary_rpc_method_handler(drain)}),))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    server.wait_for_termination()


def ingest_floors(work: str, batch: int, repeats: int) -> dict[str, Any]:
    """What bounds a durable ingest through gRPC here: (a) the same per-batch messages sent to a server that
    discards them (transport alone); (b) the same Arrow IPC bytes written to new files with fsync (disk alone)."""
    import grpc

    from vectorlane import wire
    from vectorlane.rows import ipc
    from vectorlane.store.v1 import store_service_pb2 as pb

    directory = Path(work)
    parts = arrow_parts(np.load(directory / "data.npy", mmap_mode="r"), batch)
    payloads = [ipc(part) for part in parts]
    rows = sum(p.num_rows for p in parts)
    process = subprocess.Popen([sys.executable, "-c", "from benchmarks.vectors import drain_server; drain_server()"],
                               cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{int(process.stdout.readline())}")
        add_rows = channel.stream_unary("/vectorlane.store.v1.StorageService/AddRows")
        transport = []
        for _ in range(repeats):
            start = time.perf_counter()
            for payload in payloads:
                add_rows(iter([wire.encode(pb.AddRowsRequest(table="t"), "rows", payload)]))
            transport.append(rows / (time.perf_counter() - start))
        channel.close()
    finally:
        process.kill()
        process.wait()
    scratch = directory / "disk-floor"
    scratch.mkdir(exist_ok=True)
    disk = []
    for r in range(repeats):
        start = time.perf_counter()
        for i, payload in enumerate(payloads):
            with open(scratch / f"{r}-{i}.arrow", "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
        disk.append(rows / (time.perf_counter() - start))
    shutil.rmtree(scratch)
    return {"transport_rows_per_s": summary(transport), "disk_fsync_rows_per_s": summary(disk)}
