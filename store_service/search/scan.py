"""Exact distance scans, sized for a server that answers many queries at once.

A scan is a matrix-vector product over every stored vector. BLAS would split each product over all cores by
itself, which is fastest for one query alone but collapses when concurrent queries each ask for every core
(measured with 16 clients on 2 cores: 425 queries/s with one BLAS thread, 49 with two). So BLAS runs on one
thread per call, and a big scan is cut into chunks that a pool with one worker per core computes: an idle
store gives one query every core; a busy one queues chunks instead of oversubscribing the CPUs.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np

T = TypeVar("T")
R = TypeVar("R")
PARALLEL_MIN_ROWS = 16_384  # below this the rows sit in cache and splitting costs more than it saves
_workers = max(1, os.cpu_count() or 1)
_pool = ThreadPoolExecutor(_workers, thread_name_prefix="scan")
_blas_limit: object = None


def use_single_threaded_blas() -> None:
    """Limits BLAS (numpy's OpenBLAS) to one thread per call in this process; parallelism comes from `_pool`."""
    global _blas_limit
    if _blas_limit is None:
        from threadpoolctl import threadpool_limits

        _blas_limit = threadpool_limits(1, user_api="blas")


def distances(vectors: np.ndarray, norms: np.ndarray | None, q: np.ndarray, metric: str) -> np.ndarray:
    """Distance from `q` to each row of `vectors` (prepared for `metric`; `norms` are squared L2 norms)."""
    n = len(vectors)
    if n < PARALLEL_MIN_ROWS or _workers == 1:
        return _chunk(vectors, norms, q, metric)
    bounds = np.linspace(0, n, _workers + 1, dtype=np.int64)
    parts = [_pool.submit(_chunk, vectors[a:b], None if norms is None else norms[a:b], q, metric)
             for a, b in zip(bounds[:-1], bounds[1:])]
    return np.concatenate([part.result() for part in parts])


def workers() -> int:
    return _workers


def run_all(work: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`work` over every item, on the pool when there is more than one (never nested: `work` must not
    submit to the pool itself)."""
    if len(items) <= 1 or _workers == 1:
        return [work(item) for item in items]
    return list(_pool.map(work, items))


def chunk(vectors: np.ndarray, norms: np.ndarray | None, q: np.ndarray, metric: str) -> np.ndarray:
    """Distances over one slice, on the calling thread."""
    return _chunk(vectors, norms, q, metric)


def _chunk(vectors: np.ndarray, norms: np.ndarray | None, q: np.ndarray, metric: str) -> np.ndarray:
    dots = vectors @ q
    if metric == "l2":
        assert norms is not None
        return np.maximum(norms - 2.0 * dots + float(q @ q), 0.0).astype(np.float32)
    if metric == "cosine":
        return (1.0 - dots).astype(np.float32)
    return (-dots).astype(np.float32)
