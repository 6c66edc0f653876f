"""Tables on object storage and store replicas, side by side in one run on ONE machine (2 cores here): the
numbers show what object storage and replicas cost, not how a cluster scales; the S3 server is moto, a
Python process on the same cores.

- ingest: rows/s through the Python client into a store on S3 and into one on a local disk (same batches);
- search QPS with 1, 2 and 3 store replicas on one S3 bucket against 1 store on the local disk, the same
  client processes spread round-robin over the replicas (what `dns:///` + round_robin does);
- visibility: from an add acknowledged by replica A to its rows found on replica B, with B's read-consistency
  interval 0 (checks on every read, as a connection may ask) and the object-storage default (2 s);
- cold start: a new replica on the bucket, from process start to health SERVING (every table's view built and
  its index loaded).

    .venv/bin/python -m benchmarks.scale --rows 1000000       # make bench-scale
    .venv/bin/python -m benchmarks.scale --rows 100000 --quick

Prints a table and writes scale.json to --out.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import DIMS, ROOT, Service, clustered
from benchmarks.serving import qps, store_ingest, store_stub

CLIENTS = 8
NPROBES = 16


def create_index(target: str, rows: int) -> float:
    from vectorlane_contract.store.v1 import store_service_pb2 as pb

    started = time.perf_counter()
    store_stub(target).CreateIndex(pb.CreateIndexRequest(table="t", index_type=pb.INDEX_TYPE_IVF_FLAT,
                                                         num_partitions=max(4, int(rows ** 0.5))), timeout=7200)
    return time.perf_counter() - started


def wait_serving(target: str, timeout: float = 3600) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))
    deadline = time.monotonic() + timeout
    while stub.Check(health_pb2.HealthCheckRequest()).status != health_pb2.HealthCheckResponse.SERVING:
        if time.monotonic() > deadline:
            raise RuntimeError("the replica never became ready")
        time.sleep(0.02)


def read_every_object(uri: str) -> tuple[float, int]:
    """Seconds to GET every object under `uri` once (one request each), and their bytes: what this S3 server
    takes to hand the table over, the floor under a cold start (which reads the vectors, hashes the data files
    against their checksums, and reads the index)."""
    from store_service.storage.location import ObjectFolder

    bucket, prefix = uri.removeprefix("s3://").split("/", 1)
    root = ObjectFolder(f"s3://{bucket}")
    import boto3

    client = boto3.client("s3")
    keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
            for item in page.get("Contents", []) if not item["Key"].endswith("/")]
    started = time.perf_counter()
    total = 0
    for key in keys:
        try:
            total += len(root.read(key))
        except FileNotFoundError:
            continue  # removed since the listing (a stray transaction Lance's cleanup took)
    return time.perf_counter() - started, total


def visibility_s(a: str, b: str, first_id: int, times: int = 10, interval: str | None = None) -> float:
    """Median seconds from an add acknowledged by `a` to its rows counted on `b` (reading with the
    read-consistency `interval` a connection may ask for, else b's own)."""
    import pyarrow as pa

    from benchmarks.serving import ipc_stream
    from vectorlane_contract.store.v1 import store_service_pb2 as pb

    a_stub, b_stub = store_stub(a), store_stub(b)
    rng = np.random.default_rng(5)
    found = []
    for i in range(times):
        start = first_id + 10 * i
        rows = pa.table({"id": np.arange(start, start + 10),
                         "vector": pa.FixedSizeListArray.from_arrays(
                             pa.array(rng.standard_normal(10 * DIMS, dtype=np.float32)), DIMS)})
        a_stub.AddRows(iter([pb.AddRowsRequest(table="t", rows=pb.Rows(arrow_ipc=ipc_stream(rows)))]))
        acknowledged = time.perf_counter()
        where = f"id >= {start} AND id < {start + 10}"
        metadata = (("vectorlane-read-consistency", interval),) if interval is not None else ()
        while b_stub.CountRows(pb.CountRowsRequest(table="t", where=where), metadata=metadata).count < 10:
            time.sleep(0.002)
        found.append(time.perf_counter() - acknowledged)
    return statistics.median(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="shorter QPS runs")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args()
    seconds = 3.0 if args.quick else 6.0
    vectors, queries = clustered(args.rows, 200)
    from tests.object_store import LocalS3, environment

    result: dict[str, Any] = {"rows": args.rows, "dims": DIMS, "clients": CLIENTS}
    with tempfile.TemporaryDirectory(prefix="vectorlane-scale-") as tmp, LocalS3() as s3:
        work = Path(tmp)
        queries_file = work / "queries.npy"
        np.save(queries_file, queries)
        env = s3.environment()
        uri = s3.uri(s3.bucket("scale"), uuid.uuid4().hex[:8])
        running: list[Service] = []

        def store(data_dir: str, **more: str) -> Service:
            service = Service.start("store_service", VECTORLANE_DATA_DIR=data_dir, VECTORLANE_EMBED_ADDRESS="",
                                    **env, **more)
            running.append(service)
            return service

        try:
            # ----- ingest, local disk and S3 ----------------------------------------------------------------
            local = store(str(work / "local"))
            result["ingest_local_rows_per_s"] = store_ingest(local.target, vectors)
            result["index_build_local_s"] = create_index(local.target, args.rows)
            first = store(uri)
            result["ingest_s3_rows_per_s"] = store_ingest(first.target, vectors)
            result["index_build_s3_s"] = create_index(first.target, args.rows)
            # ----- cold start of a replica on the bucket ----------------------------------------------------
            with environment(env):  # this process reads the bucket too
                result["read_once_s"], result["table_bytes"] = read_every_object(uri)
            started = time.perf_counter()
            second = store(uri)
            wait_serving(second.target)
            result["cold_start_s"] = time.perf_counter() - started
            third = store(uri)
            wait_serving(third.target)
            # ----- QPS --------------------------------------------------------------------------------------
            result["qps"] = {"local_1": qps([local.target], "search", CLIENTS, seconds, queries_file)}
            replicas = [first.target, second.target, third.target]
            for n in (1, 2, 3):
                result["qps"][f"s3_{n}"] = qps(replicas[:n], "search", CLIENTS, seconds, queries_file)
            # ----- visibility across replicas -----------------------------------------------------------------
            next_id = 10 * args.rows
            result["visible_after_s"] = {"interval_0": visibility_s(first.target, second.target, next_id,
                                                                    interval="0"),
                                         "interval_default": visibility_s(first.target, second.target,
                                                                          next_id + 1000, times=5)}
        finally:
            for service in running:
                service.stop()
    report(result)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(result, indent=2))


