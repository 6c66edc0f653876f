"""What the store puts right when it starts, before it serves: torn manifests rolled back, files no version
references collected. Runs while the store holds its data directory's lock (`DataDirLock`), so no writer of
this or another store process can be staging a file it would take for garbage.

- **Torn manifests.** Lance does not fsync, so a power cut right after a commit can leave a newest manifest
  that is empty or partial, and then the dataset does not open at all (measured with pylance 13). The store
  fsyncs a manifest and records its checksum before acknowledging the change, so an unreadable newest
  manifest with no checksum line was never acknowledged: it is moved aside (`_vectorlane/torn/`) and the
  table opens at its last good version. One the log does know was acknowledged and is now damaged: that is
  reported (DATA_LOSS on every read of the table), never rolled back silently.
- **Strays.** Fragments, deletion files and transactions written for a commit that did not happen, index
  files of an index build cut short, and the `.creating-*` / `.dropped-*` folders of a CreateTable or
  DropTable cut short. vectorlane removes data, deletion and index files no version references (reading
  older versions only for files the newest does not reference); Lance's cleanup, keeping every version,
  removes stray transactions when there are any.
"""

from __future__ import annotations

import datetime
import fcntl
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import lance

from store_service.errors import StorageFailed
from store_service.storage import durable, manifest
from store_service.storage.checksums import SIDECAR_DIR, ChecksumLog
from store_service.storage.fragments import INDEXES_DIR
from store_service.storage.table import SUFFIX

log = logging.getLogger(__name__)

LOCK_FILE = ".store.lock"
TORN_DIR = f"{SIDECAR_DIR}/torn"
_KEEP_EVERY_VERSION = datetime.timedelta(days=365 * 100)


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
class Recovered:
    files: int = 0
    folders: int = 0
    bytes: int = 0
    rolled_back: list[tuple[str, int]] = field(default_factory=list)  # (table, torn version moved aside)
    damaged: list[str] = field(default_factory=list)  # tables whose acknowledged newest manifest is damaged
    skipped_tables: list[str] = field(default_factory=list)


def recover(root: Path) -> Recovered:
    found = Recovered()
    for entry in sorted(root.iterdir()):
        if entry.name.startswith((".creating-", ".dropped-")) and entry.is_dir():
            found.bytes += _size(entry)
            shutil.rmtree(entry, ignore_errors=True)
            found.folders += 1
        elif entry.name.endswith(SUFFIX) and not entry.name.startswith(".") and \
                (entry / manifest.VERSIONS_DIR).is_dir():
            name = entry.name[: -len(SUFFIX)]
            try:
                if roll_back_torn(entry, name, found):
                    collect(entry, found)
            except (OSError, ValueError) as exc:
                found.skipped_tables.append(name)
                log.warning("table %s: not recovered (%s)", name, str(exc)[:300])
    if found.files or found.folders:
        log.info("collected %d stray file(s) and %d unfinished folder(s), %.1f MiB, no version referenced",
                 found.files, found.folders, found.bytes / 2 ** 20)
    return found


def roll_back_torn(dataset_dir: Path, name: str, found: Recovered) -> bool:
    """Moves unreadable, never-acknowledged newest manifests aside; False when the table stays damaged."""
    checksums = ChecksumLog(dataset_dir, name)
    files = manifest.version_files(dataset_dir)
    while files:
        newest = max(files)
        try:
            lance.dataset(str(dataset_dir), version=newest)
            return True
        except (ValueError, OSError):
            path = files.pop(newest)
            relative = str(path.relative_to(dataset_dir))
            if checksums.knows(relative):
                log.error("table %s: version %d was acknowledged and its manifest is now damaged; the table is "
                          "not served until it is repaired", name, newest)
                found.damaged.append(name)
                return False
            aside = dataset_dir / TORN_DIR
            aside.mkdir(parents=True, exist_ok=True)
            os.replace(path, aside / path.name)
            (dataset_dir / manifest.VERSIONS_DIR / "latest_version_hint.json").unlink(missing_ok=True)
            durable.fsync_dir(dataset_dir / manifest.VERSIONS_DIR)
            found.rolled_back.append((name, newest))
            log.warning("table %s: rolled back torn version %d (never acknowledged); serving version %s", name,
                        newest, max(files) if files else "none")
    return bool(files)


