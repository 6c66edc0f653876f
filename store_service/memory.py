"""Giving memory back after bulk work: what an ingest frees (gRPC message buffers, Arrow batches, Lance's
write buffers) otherwise stays with the allocators that freed it, and a store that ingested 200k rows held
2.35x their vectors with nothing to hold them for.

After a change that moved many rows (and after an index build), Arrow's pool (mimalloc) and glibc's arenas
are asked to return what is free, at most once per RELEASE_EVERY_S (and once more when a burst ends).
glibc's mmap threshold is left dynamic: fixing it (so that large blocks are always mmapped) returned the
same memory at once but made every Lance write fault its buffers in again, 2-4x slower (measured: a
10,000-row write_fragments took 27-66 ms instead of 14 ms).
"""

from __future__ import annotations

import threading
import time

import pyarrow as pa

from rpc_common.glibc import glibc


RELEASE_EVERY_S = 1.0

_last_release = 0.0
_pending: threading.Timer | None = None
_lock = threading.Lock()


def release_unused(force: bool = False) -> None:
    """Returns the free memory of Arrow's pool and glibc's arenas to the system: now, or (asked again within
    RELEASE_EVERY_S of the last time) once that time is up, so that the end of a burst of adds is released."""
    global _last_release, _pending
    with _lock:
        wait = _last_release + RELEASE_EVERY_S - time.monotonic()
        if wait > 0 and not force:
            if _pending is None:
                _pending = threading.Timer(wait, _release_later)
                _pending.daemon = True
                _pending.start()
            return
        _last_release = time.monotonic()
    _release()


def _release_later() -> None:
    global _last_release, _pending
    with _lock:
        _pending = None
        _last_release = time.monotonic()
    _release()


def _release() -> None:
    pa.default_memory_pool().release_unused()
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)
