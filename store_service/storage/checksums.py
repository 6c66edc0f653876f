"""Checksums of the files a commit adds to a Lance dataset, which Lance itself does not keep.

Lance serves a flipped byte silently (measured with pylance 13: `validate()` passes). So every data file,
deletion file and manifest vectorlane writes gets a line in `<table>.lance/_vectorlane/checksums.jsonl`
(path relative to the dataset, size, SHA-256), appended and fsynced before the commit that references the
file is acknowledged. The first time this process reads a file it is hashed and compared: a mismatch is
DATA_LOSS naming the table, and the other tables keep serving. A file with no line (written by LanceDB, or
by vectorlane before checksums) is served as Lance serves it: unverified.

The log is append-only; a torn last line (a crash mid-append, never acknowledged) is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path

from store_service.errors import DataLoss
from store_service.storage import durable

SIDECAR_DIR = "_vectorlane"  # vectorlane's own files inside a dataset; Lance and LanceDB ignore the folder
LOG_FILE = "checksums.jsonl"
_CHUNK = 1 << 22


def sha256_of(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


class ChecksumLog:
    """The checksums of one dataset's files, and which of them this process has verified."""

    def __init__(self, dataset_dir: Path, table: str) -> None:
        self.dataset_dir = dataset_dir
        self.table = table
        self.path = dataset_dir / SIDECAR_DIR / LOG_FILE
        self._known: dict[str, tuple[int, str]] | None = None
        self._verified: set[str] = set()
        self._lock = threading.Lock()

    def _load(self) -> dict[str, tuple[int, str]]:
        if self._known is None:
            known: dict[str, tuple[int, str]] = {}
            try:
                text = self.path.read_text()
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                try:
                    entry = json.loads(line)
                    known[str(entry["path"])] = (int(entry["bytes"]), str(entry["sha256"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line: its commit was never acknowledged
            self._known = known
        return self._known

    def hash(self, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
        """(size, SHA-256) of files relative to the dataset, as they are on disk now."""
        return {relative: sha256_of(self.dataset_dir / relative) for relative in paths}

    def append(self, entries: dict[str, tuple[int, str]]) -> None:
        """Appends lines for files a commit is about to reference, durably (before the commit)."""
        if not entries:
            return
        lines = [json.dumps({"path": p, "bytes": size, "sha256": digest}) for p, (size, digest) in entries.items()]
        with self._lock:
            self.path.parent.mkdir(exist_ok=True)
            with durable.storage_errors(self.path), open(self.path, "a") as f:
                f.write("\n".join(lines) + "\n")
                f.flush()
                os.fsync(f.fileno())
            self._load().update(entries)
            self._verified.update(entries)  # just hashed from what is on disk

    def record(self, paths: Iterable[str]) -> None:
        self.append(self.hash(paths))

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Rewrites the log with the lines of the files `keep` accepts (after a cleanup removed files)."""
        with self._lock:
            known = {path: entry for path, entry in self._load().items() if keep(path)}
            lines = [json.dumps({"path": p, "bytes": b, "sha256": d}) for p, (b, d) in known.items()]
            durable.publish(self.path, ("\n".join(lines) + "\n").encode() if lines else b"")
            self._known = known

    def knows(self, relative: str) -> bool:
        with self._lock:
            return relative in self._load()

    def is_verified(self, relative: str) -> bool:
        with self._lock:
            return relative in self._verified

    def verify(self, relative: str, reason: str = "FRAGMENT_CORRUPT") -> None:
        """Checks a file against its line the first time this process reads it (DATA_LOSS on a mismatch)."""
        with self._lock:
            if relative in self._verified:
                return
            expected = self._load().get(relative)
        if expected is not None:
            try:
                found = sha256_of(self.dataset_dir / relative)
            except FileNotFoundError:
                raise DataLoss(f"table {self.table!r}: file {relative} is missing", reason="FRAGMENT_MISSING",
                               table=self.table, file=relative) from None
            if found != expected:
                raise DataLoss(f"table {self.table!r}: file {relative} does not match its checksum; it is not "
                               "served", reason=reason, table=self.table, file=relative)
        with self._lock:
            self._verified.add(relative)
