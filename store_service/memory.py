"""Giving memory back after bulk work: what an ingest frees (gRPC message buffers, Arrow batches, Lance's
write buffers) otherwise stays with the allocators that freed it, and a store that ingested 200k rows held
2.35x their vectors with nothing to hold them for.

- glibc raises its mmap threshold to the size of the largest block freed (up to 32 MiB), after which a
  16 MiB AddRows message comes from an arena that keeps it when it is freed; a fixed threshold keeps such
  blocks mmapped, returned the moment they are freed (and fixes the trim threshold too).
- Arrow's pool (mimalloc) and glibc's arenas are asked to return what is free after a change that moved
  many rows, at most once per RELEASE_EVERY_S.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
import time

import pyarrow as pa

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers
MMAP_THRESHOLD_BYTES = 1 << 20
RELEASE_EVERY_S = 1.0

_libc = None
_last_release = 0.0
_pending: threading.Timer | None = None
_lock = threading.Lock()


def _glibc() -> ctypes.CDLL | None:
    global _libc
    if _libc is None:
        try:
            found = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            found.mallopt  # noqa: B018 - glibc has it; musl and others do not
            found.malloc_trim  # noqa: B018
            _libc = found
        except (OSError, AttributeError):
            return None
    return _libc


def configure() -> None:
    """Large blocks mmapped by glibc (called once, at the store's start)."""
    libc = _glibc()
    if libc is not None and not libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES):
        log.warning("mallopt(M_MMAP_THRESHOLD) refused: freed ingest buffers may stay with the allocator")


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
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)
