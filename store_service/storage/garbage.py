"""Files no version references, collected when the store starts.

What a `kill -9` (or a power cut) can leave behind, all of it never acknowledged: fragments, deletion files
and index files staged or written for a commit that did not happen, a manifest's temporary file, and the
`.creating-*` / `.dropped-*` folders of a CreateTable or DropTable cut short (measured after 42 kills: 13
stray fragments, and 14-44 MB per such folder). Failure paths remove their own files as they go; this catches
what a crash kept them from removing.

It runs before the store serves and before re-embedding operations resume, while the store holds its data
directory's lock (`DataDirLock`), so no writer of this or another process can be staging a file it would
take for garbage. An operation's own work (`_operations/<id>/chunks`) is its record's to keep, not this.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from store_service.errors import DataLoss, ServiceError, StorageFailed
from store_service.storage import manifest
from store_service.storage.fragments import DATA_DIR, DELETIONS_DIR, INDEXES_DIR

log = logging.getLogger(__name__)

COLLECTED_DIRS = (DATA_DIR, DELETIONS_DIR, INDEXES_DIR)
LOCK_FILE = ".store.lock"


class DataDirLock:
    """An exclusive lock on a data directory for the life of one store process: a second store on the same
    directory refuses to start instead of racing the first one's files (the kernel drops the lock when the
    process dies, kill -9 included)."""

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        self._file = open(root / LOCK_FILE, "a+b")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            raise StorageFailed("another store process serves this data directory; one store per directory",
                                reason="DATA_DIR_IN_USE") from None

    def release(self) -> None:
        if not self._file.closed:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()


@dataclass
class Collected:
    files: int = 0
    folders: int = 0
    bytes: int = 0
    skipped_tables: list[str] = field(default_factory=list)


def collect(tables_dir: Path) -> Collected:
    """Removes what no version of any table references; a table whose manifests cannot be read is left
    alone (its files might be all that is left of it)."""
    found = Collected()
    for entry in sorted(tables_dir.iterdir()):
        if entry.name.startswith((".creating-", ".dropped-")) and entry.is_dir():
            found.bytes += _size(entry)
            shutil.rmtree(entry, ignore_errors=True)
            found.folders += 1
        elif not entry.name.startswith(".") and (entry / manifest.VERSIONS_DIR).is_dir():
            try:
                _collect_table(entry, found)
            except (ServiceError, OSError) as exc:
                found.skipped_tables.append(entry.name)
                log.warning("table %s: stray files not collected (%s)", entry.name, exc)
    if found.files or found.folders:
        log.info("collected %d stray file(s) and %d unfinished folder(s), %.1f MiB, no version referenced",
                 found.files, found.folders, found.bytes / 2 ** 20)
    return found


def referenced(table_dir: Path) -> set[str]:
    """Every file path (relative to the table) some version of the table lists."""
    paths: set[str] = set()
    for number in manifest.versions(table_dir):
        try:
            version = manifest.read(table_dir, number, table=table_dir.name)
        except DataLoss:
            if number == manifest.versions(table_dir)[-1]:
                continue  # a torn newest manifest (never acknowledged) references nothing
            raise
        paths.update(ref.path for ref in version.fragments)
        if version.deletions is not None:
            paths.add(version.deletions.path)
        paths.update(entry["file"]["path"] for entry in version.indexes)
    return paths


def _collect_table(table_dir: Path, found: Collected) -> None:
    keep = referenced(table_dir)
    for sub in COLLECTED_DIRS:
        folder = table_dir / sub
        if not folder.is_dir():
            continue
        for path in folder.iterdir():
            if path.is_file() and f"{sub}/{path.name}" not in keep:
                found.bytes += path.stat().st_size
                path.unlink()
                found.files += 1
    for path in (table_dir / manifest.VERSIONS_DIR).iterdir():  # a publish's temporary, never renamed
        if path.name.startswith(".") and path.name.endswith(".tmp"):
            path.unlink()
            found.files += 1


def _size(folder: Path) -> int:
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.path.getsize(os.path.join(base, name))
            except OSError:
                pass
    return total
