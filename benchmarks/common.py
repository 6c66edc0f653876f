"""What every benchmark suite shares: timing and statistics, the synthetic data, the machine's description,
service processes, and running a measurement in a fresh worker process so that no system shares a process
(threads, allocator, caches) with another."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DIMS, K = 384, 10


# ----- statistics --------------------------------------------------------------------------------------------

def summary(samples: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements: what every number in the report is."""
    values = [float(v) for v in samples]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "samples": values}


def percentile_ms(seconds: Sequence[float], p: float) -> float:
    return float(np.percentile(np.asarray(seconds) * 1000.0, p))


def rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def latencies(run: Callable[[Any], Any], inputs: Sequence[Any]) -> tuple[list[float], list[Any]]:
    """One call per input, one after the other: (seconds per call, results)."""
    times, results = [], []
    for item in inputs:
        start = time.perf_counter()
        results.append(run(item))
        times.append(time.perf_counter() - start)
    return times, results


def throughput(run: Callable[[Any], Any], inputs: Sequence[Any], clients: int, seconds: float) -> float:
    """Calls per second with `clients` threads each calling back to back for `seconds`."""
    barrier = threading.Barrier(clients + 1)
    counts = [0] * clients
    stop = [0.0]

    def client(index: int) -> None:
        barrier.wait()
        j = index
        while time.perf_counter() < stop[0]:
            run(inputs[j % len(inputs)])
            counts[index] += 1
            j += clients

    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        stop[0] = time.perf_counter() + seconds
        start = time.perf_counter()
        barrier.wait()
        for future in futures:
            future.result()
        elapsed = time.perf_counter() - start
    return sum(counts) / elapsed


def recall_at_k(found: Sequence[Sequence[int]], truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t.tolist())) / K for f, t in zip(found, truth)]))


# ----- data --------------------------------------------------------------------------------------------------

def clustered(rows: int, queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian clusters (one centre per 100 rows) in 384-d, and queries drawn from the same clusters: the shape
    of text embeddings, where neighbours exist and an approximate index has structure to find."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((max(16, rows // 100), DIMS), dtype=np.float32)
    data = np.empty((rows, DIMS), dtype=np.float32)
    for start in range(0, rows, 100_000):  # in slices: 1M rows stay at one copy of memory
        n = min(100_000, rows - start)
        data[start:start + n] = centers[rng.integers(0, len(centers), n)]
        data[start:start + n] += 0.35 * rng.standard_normal((n, DIMS), dtype=np.float32)
    picks = centers[rng.integers(0, len(centers), queries)]
    return data, picks + 0.35 * rng.standard_normal((queries, DIMS), dtype=np.float32)


WORDS = ("vector search embedding model table query image text dog cat sofa couch river mountain city quarterly "
         "earnings market music guitar kitchen recipe garden flower train station airport").split()


def sentences(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))) for _ in range(n)]


# ----- memory ------------------------------------------------------------------------------------------------

def reset_peak_rss(pid: int | str = "self") -> None:
    """Restarts the kernel's peak-RSS count (VmHWM) of a process."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def rss_mib(pid: int | str = "self", field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024.0
    return 0.0


# ----- the machine -------------------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    """What the numbers were measured on, for the top of the report."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_gib = int(Path("/proc/meminfo").read_text().split()[1]) / 1024 / 1024
    versions = {}
    for module in ("faiss", "grpc", "pyarrow", "numpy", "torch", "open_clip", "sentence_transformers", "lancedb",
                   "chromadb"):
        versions[module] = package_version(module)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"cpu": cpu, "cpus": os.cpu_count(), "memory_gib": round(memory_gib, 1), "gpu": gpu_name(),
            "os": f"{platform.system()} {platform.release()}", "python": platform.python_version(),
            "versions": versions, "commit": commit, "date": time.strftime("%Y-%m-%d %H:%M %Z")}


def package_version(module: str) -> str | None:
    from importlib import metadata

    names = {"faiss": "faiss-cpu", "grpc": "grpcio", "open_clip": "open_clip_torch",
             "sentence_transformers": "sentence-transformers"}
    for name in (names.get(module, module), module):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def gpu_name() -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None


# ----- processes ---------------------------------------------------------------------------------------------

def in_worker(function: str, result_file: Path, **kwargs: Any) -> Any:
    """Runs `module:function(**kwargs)` in a new Python process and returns what it returned (JSON)."""
    command = [sys.executable, "-m", "benchmarks.worker", function, json.dumps(kwargs), str(result_file)]
    subprocess.run(command, cwd=ROOT, check=True)
    return json.loads(result_file.read_text())


@dataclass
class Service:
    """A vectorlane service started as its console entry point would start it, on an ephemeral port."""
    process: subprocess.Popen
    target: str
    started: float

    @classmethod
    def start(cls, package: str, *flags: str, **env: str) -> Service:
        import importlib

        address_in_banner = importlib.import_module(f"{package}.cli").address_in_banner
        environment = {**os.environ, "VECTORLANE_PORT": "0", "VECTORLANE_METRICS_PORT": "-1",
                       "VECTORLANE_LOG_LEVEL": "WARNING", **env}
        started = time.perf_counter()
        process = subprocess.Popen([sys.executable, "-m", package, *flags], env=environment, cwd=ROOT,
                                   stdout=subprocess.PIPE, text=True)
        target = address_in_banner(process.stdout)
        if target is None:
            process.kill()
            raise RuntimeError(f"{package} did not start")
        threading.Thread(target=process.stdout.read, daemon=True).start()
        return cls(process, target, started)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