def report(r: dict[str, Any]) -> None:
    print(f"\nobject storage and replicas, {r['rows']:,} x {r['dims']}-d, one machine (moto as S3), one run")
    print(f"ingest: S3 {r['ingest_s3_rows_per_s']:.0f} rows/s vs local disk {r['ingest_local_rows_per_s']:.0f} "
          f"({r['ingest_s3_rows_per_s'] / r['ingest_local_rows_per_s']:.2f}x); IVF_FLAT build "
          f"{r['index_build_s3_s']:.1f} s vs {r['index_build_local_s']:.1f} s")
    local = r["qps"]["local_1"]
    for n in (1, 2, 3):
        q = r["qps"][f"s3_{n}"]
        print(f"search QPS, {r['clients']} client processes over {n} replica(s) on S3: {q:.0f} "
              f"({q / local:.2f}x one store on the local disk, {local:.0f})")
    v = r["visible_after_s"]
    print(f"an add on A found on B after: {v['interval_0'] * 1000:.0f} ms (B's interval 0), "
          f"{v['interval_default'] * 1000:.0f} ms (the default, 2 s)")
    print(f"cold start of a replica on the bucket (start to SERVING, views and index loaded): "
          f"{r['cold_start_s']:.1f} s; reading every object of the table once ({r['table_bytes'] / 2**20:.0f} MiB) "
          f"from this S3 server: {r['read_once_s']:.1f} s ({r['table_bytes'] / 2**20 / r['read_once_s']:.0f} MiB/s)")


if __name__ == "__main__":
    main()