LANCE_FOLDERS = (manifest.DATA_DIR, manifest.DELETIONS_DIR, manifest.VERSIONS_DIR, manifest.TRANSACTIONS_DIR)


def collect(dataset_dir: Path, found: Recovered) -> None:
    """Removes the files no version references. At a start after a clean stop this reads one version: the
    files the newest version does not reference are the only candidates, and older versions are read, newest
    first, only until each candidate is found (a 10M-row table of 1,000 versions took 38 s when every
    version was read at every start)."""
    for folder in LANCE_FOLDERS:  # a write cut short leaves its temporary (`.tmpXXXX`); Lance names none so
        if (dataset_dir / folder).is_dir():
            for path in (dataset_dir / folder).iterdir():
                if path.name.startswith(".") and path.is_file():
                    found.bytes += path.stat().st_size
                    path.unlink()
                    found.files += 1
    dataset = lance.dataset(str(dataset_dir))
    candidates = _files_in(dataset_dir) - _referenced_by(dataset)
    for number in sorted(manifest.versions(dataset_dir), reverse=True):
        if not candidates:
            break
        if number == dataset.version:
            continue
        try:
            candidates -= _referenced_by(dataset.checkout_version(number))
        except (ValueError, OSError):
            continue  # a version cleaned up or damaged references nothing the store could serve
    for relative in sorted(candidates):
        path = dataset_dir / relative
        found.bytes += path.stat().st_size
        path.unlink()
        found.files += 1
    # A commit that did not happen also leaves its transaction file, which Lance's cleanup (keeping every
    # version) removes; it reads every manifest, so it runs only when there are more transactions than
    # versions, or when strays were found above.
    transactions = dataset_dir / manifest.TRANSACTIONS_DIR
    count = sum(1 for _ in transactions.iterdir()) if transactions.is_dir() else 0
    if candidates or count > len(manifest.versions(dataset_dir)):
        stats = dataset.cleanup_old_versions(older_than=_KEEP_EVERY_VERSION, delete_unverified=True)
        found.files += (stats.data_files_removed + stats.transaction_files_removed + stats.index_files_removed +
                        stats.deletion_files_removed)
        found.bytes += stats.bytes_removed


def _files_in(dataset_dir: Path) -> set[str]:
    """The data, deletion and index files present, relative to the dataset."""
    present: set[str] = set()
    for folder in (manifest.DATA_DIR, manifest.DELETIONS_DIR, INDEXES_DIR):
        if (dataset_dir / folder).is_dir():
            present.update(f"{folder}/{p.name}" for p in (dataset_dir / folder).iterdir() if p.is_file())
    return present


def _referenced_by(version: lance.LanceDataset) -> set[str]:
    opened = manifest.from_dataset(version)
    paths: set[str] = set()
    for fragment in opened.fragments:
        paths.update(fragment.files)
        if fragment.deletion is not None:
            paths.add(fragment.deletion)
    paths.update(entry["file"]["path"] for entry in opened.indexes)
    return paths


def referenced_files(dataset_dir: Path, dataset: lance.LanceDataset | None = None) -> set[str]:
    """Every file (relative to the dataset) some version references: data files, deletion files and the
    index files of its catalog (every version read: what the crash trials check the store against)."""
    dataset = dataset or lance.dataset(str(dataset_dir))
    paths: set[str] = set()
    for number in manifest.versions(dataset_dir):
        try:
            paths |= _referenced_by(dataset.checkout_version(number))
        except (ValueError, OSError):
            continue  # a version cleaned up or damaged references nothing the store could serve
    return paths


def _size(folder: Path) -> int:
    total = 0
    for base, _, names in os.walk(folder):
        for name in names:
            try:
                total += os.path.getsize(os.path.join(base, name))
            except OSError:
                pass
    return total


__all__ = ["DataDirLock", "Recovered", "collect", "recover", "referenced_files", "roll_back_torn"]
