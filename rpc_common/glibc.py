"""glibc's allocator controls (malloc_trim, mallopt), where the process runs on glibc: None elsewhere
(musl, macOS), and the callers then leave the allocator as it is."""

from __future__ import annotations

import ctypes
import ctypes.util

_libc: ctypes.CDLL | None = None
_looked = False


def glibc() -> ctypes.CDLL | None:
    global _libc, _looked
    if not _looked:
        _looked = True
        try:
            found = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            found.malloc_trim  # noqa: B018 - glibc has it; musl and others do not
            found.mallopt  # noqa: B018
            found.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            _libc = found
        except (OSError, AttributeError):
            _libc = None
    return _libc
