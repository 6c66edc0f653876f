"""Durable file operations: data reaches the disk (fsync) before anything refers to it, and a file that is
published by name appears whole or not at all (write a temporary, fsync, rename, fsync the directory).

A write that fails (a full disk, an I/O error) leaves no partial file behind and raises StorageFull or
StorageFailed, which callers see as RESOURCE_EXHAUSTED / UNAVAILABLE instead of an internal error.
"""

from __future__ import annotations

import errno
import logging
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from store_service.errors import StorageFailed, StorageFull
from store_service.storage import lance_errors

log = logging.getLogger(__name__)


@contextmanager
def storage_errors(path: Path, shown: Callable[[str], str] | None = None) -> Iterator[None]:
    """Turns an OSError of a write at `path` into StorageFull / StorageFailed; the text a caller gets is
    Lance's or the system's without the data directory (`shown` scrubs what else must not be seen)."""
    try:
        yield
    except OSError as exc:
        if lance_errors.is_invalid_input(exc):
            raise  # the store's own bug, not the disk's: the error mapping answers INTERNAL and logs it
        where = f"{path.parent.name}/{path.name}"  # never the data directory's absolute path
        code = exc.errno if exc.errno is not None else lance_errors.errno_in(str(exc))
        if code in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(f"the store's disk is full: could not write {where}; nothing was committed",
                              file=where) from exc
        log.warning("could not write %s: %s", where, exc)  # the operator's log keeps what Lance said
        reason = os.strerror(code) if code else _shown(shown(str(exc)) if shown else str(exc), path)
        raise StorageFailed(f"the store could not write {where} ({reason}); nothing was committed",
                            file=where) from exc


def _shown(text: str, path: Path) -> str:
    """An error without an errno (Lance's text), short and without the data directory's absolute path."""
    if path.is_absolute():
        text = text.replace(str(path.parent.parent.parent), "<data_dir>")
    return lance_errors.without_location(text)[:200] or os.strerror(errno.EIO)


def fsync_dir(path: Path) -> None:
    with storage_errors(path):
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_file(path: Path) -> None:
    """Makes a file someone else wrote (Lance, which never fsyncs) durable."""
    with storage_errors(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _write(path: Path, data: bytes | memoryview) -> None:
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_new(path: Path, data: bytes | memoryview) -> None:
    """Writes a file that nothing refers to yet (a fragment under a fresh name) and makes it durable."""
    with storage_errors(path):
        try:
            _write(path, data)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)


def publish(path: Path, data: bytes) -> None:
    """Atomically puts `data` at `path`: readers see the old file, or no file, or all of `data`."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with storage_errors(path):
        try:
            _write(tmp, data)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(path.parent)
