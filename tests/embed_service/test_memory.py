"""The embed service keeps freed memory for the next request (glibc thresholds set at start), unless the
operator set them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from rpc_common.glibc import glibc

pytestmark = pytest.mark.skipif(glibc() is None, reason="glibc's allocator only")

# A thread (as a model's own thread) allocating, writing and freeing the same 16 MiB 21 times: the page faults
# of the last 20 rounds, per round.
PROGRAM = """
import ctypes, json, resource, sys, threading
from embed_service import memory
applied = memory.keep_freed_memory() if sys.argv[1] == "apply" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
size, faults = 16 << 20, []
def rounds():
    for i in range(21):
        if i == 1:
            faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt)
        block = libc.malloc(size)
        libc.memset(block, 1, size)
        libc.free(block)
    faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt)
worker = threading.Thread(target=rounds)
worker.start()
worker.join()
print(json.dumps({"applied": applied, "faults_per_round": (faults[1] - faults[0]) / 20}))
"""


def run(mode: str, **env: str) -> dict:
    import os

    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], env={**os.environ, **env}, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_freed_blocks_are_reused_without_faulting_them_in_again() -> None:
    control = run("leave")
    kept = run("apply")
    assert kept["applied"] is True
    assert control["faults_per_round"] > 10, control  # glibc's default gives the block back every round
    assert kept["faults_per_round"] < 1, kept


@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "1048576"}, {"MALLOC_MMAP_THRESHOLD_": "131072"},
                                 {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=1048576"}])
def test_the_operators_own_settings_win(env: dict[str, str]) -> None:
    assert run("apply", **env)["applied"] is False
