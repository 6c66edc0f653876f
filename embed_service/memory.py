"""Keeping freed memory for the next request: a model's forward pass frees the same activation buffers
every call, and glibc's default is to give a thread arena's free top back to the system (madvise) and fault
it in again on the next call. A MiniLM-shaped cross-encoder scoring 50 pairs faulted in ~2,600 pages (10 MiB)
a call on its model thread; with the thresholds below, 28, and the service's rerank ran ~3 % faster
(alternating runs, these 2-core machines).

Blocks up to MMAP_THRESHOLD come from the arenas and stay there when freed, up to TRIM_THRESHOLD of free
space at an arena's top; larger ones (a big image batch) are still mapped and unmapped on their own. What
is kept is bounded by what the process once used at a time. An operator's own MALLOC_* variables or
GLIBC_TUNABLES for these two settings win: then nothing is changed.
"""

from __future__ import annotations

import os

from rpc_common.glibc import glibc

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 128 << 20

OPERATOR_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")


def keep_freed_memory() -> bool:
    """Sets the thresholds (once, at start, before models load); False where the process is not on glibc
    or the operator set them."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if any(name in os.environ for name in OPERATOR_SETTINGS) or "trim_threshold" in tunables \
            or "mmap_threshold" in tunables:
        return False
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
