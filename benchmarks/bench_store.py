"""Store benchmark, one run on one machine, every ratio against a baseline measured in the same run:

- search, 384-d clustered vectors: FAISS in-process (the limit) vs the store through gRPC (a separate
  process, Arrow results) vs LanceDB embedded — p50/p99 at 1 client, QPS at 1 and 8 clients, recall@10
  against exact search; exact search and one approximate index each (FAISS/vectorlane HNSW, LanceDB IVF_PQ
  with refine);
- durable ingest of precomputed vectors: the store (Arrow IPC stream) vs LanceDB `add`.

    make bench      # or: .venv/bin/python benchmarks/bench_store.py --rows 100000 --queries 200

LanceDB comes from the optional `bench` dependency group (`make bench` installs it); without it those
columns are skipped.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import faiss
import grpc
import numpy as np
import pyarrow as pa

from store_service.cli import address_in_banner
from vectorlane import wire
from vectorlane.store.v1 import store_service_pb2 as pb
from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

DIMS, K = 384, 10


def clustered(rows: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(16, rows // 100), DIMS)).astype(np.float32)
    data = centers[rng.integers(0, len(centers), rows)] + 0.35 * rng.standard_normal((rows, DIMS)).astype(np.float32)
    q = centers[rng.integers(0, len(centers), queries)] + 0.35 * rng.standard_normal((queries, DIMS)).astype(
        np.float32)
    return data, q


def percentile_ms(samples: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, p))


def latency(run: Callable[[np.ndarray], list[int]], queries: np.ndarray) -> tuple[list[float], list[list[int]]]:
    times, results = [], []
    for q in queries:
        start = time.perf_counter()
        results.append(run(q))
        times.append(time.perf_counter() - start)
    return times, results


def qps(run: Callable[[np.ndarray], list[int]], queries: np.ndarray, clients: int, seconds: float = 3.0) -> float:
    stop = time.perf_counter() + seconds
    counts = [0] * clients

    def worker(i: int) -> None:
        j = i
        while time.perf_counter() < stop:
            run(queries[j % len(queries)])
            counts[i] += 1
            j += clients

    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(worker, range(clients)))
    return sum(counts) / seconds


def recall(found: list[list[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))


class StoreProcess:
    def __init__(self, data_dir: Path) -> None:
        env = {**os.environ, "VECTORLANE_PORT": "0", "VECTORLANE_METRICS_PORT": "-1", "VECTORLANE_LOG_LEVEL":
               "WARNING", "VECTORLANE_DATA_DIR": str(data_dir), "VECTORLANE_EMBED_ADDRESS": ""}
        self.process = subprocess.Popen([sys.executable, "-m", "store_service"], env=env, stdout=subprocess.PIPE,
                                        text=True)
        target = address_in_banner(self.process.stdout)
        if target is None:
            raise RuntimeError("the store did not start")
        threading.Thread(target=self.process.stdout.read, daemon=True).start()
        self.channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 256 << 20)])
        self.stub = pb_grpc.StorageServiceStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.process.terminate()
        self.process.wait(30)


def arrow_ipc(table: pa.Table) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def batches(data: np.ndarray, size: int) -> list[pa.Table]:
    out = []
    for start in range(0, len(data), size):
        chunk = data[start:start + size]
        out.append(pa.table({"id": pa.array(np.arange(start, start + len(chunk))),
                             "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), DIMS)}))
    return out


def drain_server() -> None:
    """A bare gRPC server in this process that takes AddRows streams and throws the bytes away: the transport
    floor of ingest (no decoding, no disk). Prints its port."""
    from concurrent import futures

    def drain(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
        return pb.AddRowsResponse(rows_added=sum(1 for _ in requests)).SerializeToString()

    server = grpc.server(futures.ThreadPoolExecutor(4), options=[("grpc.max_receive_message_length", 256 << 20)])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "vectorlane.store.v1.StorageService", {"AddRows": grpc.stream_unary_rpc_method_handler(drain)}),))
    print(server.add_insecure_port("127.0.0.1:0"), flush=True)
    server.start()
    server.wait_for_termination()


def transport_floor(parts: list[pa.Table], repeats: int) -> list[float]:
    """rows/s of the per-batch adds' bytes sent to `drain_server` in another process."""
    process = subprocess.Popen([sys.executable, __file__, "--drain-server"], stdout=subprocess.PIPE, text=True)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{int(process.stdout.readline())}")
        add_rows = channel.stream_unary("/vectorlane.store.v1.StorageService/AddRows")
        rows = sum(p.num_rows for p in parts)
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for part in parts:
                add_rows(iter([wire.encode(pb.AddRowsRequest(table="t"), "rows", arrow_ipc(part))]))
            samples.append(rows / (time.perf_counter() - start))
        channel.close()
        return samples
    finally:
        process.kill()
        process.wait()


