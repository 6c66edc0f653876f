"""Durable file operations: data reaches the disk (fsync) before anything refers to it, and a file that is
published by name appears whole or not at all (write a temporary, fsync, rename, fsync the directory)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_new(path: Path, data: bytes | memoryview) -> None:
    """Writes a file that nothing refers to yet (a fragment under a fresh name) and makes it durable."""
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(path.parent)


def publish(path: Path, data: bytes) -> None:
    """Atomically puts `data` at `path`: readers see the old file, or no file, or all of `data`."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