def disk_floor(parts: list[pa.Table], directory: Path, repeats: int) -> list[float]:
    """rows/s of writing each batch's Arrow IPC bytes to a new file with fsync, in this process."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = sum(p.num_rows for p in parts)
    samples = []
    for r in range(repeats):
        start = time.perf_counter()
        for i, part in enumerate(parts):
            with open(directory / f"{r}-{i}.arrow", "wb") as f:
                f.write(arrow_ipc(part))
                f.flush()
                os.fsync(f.fileno())
        samples.append(rows / (time.perf_counter() - start))
    shutil.rmtree(directory)
    return samples


def spread(samples: list[float]) -> str:
    return f"{np.median(samples):9.0f} [{min(samples):.0f}-{max(samples):.0f}]"


def row(name: str, p50: float | None, p99: float | None, q1: float | None, q8: float | None, rec: float | None,
        base: tuple[float, float] | None = None) -> None:
    def f(v: float | None, fmt: str) -> str:
        return format(v, fmt) if v is not None else "-"

    extra = ""
    if base and p50 is not None and q1 is not None:
        extra = f"  p50 +{p50 - base[0]:.3f} ms over FAISS, QPS(1) {q1 / base[1]:.2f}x FAISS"
    print(f"  {name:<34} p50 {f(p50, '7.3f')} ms  p99 {f(p99, '7.3f')} ms  QPS@1 {f(q1, '8.0f')}  "
          f"QPS@8 {f(q8, '8.0f')}  recall@10 {f(rec, '.3f')}{extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--batch", type=int, default=10_000, help="rows per ingest batch")
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each QPS measurement")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each ingest measurement")
    parser.add_argument("--drain-server", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drain_server:
        return drain_server()
    try:
        import lancedb  # noqa: F401
        have_lancedb = True
    except ImportError:
        have_lancedb = False

    data, queries = clustered(args.rows, args.queries)
    print(f"# store benchmark: {args.rows} rows x {DIMS}-d clustered, {args.queries} queries, k={K}, "
          f"{os.cpu_count()} CPUs, FAISS {faiss.__version__}, lancedb {'present' if have_lancedb else 'absent'}")
    exact = faiss.IndexFlatL2(DIMS)
    exact.add(data)
    _, truth = exact.search(queries, K)
    work = Path(tempfile.mkdtemp(prefix="vl-bench-"))
    parts = batches(data, args.batch)
    try:
        # ----- ingest ---------------------------------------------------------------------------------
        print(f"\n## durable ingest of precomputed vectors (rows/s; median [min-max] of {args.repeats} runs, "
              f"the two systems alternating)")
        store = StoreProcess(work / "store")
        # what the client library sends: Arrow IPC put on the wire by vectorlane.wire (no protobuf copies)
        add_rows = store.channel.stream_unary("/vectorlane.store.v1.StorageService/AddRows",
                                              response_deserializer=pb.AddRowsResponse.FromString)

        def store_ingest(name: str, streamed: bool) -> float:
            store.stub.CreateTable(pb.CreateTableRequest(name=name, schema=pb.Schema(fields=[
                pb.Field(name="id", type=pb.DATA_TYPE_INT64),
                pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])))
            start = time.perf_counter()
            if streamed:  # one add, one version: batches staged while the next is received
                add_rows(wire.encode(pb.AddRowsRequest(table=name), "rows", arrow_ipc(part)) for part in parts)
            else:  # one add (one durable version) per batch, like LanceDB's add per batch
                for part in parts:
                    add_rows(iter([wire.encode(pb.AddRowsRequest(table=name), "rows", arrow_ipc(part))]))
            return args.rows / (time.perf_counter() - start)

        def lance_ingest(db: object, name: str, streamed: bool) -> float:
            table = db.create_table(name, schema=parts[0].schema)
            start = time.perf_counter()
            if streamed:
                table.add(pa.concat_tables(parts))
            else:
                for part in parts:
                    table.add(part)
            return args.rows / (time.perf_counter() - start)

        lance_db = None
        if have_lancedb:
            import lancedb
            lance_db = lancedb.connect(str(work / "lance"))
        for streamed, shape in ((False, f"one add per {args.batch} rows"), (True, "one add of all rows")):
            ours, theirs = [], []
            for r in range(args.repeats):
                name = "bench" if (r == 0 and not streamed) else f"ingest_{int(streamed)}_{r}"
                ours.append(store_ingest(name, streamed))
                if name != "bench":
                    store.stub.DropTable(pb.DropTableRequest(name=name))
                if lance_db is not None:
                    theirs.append(lance_ingest(lance_db, f"ingest_{int(streamed)}_{r}", streamed))
                    lance_db.drop_table(f"ingest_{int(streamed)}_{r}")
            print(f"  {shape}:")
            print(f"    vectorlane AddRows (Arrow IPC, fsync)  {spread(ours)} rows/s")
            if theirs:
                print(f"    LanceDB add                            {spread(theirs)} rows/s   "
                      f"vectorlane/LanceDB {np.median(ours) / np.median(theirs):.2f}x", flush=True)
        print(f"  (floor: the per-batch adds' bytes into a bare gRPC server that discards them, no decoding, no "
              f"disk: {spread(transport_floor(parts, args.repeats))} rows/s)")
        print(f"  (floor: the same bytes written to new files with fsync, in-process, no network: "
              f"{spread(disk_floor(parts, work / 'disk', args.repeats))} rows/s)")
        if lance_db is not None:
            lance_table = lance_db.create_table("bench", data=pa.concat_tables(parts))

        # ----- search ---------------------------------------------------------------------------------
        def store_search(**options: int) -> Callable[[np.ndarray], list[int]]:
            def run(q: np.ndarray) -> list[int]:
                reply = store.stub.Search(pb.SearchRequest(table="bench", vector=pb.Vector(values=q), limit=K,
                                                           select=["id"], format=pb.ROW_FORMAT_ARROW, **options))
                return pa.ipc.open_stream(pa.py_buffer(reply.rows.arrow_ipc)).read_all().column("id").to_pylist()
            return run

        def faiss_search(index: faiss.Index) -> Callable[[np.ndarray], list[int]]:
            return lambda q: index.search(q.reshape(1, -1), K)[1][0].tolist()

        def measure(name: str, run: Callable[[np.ndarray], list[int]], base: tuple[float, float] | None = None
                    ) -> tuple[float, float]:
            run(queries[0])  # warm (loads views and indexes)
            times, found = latency(run, queries)
            q1, q8 = qps(run, queries, 1, args.seconds), qps(run, queries, 8, args.seconds)
            p50 = percentile_ms(times, 50)
            row(name, p50, percentile_ms(times, 99), q1, q8, recall(found, truth), base)
            return p50, q1

        print("\n## search, exact (no index)")
        base = measure("FAISS in-process IndexFlatL2", faiss_search(exact))
        measure("vectorlane through gRPC", store_search(), base)
        if have_lancedb:
            def lance_search(**options: int) -> Callable[[np.ndarray], list[int]]:
                def run(q: np.ndarray) -> list[int]:
                    query = lance_table.search(q).limit(K).select(["id", "_distance"])
                    if options.get("nprobes"):
                        query = query.nprobes(options["nprobes"]).refine_factor(options.get("refine_factor", 1))
                    return query.to_arrow().column("id").to_pylist()
                return run
            measure("LanceDB embedded (brute force)", lance_search(), base)

        from grpc_health.v1 import health_pb2, health_pb2_grpc
        health = health_pb2_grpc.HealthStub(store.channel)
        floor = latency(lambda q: [health.Check(health_pb2.HealthCheckRequest())], queries)[0]
        print(f"  (floor: an empty gRPC unary call to the same process, grpc.health Check: p50 "
              f"{percentile_ms(floor, 50):.3f} ms, p99 {percentile_ms(floor, 99):.3f} ms)")

        print("\n## search, approximate")
        hnsw = faiss.IndexHNSWFlat(DIMS, 16)
        hnsw.hnsw.efConstruction = 100
        start = time.perf_counter()
        hnsw.add(data)
        faiss_build = time.perf_counter() - start
        hnsw.hnsw.efSearch = 64
        base = measure("FAISS in-process HNSW (M16, ef64)", faiss_search(hnsw))
        start = time.perf_counter()
        store.stub.CreateIndex(pb.CreateIndexRequest(table="bench", index_type=pb.INDEX_TYPE_HNSW, m=16,
                                                     ef_construction=100), timeout=3600)
        store_build = time.perf_counter() - start
        measure("vectorlane HNSW through gRPC (ef64)", store_search(ef=64), base)
        if have_lancedb:
            start = time.perf_counter()
            lance_table.create_index(metric="l2", num_partitions=max(1, int(np.sqrt(args.rows))),
                                     num_sub_vectors=48, vector_column_name="vector")
            lance_build = time.perf_counter() - start
            for nprobes, refine in ((20, 5), (50, 10)):
                measure(f"LanceDB IVF_PQ (nprobes {nprobes}, refine {refine})",
                        lance_search(nprobes=nprobes, refine_factor=refine), base)
            print(f"  index build: FAISS HNSW {faiss_build:.1f}s, vectorlane HNSW {store_build:.1f}s, "
                  f"LanceDB IVF_PQ {lance_build:.1f}s")
        else:
            print(f"  index build: FAISS HNSW {faiss_build:.1f}s, vectorlane HNSW {store_build:.1f}s")
        store.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
