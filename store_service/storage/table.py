"""Tables as Lance datasets at `<data_dir>/<name>.lance` (LanceDB's layout): reading one, and the only code
that commits to one.

Every change is a typed operation (`operations.py`: Append, Overwrite, Delete, Update, Merge, Restore,
CreateIndex, DropIndex, CatchUpIndexes, RewriteColumns, ChangeSchema, Compact) prepared before any lock and
committed by `Table.commit` as one Lance commit, named in its transaction. Lance makes the commit atomic
and versioned; this module adds what Lance does not do:

- **fsync.** Lance never syncs. Fragments and deletion files are fsynced (with their folders) before the
  commit, the new manifest, transaction file and folders right after it, and only then is the change
  acknowledged. So an acknowledged version survives a power cut; one cut short is at worst a torn newest
  manifest, which `recovery` rolls back at start.
- **checksums** of every file a commit adds (`checksums.py`), checked on first read.
- **stable row ids**: datasets are created with them, so FAISS labels survive compaction.

One lock per table orders this process's commits, held only to check the operation against the latest
version and commit; Lance's own conflict checks (the commit names the version a change was computed from)
refuse a change that another writer made stale: WRITE_CONFLICT.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import queue
import shutil
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lance
import numpy as np
import pyarrow as pa
from lance import LanceOperation
from lance.dataset import Transaction
from lance.fragment import write_fragments

from store_service.errors import (Aborted, AlreadyExists, Cancelled, DataLoss, FailedPrecondition, InvalidArgument,
                                  NotFound, StorageFailed, TableExists, TableNotFound, TableReplaced,
                                  VersionNotFound)
from store_service.storage import durable, field_ids, lance_errors, leases, manifest
from store_service.storage.checksums import SIDECAR_DIR, ChecksumLog
from store_service.storage.location import LocalFolder, Location, as_location
from store_service.storage.fragments import ROW_ID
from store_service.storage.manifest import (DATA_DIR, DELETIONS_DIR, JOB_KEY, OPERATION_KEY, TRANSACTIONS_DIR,
                                            VERSIONS_DIR, FragmentRef, Manifest)
from store_service.storage.names import check_table_name, check_tag_name, check_version
from store_service.storage.operations import (Append, CatchUpIndexes, ChangeSchema, CommittedNotDurable, Compact,
                                              CreateIndex, CreateTextIndex, Delete, Deletes, DropIndex,
                                              DropTextIndex, Merge, Moved, Operation, Overwrite, Restore,
                                              RewriteColumns, Staged, Update)

log = logging.getLogger(__name__)

SUFFIX = ".lance"
REFS_DIR = "_refs"  # Lance's tags
DATASETS_CACHED = 8  # opened versions kept per table (the latest and those pinned by readers)
MAX_ROWS_PER_FILE = 1 << 20
RESTAGE_ROWS = 10_000  # rows read back at a time when staged rows are staged again
STREAM_BATCHES_KEPT = 2  # batches of a streamed stage kept to write again (Lance checks the schema on the first)
RACY_NS = 2_000_000_000  # a versions-folder time this recent may share its tick with a later commit (some
# filesystems keep whole seconds)
_HASHERS = ThreadPoolExecutor(max_workers=2, thread_name_prefix="checksum")


class _Scrubber:
    """One daemon thread at the lowest CPU priority running checksum scrubs in turn: a daemon, so that a
    stopping store never waits for a scrub of a large table to finish (it only reads)."""

    def __init__(self) -> None:
        self._work: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="checksum-scrub", daemon=True)
                self._thread.start()
        self._work.put(work)

    def _run(self) -> None:
        try:  # Linux: a thread is a task with a nice value of its own
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        except (OSError, AttributeError):
            pass
        while True:
            work = self._work.get()
            try:
                work()
            except Exception:  # noqa: BLE001 - a scrub is best effort; the reads check the files themselves
                log.exception("checksum scrub failed")


_SCRUBBER = _Scrubber()


@dataclass(frozen=True)
class Snapshot:
    """A table as of one version, with the Lance dataset opened at it for reading."""

    table: "Table"
    manifest: Manifest
    dataset: Any = dataclasses.field(compare=False, repr=False)

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def schema(self) -> pa.Schema:
        return self.manifest.schema


class Table:
    def __init__(self, files: Location | Path, name: str) -> None:
        self.name = name
        self.files = as_location(files)
        self.uri = self.files.uri
        self.checksums = ChecksumLog(self.files, name)
        self._write_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._datasets: OrderedDict[int, Any] = OrderedDict()
        self._versions_dir = self.files.uri_of(VERSIONS_DIR)
        self._latest: tuple[int, int, int] | None = None  # (versions folder's mtime, latest version, looked at)
        self._identity: tuple[int, str] | None = None  # on object storage: (oldest version, its manifest's ETag)
        self.replaced = False  # the name now holds another table: this handle is done with
        self._listed_latest = 0  # on object storage: the latest version the last listing showed
        self._v2_names = False  # whether its manifests are known to carry Lance's v2 names
        self._scrub_queued: set[str] = set()

    @property
    def directory(self) -> Path:
        """The table's folder on a local disk (what recovery and the tests reach into)."""
        if not isinstance(self.files, LocalFolder):
            raise TypeError(f"table {self.name!r} is on object storage, not in a local directory")
        return self.files.path

    def _storage_errors(self, folder: str, what: str) -> Any:
        """`durable.storage_errors` for a write into a folder of the table: the error names the folder and what
        was written, never where the data directory is."""
        where = self.files.path / folder / what if isinstance(self.files, LocalFolder) else \
            Path(self.name + SUFFIX) / folder / what
        return durable.storage_errors(where, shown=self.files.shown)

    # ----- reading ------------------------------------------------------------------------------------
    def version_numbers(self) -> list[int]:
        return manifest.listed_versions(self.files)

    def latest_version(self) -> int:
        """The latest version without opening the dataset when nothing changed: a commit (here or by another
        process, LanceDB included) changes the versions folder's mtime. On object storage, which has no
        folder times, the versions folder is listed (the table owner asks at most once per read-consistency
        interval)."""
        if self.files.on_object_storage:
            listed = manifest.listed_manifests(self.files)
            if not listed:
                raise TableNotFound(f"no table named {self.name!r}", table=self.name)
            self._check_same_table(listed)
            self._listed_latest = max(listed)
            return self._listed_latest
        looked = time.time_ns()
        try:
            stamp = os.stat(self._versions_dir).st_mtime_ns
        except FileNotFoundError:
            raise TableNotFound(f"no table named {self.name!r}", table=self.name) from None
        with self._cache_lock:
            cached = self._latest
        if cached is not None and cached[0] == stamp:
            # The folder's time is coarse (a clock tick): a commit in the same tick as the last look leaves it
            # unchanged. Only a time older than that look by more than a tick proves nothing came since;
            # otherwise the next version's manifest is looked for.
            if stamp < cached[2] - RACY_NS:
                return cached[1]
            if not manifest.committed_after(self._versions_dir, cached[1]):
                with self._cache_lock:  # still the latest after this look: later looks may trust the time
                    if self._latest == cached:
                        self._latest = (stamp, cached[1], looked)
                return cached[1]
        latest = self._open(None).version
        with self._cache_lock:
            self._latest = (stamp, latest, looked)
        return latest

    def _check_same_table(self, listed: dict[int, Any]) -> None:
        """Raises TableReplaced (and marks this handle replaced) when the manifests listed are another table's:
        one dropped and created again under the name by another store process. A table is known by its
        oldest manifest's ETag (written once, never again); a cleanup that removed old versions moves the
        oldest forward, a table made again starts over below it or rewrites it."""
        oldest = min(listed)
        seen = (oldest, listed[oldest].tag)
        with self._cache_lock:
            known = self._identity
            if known is None or seen == known or oldest > known[0]:
                self._identity = seen
                return
            self.replaced = True
        raise TableReplaced(f"table {self.name!r} was dropped and created again meanwhile; retry",
                            table=self.name)

    def _open(self, version: int | None) -> Any:
        try:
            return lance.dataset(self.uri, version=version)
        except ValueError as exc:
            if version is not None and lance_errors.is_missing_version(exc):
                raise VersionNotFound(f"table {self.name!r} has no version {version}", table=self.name,
                                      version=version) from None
            raise DataLoss(f"table {self.name!r}: Lance cannot open version {version or 'latest'} "
                           f"({self.shown(exc)})", reason="MANIFEST_CORRUPT", table=self.name) from None
        except OSError as exc:
            raise DataLoss(f"table {self.name!r}: Lance cannot open it ({self.shown(exc)})",
                           reason="MANIFEST_CORRUPT", table=self.name) from None

    def shown(self, exc: BaseException) -> str:
        """Lance's error text for a caller: without where the data directory is, and short."""
        return self.files.shown(str(exc))[:300]

    def dataset(self, version: int | None = None) -> Any:
        """The dataset opened at `version` (latest when None); opened versions are immutable and cached."""
        if version is None:
            version = self.latest_version()
        check_version(version)
        with self._cache_lock:
            found = self._datasets.get(version)
            if found is not None:
                self._datasets.move_to_end(version)
                return found
        if version <= 0 or version not in self._version_set(version):
            raise VersionNotFound(f"table {self.name!r} has no version {version}", table=self.name, version=version)
        opened = self._open(version)
        self.checksums.verify(self._manifest_name(version), reason="MANIFEST_CORRUPT")
        with self._cache_lock:
            self._datasets[version] = opened
            while len(self._datasets) > DATASETS_CACHED:
                self._datasets.popitem(last=False)
        return opened

    def _manifest_name(self, version: int) -> str:
        """`manifest.manifest_name`, without looking once the table is known to use v2 names (a dataset keeps
        the naming it was made with; on object storage each look is a HEAD)."""
        if self._v2_names:
            return manifest.v2_manifest_name(version)
        name = manifest.manifest_name(self.files, version)
        self._v2_names = name == manifest.v2_manifest_name(version)
        return name

    def _version_set(self, version: int) -> set[int]:
        if self.files.on_object_storage and 0 < version <= self._listed_latest:
            return {version}  # listed a moment ago (one a cleanup removed since: Lance's open says it is gone)
        latest = self.latest_version()
        if version == latest:
            return {latest}
        return set(self.version_numbers())

    def manifest(self, version: int | None = None) -> Manifest:
        return manifest.from_dataset(self.dataset(version))

    def schema(self, version: int | None = None) -> pa.Schema:
        """The schema as served, without listing the version's fragments."""
        return manifest.split_schema(self.dataset(version).schema)[0]

    def snapshot(self, version: int | None = None) -> Snapshot:
        dataset = self.dataset(version)
        return Snapshot(self, manifest.from_dataset(dataset), dataset)

    def history(self) -> list[Manifest]:
        """Every version with its time, operation and row count (one listing, as LanceDB shows them)."""
        latest = self._open(None)  # a dataset of its own: pylance's objects are not shared across threads
        found = []
        for entry in latest.versions():
            number = int(entry["version"])
            operation = ""
            try:
                transaction = latest.read_transaction(number)
            except (OSError, ValueError):
                transaction = None
            if transaction is not None:
                operation = (transaction.transaction_properties or {}).get(OPERATION_KEY) or \
                    type(transaction.operation).__name__.lower()
            if number == 1 and operation in ("", "overwrite"):
                operation = "create"
            rows = int(entry.get("metadata", {}).get("total_rows", 0))
            found.append(Manifest(version=number, schema=pa.schema([]), operation=operation,
                                  timestamp=entry["timestamp"].timestamp(), row_count=rows))
        return found

    def read_fragment(self, snapshot: Snapshot, ref: FragmentRef, columns: Sequence[str]) -> pa.Table:
        """Every physical row of a fragment (deleted ones too, `_rowid` null for them), the given columns and
        `_rowid`; before the first read of a column, its files' checksums are checked (with stable row ids
        the ids alone come from the manifest)."""
        if columns:
            self.verify([ref])
        fragment = snapshot.dataset.get_fragment(ref.id)
        try:
            rows = fragment.scanner(columns=list(columns), with_row_id=True, include_deleted_rows=True,
                                    batch_size=max(1, ref.physical_rows)).to_table()  # one batch: no copy to join
            rows.validate(full=True)  # what Arrow compute will read (Lance checks what it writes, not reads)
            return rows
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataLoss(f"table {self.name!r}: fragment {ref.id} is unreadable ({self.shown(exc)})",
                           reason="FRAGMENT_CORRUPT", table=self.name) from None

    def fragment_slices(self, snapshot: Snapshot, ref: FragmentRef, columns: Sequence[str], rows: int
                        ) -> Iterator[tuple[int, pa.Table]]:
        """A fragment's physical rows (deleted ones too) in slices of at most `rows`, with the physical offset
        each starts at: what an index build reads, so a 1M-row fragment is never in memory at once."""
        self.verify([ref])
        fragment = snapshot.dataset.get_fragment(ref.id)
        start = 0
        try:
            for batch in fragment.scanner(columns=list(columns), with_row_id=True, include_deleted_rows=True,
                                          batch_size=rows).to_batches():
                part = pa.Table.from_batches([batch]).drop_columns([ROW_ID])
                part.validate(full=True)
                yield start, part
                start += batch.num_rows
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataLoss(f"table {self.name!r}: fragment {ref.id} is unreadable ({self.shown(exc)})",
                           reason="FRAGMENT_CORRUPT", table=self.name) from None
        if start != ref.physical_rows:
            raise DataLoss(f"table {self.name!r}: fragment {ref.id} holds {start} rows, not {ref.physical_rows}",
                           reason="FRAGMENT_CORRUPT", table=self.name)

    def verify(self, refs: Iterable[FragmentRef]) -> None:
        """Checks the checksums of the fragments' data files not yet checked by this process, side by side."""
        pending = [path for ref in refs for path in ref.files if not self.checksums.is_verified(path)]
        if len(pending) <= 1:
            for path in pending:
                self.checksums.verify(path)
            return
        for _ in _HASHERS.map(self.checksums.verify, pending):
            pass

    def scrub(self, refs: Iterable[FragmentRef]) -> None:
        """Checks the fragments' data files not yet checked on one background thread at the lowest CPU
        priority, so that the searches after a start rarely wait for a whole file's checksum (measured at
        10M rows: the first 40 searches, each touching ~50 unchecked 15 MB files, had a p50 of 155 ms). A read
        that reaches a file first still checks it itself, or waits for the scrub's check of it."""
        with self._cache_lock:
            pending = [path for ref in refs for path in ref.files
                       if path not in self._scrub_queued and not self.checksums.is_verified(path)]
            self._scrub_queued.update(pending)
        if pending:
            _SCRUBBER.submit(lambda: self._scrub(pending))

    def _scrub(self, paths: list[str]) -> None:
        for number, path in enumerate(paths):
            if number % 16 == 0 and not self.files.exists(VERSIONS_DIR):
                return  # dropped meanwhile (looked at every 16 files: on object storage a look is a request)
            try:
                self.checksums.verify(path)
            except DataLoss as exc:  # the read of that file reports it (it checks again): here only a log line
                if exc.reason != "FRAGMENT_MISSING":  # a file a cleanup removed since it was queued is no loss
                    log.error("%s", exc)
            except OSError:
                pass
            finally:
                with self._cache_lock:
                    self._scrub_queued.discard(path)

    def take_rows(self, snapshot: Snapshot, refs: Sequence[FragmentRef], row_ids: np.ndarray,
                  columns: Sequence[str]) -> dict[str, pa.Array]:
        """A few rows' values by stable row id, in that order, from the fragments `refs` (checked first)."""
        self.verify(refs)
        try:
            rows = snapshot.dataset._take_rows(np.asarray(row_ids, dtype=np.uint64).tolist(), columns=list(columns))
        except (OSError, ValueError, pa.ArrowException) as exc:
            raise DataLoss(f"table {self.name!r}: rows are unreadable ({self.shown(exc)})",
                           reason="FRAGMENT_CORRUPT", table=self.name) from None
        if rows.num_rows != len(row_ids):
            raise DataLoss(f"table {self.name!r}: {len(row_ids)} rows asked, {rows.num_rows} read",
                           reason="FRAGMENT_CORRUPT", table=self.name)
        return {name: rows.column(name).combine_chunks() for name in columns}


    def live_offsets(self, snapshot: Snapshot, ref: FragmentRef) -> np.ndarray | None:
        """The physical offsets of the fragment's rows this version holds; None when it deletes none."""
        if ref.deletion is None:
            return None
        self.checksums.verify(ref.deletion)
        fragment = snapshot.dataset.get_fragment(ref.id)
        try:
            addresses = fragment.to_table(columns=[], with_row_address=True).column("_rowaddr").to_numpy()
        except (OSError, ValueError) as exc:
            raise DataLoss(f"table {self.name!r}: the deletions of fragment {ref.id} are unreadable "
                           f"({self.shown(exc)})", reason="FRAGMENT_CORRUPT", table=self.name) from None
        return (addresses & 0xFFFFFFFF).astype(np.int64)


    # ----- staging ------------------------------------------------------------------------------------
    def stage(self, data: pa.Table, schema: pa.Schema) -> Staged:
        """Writes rows (conformed to `schema`) as fragments no version lists yet, durably and checksummed;
        a commit publishes them, `discard` removes them. Staging takes no lock, so a long add does not hold
        up other writers."""
        rows = conform(data, schema)
        if rows.num_rows == 0:
            return Staged((), schema, 0)
        same_schema = schema.equals(self.schema())
        try:
            written, checksums = self.write_fragments(rows, schema, same_schema=same_schema)
        except StorageFailed:
            if not same_schema or schema.equals(self.schema()):
                raise
            # the schema changed between the look and the write (a function switch): written for `schema`
            # alone, and the commit says Moved so that the rows are staged again for the new one
            written, checksums = self.write_fragments(rows, schema, same_schema=False)
        return Staged(tuple(written), schema, rows.num_rows, checksums)

    def stage_stream(self, tables: Iterable[pa.Table], schema: pa.Schema) -> Staged:
        """`stage` for rows arriving table by table: written as they come (receiving and preparing the next
        overlap the writing) into one set of staged fragments, a file per MAX_ROWS_PER_FILE rows, not one
        per message. An error raised while producing the rows is raised as it was."""
        produced: list[BaseException] = []
        kept: list[pa.RecordBatch] = []  # the first batches, which Lance reads before it checks the schema
        pulled = 0

        def flattened() -> Iterator[pa.RecordBatch]:  # one iterator for every attempt: a batch is taken once
            nonlocal pulled
            try:
                for table in tables:
                    for batch in conform(table, schema).to_batches():
                        if batch.num_rows:
                            pulled += 1
                            if len(kept) < STREAM_BATCHES_KEPT:
                                kept.append(batch)
                            yield batch
            except BaseException as exc:
                produced.append(exc)
                raise

        source = flattened()

        def write(replay: list[pa.RecordBatch], same_schema: bool) -> tuple[list[Any], dict[str, tuple[int, str]]]:
            reader = pa.RecordBatchReader.from_batches(schema, itertools.chain(replay, source))
            return self.write_fragments(reader, schema, same_schema=same_schema,
                                        cause=lambda: produced[0] if produced else None)

        same_schema = schema.equals(self.schema())
        try:
            written, checksums = write([], same_schema)
        except StorageFailed:
            if not same_schema or schema.equals(self.schema()):
                raise
            if pulled > len(kept):  # Lance refuses before its second batch: not expected
                raise Aborted(f"table {self.name!r}: an embedding function changed while the rows were written; "
                              "retry the add", reason="WRITE_CONFLICT", table=self.name) from None
            replay, kept[:] = list(kept), []
            written, checksums = write(replay, False)  # see `stage`: the commit says Moved, and they are restaged
        rows = sum(int(fragment.physical_rows) for fragment in written)
        if rows == 0:
            self.discard([Staged(tuple(written), schema, 0)])
            return Staged((), schema, 0)
        return Staged(tuple(written), schema, rows, checksums)

    def write_fragments(self, rows: pa.Table | pa.RecordBatchReader, schema: pa.Schema, *, same_schema: bool,
                        cause: Callable[[], BaseException | None] = lambda: None
                        ) -> tuple[list[Any], dict[str, tuple[int, str]]]:
        """Fragments written, fsynced and hashed (their checksum lines are appended by the commit that
        publishes them, so a discarded stage leaves no trace). `cause`: for a reader, the error that made
        it fail (Lance reports it as its own), raised as it was."""
        with self._storage_errors(DATA_DIR, "fragment"):
            try:
                written = write_fragments(rows, self.uri, schema=schema,
                                          mode="append" if same_schema else "overwrite",
                                          max_rows_per_file=MAX_ROWS_PER_FILE)
            except OSError:
                failed = cause()
                if failed is not None:
                    raise failed from None
                raise
        paths = [manifest.data_file(f) for fragment in written for f in fragment.files]
        try:
            checksums = self.make_durable(paths)
        except BaseException:
            self.remove_files(paths)
            raise
        return written, checksums

    def make_durable(self, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
        """fsyncs files (and their folders; nothing to do on object storage) and returns their checksums, to
        be logged before the commit."""
        paths = list(paths)
        hashing = _HASHERS.submit(self.checksums.hash, paths)  # beside the fsyncs: both release the GIL
        try:
            self.files.sync(paths)
        finally:
            checksums = hashing.result()
        return checksums

    def staged_batches(self, staged: Staged, rows: int = RESTAGE_ROWS) -> Iterator[pa.RecordBatch]:
        """The rows of staged fragments read back `rows` at a time (an append restaged for a schema that
        changed: a large add is never in memory whole)."""
        from lance.file import LanceFileReader

        for relative in staged.files:
            yield from LanceFileReader(self.files.uri_of(relative)).read_all(batch_size=rows).to_batches()

    def discard(self, staged: Iterable[Staged]) -> None:
        for item in staged:
            self.remove_files(item.files)

    # ----- committing ---------------------------------------------------------------------------------
    def _commit(self, operation: Any, read_version: int, name: str) -> Manifest:
        """One Lance commit, made durable before it returns (the caller holds the write lock)."""
        properties = {OPERATION_KEY: name}
        claim = leases.current_claim()
        if claim is not None:  # a job's commit: only while its lease holds, and marked as the job's
            claim.lease.fence()
            properties[JOB_KEY] = claim.job_id
        transaction = Transaction(read_version=read_version, operation=operation, uuid=str(uuid.uuid4()),
                                  transaction_properties=properties)
        with self._storage_errors(VERSIONS_DIR, "manifest"):
            try:
                committed = lance.LanceDataset.commit(self.uri, transaction, read_version=read_version,
                                                      max_retries=5)
            except OSError as exc:  # Lance reports a conflict as OSError / CommitConflictError
                if lance_errors.is_commit_conflict(exc):
                    raise Aborted(f"table {self.name!r} was changed by another writer during the change; retry "
                                  "it", reason="WRITE_CONFLICT", table=self.name) from None
                raise
        try:
            self._sync_commit(committed.version, transaction.uuid)
        except Exception as exc:  # committed: its files are the version's now
            message = getattr(exc, "message", str(exc))
            raise CommittedNotDurable(f"table {self.name!r}: version {committed.version} was committed but could "
                                      f"not be made durable ({message})", table=self.name,
                                      version=committed.version) from exc
        if self.files.on_object_storage:
            with self._cache_lock:
                self._listed_latest = max(self._listed_latest, int(committed.version))
        if isinstance(self.files, LocalFolder):
            looked = time.time_ns()
            stamp = os.stat(self._versions_dir).st_mtime_ns
            if not manifest.committed_after(self._versions_dir, committed.version):  # else another process did
                with self._cache_lock:  # readers open their own dataset objects: pylance's are not shared
                    self._latest = (stamp, committed.version, looked)
        return dataclasses.replace(manifest.from_dataset(committed), operation=name)

    def _sync_commit(self, version: int, transaction_id: str) -> None:
        manifest_name = self._manifest_name(version)
        if isinstance(self.files, LocalFolder):  # on object storage the commit's PUTs are durable already
            directory = self.files.path
            durable.fsync_file(directory / manifest_name)
            hint = directory / VERSIONS_DIR / "latest_version_hint.json"
            if hint.exists():
                durable.fsync_file(hint)
            for txn in (directory / TRANSACTIONS_DIR).glob(f"*-{transaction_id}.txn"):
                durable.fsync_file(txn)
            for folder in (VERSIONS_DIR, TRANSACTIONS_DIR):
                if (directory / folder).is_dir():
                    durable.fsync_dir(directory / folder)
        self.checksums.record([manifest_name])

    def writer_dataset(self) -> Any:
        """The latest dataset, opened afresh for one writer (a compaction's plan, a cleanup)."""
        return self._open(None)

    def _base(self) -> Any:
        """The latest dataset, opened afresh under the write lock (authoritative) and used by the writer only:
        a pylance dataset a thread mutates (deleting rows of its fragments) must not be read by another."""
        return self._open(None)

    @property
    def write_lock(self) -> threading.Lock:
        """The table's one writer lock in this process: held only to check an operation and commit it."""
        return self._write_lock

    def commit(self, operation: Operation) -> Manifest:
        """Commits one typed operation as one Lance commit, durable before it returns. Under the write lock
        only checks against the latest version and the commit run (deletion files excepted: Lance writes them
        from the latest fragment). On Moved the operation's prepared files stay for the next preparation; on
        any other failure they are removed, so a refused change leaves nothing behind."""
        written: list[str] = []
        try:
            with self._write_lock:
                base = self._base()
                lance_operation, read_version = self._to_lance(operation, base, written)
                return self._commit(lance_operation, read_version, operation.name)
        except CommittedNotDurable:
            raise  # every file is the committed version's
        except Moved:
            self.remove_files(written)
            raise
        except BaseException:
            self.remove_files(written)
            self.remove_files(_prepared_files(operation))
            raise

    def _to_lance(self, operation: Operation, base: Any, written: list[str]) -> tuple[Any, int]:
        """The Lance operation for `operation` on the latest dataset `base`, and the version it was read at."""
        if isinstance(operation, (Append, Overwrite, Merge)) and operation.wanted is not None \
                and not operation.wanted():
            raise Cancelled(f"the caller went away before the change to table {self.name!r} was committed; "
                            "nothing was committed", reason="CALLER_GONE", table=self.name)
        if isinstance(operation, Overwrite):
            self._log_checksums(operation.staged)
            return LanceOperation.Overwrite(manifest.with_indexes(operation.schema, ()),
                                            _fragments_of(operation.staged)), base.version
        if isinstance(operation, (Append, Update, Merge)):
            latest_schema, _ = manifest.split_schema(base.schema)
            # metadata included: an embedding-function switch that keeps the dimension changes only metadata
            if any(not item.schema.equals(latest_schema, check_metadata=True) for item in operation.staged
                   if item.rows):
                kind = Moved if isinstance(operation, Append) else Aborted
                raise kind(f"table {self.name!r} changed its schema during the write; retry it",
                           reason="WRITE_CONFLICT", table=self.name)
            self._log_checksums(operation.staged)
        if isinstance(operation, Append):
            return LanceOperation.Append(_fragments_of(operation.staged)), base.version
        if isinstance(operation, (Delete, Update, Merge)):
            new = [] if isinstance(operation, Delete) else _fragments_of(operation.staged)
            updated, removed = self._deletions(base, operation.deletes, written)
            if not updated and not removed:
                return LanceOperation.Append(new), operation.read_at.version
            if not new:
                return LanceOperation.Delete(updated, removed, f"vectorlane {operation.name}"), \
                    operation.read_at.version
            return LanceOperation.Update(removed_fragment_ids=removed, updated_fragments=updated,
                                         new_fragments=new), operation.read_at.version
        if isinstance(operation, Restore):
            return LanceOperation.Restore(operation.version), base.version
        if isinstance(operation, (CreateIndex, DropIndex, CatchUpIndexes)):
            return self._catalog_change(operation, base), base.version
        if isinstance(operation, (CreateTextIndex, DropTextIndex)):
            return self._text_index_change(operation, base), base.version
        if isinstance(operation, RewriteColumns):
            return self._rewrite(operation, base), base.version
        if isinstance(operation, ChangeSchema):
            return self._schema_change(operation, base), base.version
        if isinstance(operation, Compact):
            return self._compaction(operation, base), operation.read_version
        raise TypeError(f"not an operation: {operation!r}")

    def _log_checksums(self, staged: Sequence[Staged]) -> None:
        for item in staged:
            self.checksums.append(item.checksums)

    def _check_extends(self, read_at: Manifest, base: Any, what: str) -> None:
        if not _rows_extend(read_at, base):
            raise Aborted(f"table {self.name!r} was overwritten, restored or altered while {what}; retry it",
                          reason="WRITE_CONFLICT", table=self.name)

    def _catalog_change(self, operation: CreateIndex | DropIndex | CatchUpIndexes, base: Any) -> Any:
        """The index catalog changed, in a version of its own (a Lance UpdateConfig of the schema metadata)."""
        current = manifest.from_dataset(base)
        indexes: list[dict[str, Any]]
        if isinstance(operation, CreateIndex):
            self._check_extends(operation.read_at, base, "the index was built")
            entry = operation.entry
            if any(i["name"] == entry["name"] for i in base.list_indices()):
                raise AlreadyExists(f"table {self.name!r} has an FTS index named {entry['name']!r}",
                                    reason="INDEX_EXISTS", index=entry["name"])
            indexes = []
            for existing in current.indexes:
                clash = existing["name"] == entry["name"] or existing["vector_column"] == entry["vector_column"]
                if clash and not operation.replace:
                    raise AlreadyExists(f"column {entry['vector_column']!r} already has index {existing['name']!r}; "
                                        "pass replace to rebuild it", reason="INDEX_EXISTS", index=existing["name"])
                if not clash:
                    indexes.append(existing)
            indexes.append(entry)
        elif isinstance(operation, DropIndex):
            indexes = [e for e in current.indexes if e["name"] != operation.index]
            if len(indexes) == len(current.indexes):
                raise NotFound(f"table {self.name!r} has no index {operation.index!r}", reason="INDEX_NOT_FOUND",
                               index=operation.index)
        else:
            self._check_extends(operation.read_at, base, "the indexes were caught up")
            indexes = [operation.fresh[e["name"]] if operation.stale.get(e["name"]) == e else e
                       for e in current.indexes]  # an index replaced meanwhile keeps its own file
        raw = manifest.with_indexes(current.schema, indexes).metadata or {}
        value = raw.get(manifest.INDEXES_KEY)
        return LanceOperation.UpdateConfig(schema_metadata_updates=LanceOperation.UpdateMap(
            {manifest.INDEXES_KEY.decode(): value.decode() if value is not None else None}))

    def _text_index_change(self, operation: CreateTextIndex | DropTextIndex, base: Any) -> Any:
        """An FTS index listed or removed in Lance's index section (a Lance CreateIndex); index names are
        shared with vectorlane's catalog of FAISS indexes."""
        listed = [i for i in base.list_indices() if i.get("type") == "Inverted"]
        if isinstance(operation, DropTextIndex):
            removed = [i for i in listed if i["name"] == operation.index]
            if not removed:
                raise NotFound(f"table {self.name!r} has no index {operation.index!r}", reason="INDEX_NOT_FOUND",
                               index=operation.index)
            return LanceOperation.CreateIndex(new_indices=[], removed_indices=_lance_indexes(base, removed))
        self._check_extends(operation.read_at, base, "the index was built")
        name = operation.index.name
        if any(entry["name"] == name for entry in manifest.from_dataset(base).indexes):
            raise AlreadyExists(f"table {self.name!r} has a vector index named {name!r}", reason="INDEX_EXISTS",
                                index=name)
        replaced = [i for i in listed if i["name"] == name or list(i["fields"]) == [operation.column]]
        if operation.rebuilds is not None and [str(i["uuid"]) for i in replaced] != [operation.rebuilds]:
            raise Moved(f"table {self.name!r}: FTS index {name!r} was dropped or replaced during its rebuild",
                        table=self.name)
        if replaced and not operation.replace:
            raise AlreadyExists(f"FTS index {replaced[0]['name']!r} already exists on column {operation.column!r}; "
                                "pass replace=True to rebuild it", reason="INDEX_EXISTS", index=replaced[0]["name"])
        self.checksums.append(dict(operation.checksums))
        return LanceOperation.CreateIndex(new_indices=[operation.index],
                                          removed_indices=_lance_indexes(base, replaced))

    def _rewrite(self, operation: RewriteColumns, base: Any) -> Any:
        current = manifest.from_dataset(base)
        self._check_extends(operation.read_at, base, "the column was rewritten")
        fragments = []
        for ref in current.fragments:
            metadata = operation.fragments.get(ref.data_key)
            if metadata is None:
                raise Moved(f"table {self.name!r}: fragment {ref.id} was added during the rewrite",
                            table=self.name)
            fragments.append(dataclasses.replace(metadata, deletion_file=ref.metadata.deletion_file))
        kept = [e for e in current.indexes if e["vector_column"] != operation.column]
        listed = {e["file"]["path"] for e in current.indexes if e["vector_column"] == operation.column}
        rebuilt = list(operation.indexes) if listed & operation.rebuilt_from else []
        return LanceOperation.Merge(fragments, manifest.with_indexes(operation.schema, [*kept, *rebuilt]))

    def _schema_change(self, operation: ChangeSchema, base: Any) -> Any:
        current = manifest.from_dataset(base)
        self._check_extends(operation.read_at, base, "the schema was changed")
        fragments, new_fields = [], operation.new_fields
        if operation.new_files is not None:
            for ref in current.fragments:
                files = operation.new_files.get(ref.data_key)
                if files is None:
                    raise Moved(f"table {self.name!r}: fragment {ref.id} was added during the change",
                                table=self.name)
                fragments.append(dataclasses.replace(ref.metadata, files=[*ref.metadata.files, *files[0]]))
                new_fields = tuple(files[1])
            if new_fields is None:
                raise Moved(f"table {self.name!r}: its fragments changed during the change", table=self.name)
        schema = field_ids.arrow_with_ids(base.lance_schema)
        if operation.new_files is not None and new_fields is not None:
            schema = pa.schema([*schema, *new_fields], metadata=schema.metadata)
        served, indexes = manifest.split_schema(schema)
        edited, edited_indexes = operation.edit(served, indexes)
        wanted = field_ids.lance_schema(manifest.with_indexes(edited, edited_indexes))
        known = field_ids.all_ids(base.lance_schema) | field_ids.ids_in(list(new_fields or ()))
        if not field_ids.all_ids(wanted) <= known:
            raise FailedPrecondition(f"table {self.name!r}: this schema change would renumber nested fields (a map "
                                     "column); it is not supported", reason="UNSUPPORTED_CHANGE", table=self.name)
        if operation.new_files is not None:
            return LanceOperation.Merge(fragments, wanted)
        return LanceOperation.Project(wanted)

    def _compaction(self, operation: Compact, base: Any) -> Any:
        latest = {ref.id: ref.deletion for ref in manifest.from_dataset(base).fragments}
        for fragment_id, deletion in operation.originals.items():
            if fragment_id not in latest or latest[fragment_id] != deletion:
                raise Moved(f"table {self.name!r}: fragment {fragment_id} changed during the compaction",
                            table=self.name)
        self.checksums.append(dict(operation.checksums))
        return LanceOperation.Rewrite(
            groups=[LanceOperation.RewriteGroup(old_fragments=r.original_fragments, new_fragments=r.new_fragments)
                    for r in operation.results], rewritten_indices=[])

    def _deletions(self, base: Any, deletes: Deletes, written: list[str]) -> tuple[list[Any], list[int]]:
        """(fragments with their new deletion files, ids of fragments left empty), deletion files durable."""
        updated, removed = [], []
        for fragment_id, offsets in sorted(deletes.items()):
            if len(offsets) == 0:
                continue
            fragment = base.get_fragment(int(fragment_id))
            if fragment is None:
                raise Aborted(f"rows of table {self.name!r} this change replaces were changed by another writer "
                              "meanwhile; retry it", reason="WRITE_CONFLICT", table=self.name)
            with self._storage_errors(DELETIONS_DIR, "deletion"):
                result = fragment.delete_rows(np.unique(np.asarray(offsets, dtype=np.int64)).tolist())
            if result is None:
                removed.append(int(fragment_id))
            else:
                path = manifest.deletion_path(result.id, result.deletion_file)
                written.append(path)
                self.checksums.append(self.make_durable([path]))
                updated.append(result)
        return updated, removed

    def rewritten_fragment(self, ref: FragmentRef, rows: pa.Table, schema: pa.Schema) -> Any:
        """A fragment's physical rows (all of them, in order) written anew in `schema`, keeping its id and row
        ids: what a RewriteColumns commits. Durable and hashed; the caller removes its files if unused."""
        rows = conform(rows, schema)
        if rows.num_rows != ref.physical_rows:
            raise RuntimeError("this is a bug: a rewritten fragment must keep every physical row")
        new, checksums = self.write_fragments(rows, schema, same_schema=False)
        self.checksums.append(checksums)  # before the commit; lines of files a failed switch removes are harmless
        if len(new) != 1:
            raise RuntimeError("this is a bug: a fragment was rewritten as several")
        return dataclasses.replace(new[0], id=ref.id, row_id_meta=ref.metadata.row_id_meta,
                                   created_at_version_meta=ref.metadata.created_at_version_meta,
                                   last_updated_at_version_meta=ref.metadata.last_updated_at_version_meta)

    def file_size(self, relative: str) -> int:
        """A file's size in bytes; 0 when it is gone (a cleanup meanwhile)."""
        try:
            return self.files.size(relative)
        except FileNotFoundError:
            return 0

    def remove_files(self, relative_paths: Iterable[str]) -> None:
        for relative in relative_paths:
            self.files.remove(relative)

    def remove_folders(self, relative_folders: Iterable[str]) -> None:
        """Removes folders with everything in them (an FTS index's files that no version lists)."""
        for relative in relative_folders:
            self.files.child(relative).remove_all()

    def remove_unused(self, relative_paths: Iterable[str], committed: Manifest) -> None:
        """Removes the files a change wrote that its commit did not use: those of fragments that went away
        between its attempts (a delete or compaction meanwhile)."""
        used = {path for ref in committed.fragments for path in ref.files}
        self.remove_files(path for path in relative_paths if path not in used)

    def forget_versions(self, kept: set[int]) -> None:
        """Lets go of opened datasets of versions a cleanup removed."""
        with self._cache_lock:
            for version in [v for v in self._datasets if v not in kept]:
                del self._datasets[version]

    # ----- tags ---------------------------------------------------------------------------------------
    def tags(self) -> dict[str, int]:
        """Tag name -> the version it pins."""
        return {name: int(entry["version"]) for name, entry in self._open(None).tags.list().items()}

    def create_tag(self, tag: str, version: int) -> None:
        check_tag_name(tag)
        self.dataset(version)  # VERSION_NOT_FOUND before anything is written
        with self._write_lock:
            if tag in self.tags():
                raise AlreadyExists(f"table {self.name!r} has a tag {tag!r}", reason="TAG_EXISTS", tag=tag)
            with self._storage_errors(REFS_DIR, "tag"):
                self._open(None).tags.create(tag, version)
            self._sync_tags()

    def delete_tag(self, tag: str) -> None:
        check_tag_name(tag)
        with self._write_lock:
            if tag not in self.tags():
                raise NotFound(f"table {self.name!r} has no tag {tag!r}", reason="TAG_NOT_FOUND", tag=tag)
            with self._storage_errors(REFS_DIR, "tag"):
                self._open(None).tags.delete(tag)
            self._sync_tags()

    def tagged_version(self, tag: str) -> int:
        check_tag_name(tag)
        found = self.tags().get(tag)
        if found is None:
            raise NotFound(f"table {self.name!r} has no tag {tag!r}", reason="TAG_NOT_FOUND", tag=tag)
        return found

    def _sync_tags(self) -> None:
        if isinstance(self.files, LocalFolder) and (self.files.path / REFS_DIR).is_dir():
            _sync_tree(self.files.path / REFS_DIR)

    # convenience for tests and simple callers
    def append(self, data: pa.Table) -> Manifest:
        return self.commit(Append((self.stage(data, self.manifest().schema),)))

    def overwrite(self, data: pa.Table, schema: pa.Schema | None = None) -> Manifest:
        """Replaces every row (and the schema, when given) in one new version; old versions stay readable."""
        target = schema or self.manifest().schema
        return self.commit(Overwrite((self.stage(data, target),), target))


_HISTORY_BREAKS = ("Overwrite", "Restore", "Merge", "Project", "Rewrite", "DataReplacement")


def _fragments_of(staged: Sequence[Staged]) -> list[Any]:
    return [f for item in staged for f in item.fragments]


def _lance_indexes(base: Any, listed: Sequence[dict[str, Any]]) -> list[Any]:
    """Lance's index records for entries of `base.list_indices()` (what a CreateIndex commit removes)."""
    from lance.dataset import Index

    schema = base.lance_schema
    return [Index(uuid=str(i["uuid"]), name=i["name"], fields=[schema.field(f).id() for f in i["fields"]],
                  dataset_version=int(i["version"]), fragment_ids=i["fragment_ids"],
                  index_version=0) for i in listed]


def _prepared_files(operation: Operation) -> list[str]:
    """The files an operation's preparation wrote, which a refused commit leaves to no one."""
    if isinstance(operation, (Append, Overwrite, Update, Merge)):
        return [path for item in operation.staged for path in item.files]
    if isinstance(operation, RewriteColumns):
        return [manifest.data_file(f) for fragment in operation.fragments.values() for f in fragment.files]
    if isinstance(operation, ChangeSchema) and operation.new_files is not None:
        return [manifest.data_file(f) for files, _ in operation.new_files.values() for f in files]
    if isinstance(operation, (Compact, CreateTextIndex)):
        return list(operation.files)
    return []


def _rows_extend(read_at: Manifest, base: Any) -> bool:
    """Whether the latest dataset `base` grew from `read_at` by appends, deletes, updates and index changes
    only (no overwrite, restore, column rewrite or compaction in between), with the same schema."""
    if not manifest.split_schema(base.schema)[0].equals(read_at.schema):
        return False
    for version in range(read_at.version + 1, int(base.version) + 1):
        try:
            transaction = base.read_transaction(version)
        except (OSError, ValueError):
            return False
        if transaction is None or type(transaction.operation).__name__ in _HISTORY_BREAKS:
            return False
    return True


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """`data` with the table's columns in the table's order and types; missing nullable columns are null."""
    names = set(schema.names)
    unknown = [n for n in data.column_names if n not in names and n != ROW_ID]
    if unknown:
        raise InvalidArgument(f"column {unknown[0]!r} is not in the table's schema", reason="UNKNOWN_COLUMN",
                              column=unknown[0])
    columns = []
    for f in schema:
        if f.name in data.column_names:
            column = data.column(f.name)
            try:
                columns.append(column.cast(f.type) if column.type != f.type else column)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
                raise InvalidArgument(f"column {f.name!r}: cannot store {column.type} as {f.type} ({exc})",
                                      reason="SCHEMA_MISMATCH", column=f.name) from None
        elif f.nullable:
            columns.append(pa.nulls(data.num_rows, f.type))
        else:
            raise InvalidArgument(f"Append with different schema: column {f.name!r} is required (it is not "
                                  "nullable), and the rows do not have it", reason="MISSING_COLUMN", column=f.name)
        if not f.nullable and columns[-1].null_count:
            raise InvalidArgument(f"column {f.name!r} may not hold nulls. The field `{f.name}` contained null "
                                  "values even though the field is marked non-null in the schema.",
                                  reason="NULL_IN_REQUIRED_COLUMN", column=f.name)
    return pa.Table.from_arrays(columns, schema=schema)


class TableStore:
    """The tables under one data directory, local or on object storage: `<root>/<name>.lance`, as LanceDB
    lays them out."""

    def __init__(self, root: Location | Path) -> None:
        if isinstance(root, Path):
            root.mkdir(parents=True, exist_ok=True)
        self.root = as_location(root)
        self._open: dict[str, Table] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        """A table's folder on a local disk."""
        if not isinstance(self.root, LocalFolder):
            raise TypeError("the data directory is on object storage")
        return self.root.path / f"{name}{SUFFIX}"

    def location(self, name: str) -> Location:
        return self.root.child(f"{name}{SUFFIX}")

    def names(self) -> list[str]:
        found = []
        for folder in self.root.folders():
            if folder.endswith(SUFFIX) and not folder.startswith(".") and _has_versions(self.root.child(folder)):
                found.append(folder[: -len(SUFFIX)])
        return sorted(found)

    def open(self, name: str) -> Table:
        check_table_name(name)
        with self._lock:
            table = self._open.get(name)
            if table is None or table.replaced:
                files = self.location(name)
                if not _has_versions(files):
                    raise TableNotFound(f"no table named {name!r}", table=name)
                table = self._open[name] = Table(files, name)
            return table

    def exists(self, name: str) -> bool:
        check_table_name(name)
        return _has_versions(self.location(name))

    def forget(self, name: str, table: Table) -> None:
        """Stops handing out `table` for `name` (another process dropped or replaced it)."""
        with self._lock:
            if self._open.get(name) is table:
                del self._open[name]

    def create(self, name: str, schema: pa.Schema, data: pa.Table | None = None) -> Table:
        """Creates a table at version 1 (with `data` when given); TableExists if the name is taken. On a local
        disk the dataset is written under a temporary name, made durable, and renamed into place whole; on
        object storage Lance's first commit (put-if-not-exists) makes it appear, and a second writer of the
        same name loses that race."""
        check_table_name(name)
        rows = conform(data, schema) if data is not None else schema.empty_table()
        if self.root.on_object_storage:
            self._create_in_place(name, schema, rows)
            return self.open(name)
        root = self.path(name).parent
        staging = root / f".creating-{uuid.uuid4().hex}{SUFFIX}"
        try:
            with durable.storage_errors(staging / VERSIONS_DIR / "manifest"):
                lance.write_dataset(rows, str(staging), schema=manifest.with_indexes(schema, ()), mode="create",
                                    enable_stable_row_ids=True, max_rows_per_file=MAX_ROWS_PER_FILE)
            (staging / SIDECAR_DIR).mkdir()
            _sync_tree(staging)
            ChecksumLog(staging, name).record(
                str(p.relative_to(staging)) for folder in (DATA_DIR, VERSIONS_DIR) if (staging / folder).is_dir()
                for p in sorted((staging / folder).iterdir()) if p.suffix in (".lance", ".manifest"))
            with self._lock:
                target = self.path(name)
                if target.exists():
                    raise TableExists(f"a table named {name!r} exists", table=name)
                os.rename(staging, target)  # the table appears whole, or not at all
                durable.fsync_dir(root)
                self._open.pop(name, None)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.open(name)

    def _create_in_place(self, name: str, schema: pa.Schema, rows: pa.Table) -> None:
        files = self.location(name)
        if _has_versions(files):
            raise TableExists(f"a table named {name!r} exists", table=name)
        with durable.storage_errors(Path(name + SUFFIX) / VERSIONS_DIR / "manifest"):
            try:
                lance.write_dataset(rows, files.uri, schema=manifest.with_indexes(schema, ()), mode="create",
                                    enable_stable_row_ids=True, max_rows_per_file=MAX_ROWS_PER_FILE)
            except OSError as exc:
                if _has_versions(files) and (lance_errors.is_commit_conflict(exc) or
                                             "already exists" in str(exc).lower()):
                    raise TableExists(f"a table named {name!r} exists", table=name) from None
                raise
        table = Table(files, name)
        table.checksums.record(f"{folder}/{entry.name}" for folder in (DATA_DIR, VERSIONS_DIR)
                               for entry in files.entries(folder) if entry.name.endswith((".lance", ".manifest")))
        with self._lock:
            self._open.pop(name, None)

    def drop(self, name: str) -> Table | None:
        """Removes the table; returns its handle if one was open, so the caches built on it can go too."""
        check_table_name(name)
        if self.root.on_object_storage:
            return self._drop_in_place(name)
        with self._lock:
            directory = self.path(name)
            if not (directory / VERSIONS_DIR).is_dir():
                raise TableNotFound(f"no table named {name!r}", table=name)
            graveyard = directory.parent / f".dropped-{uuid.uuid4().hex}"
            os.rename(directory, graveyard)  # gone from view in one step
            durable.fsync_dir(directory.parent)
            dropped = self._open.pop(name, None)
        shutil.rmtree(graveyard, ignore_errors=True)
        return dropped

    def _drop_in_place(self, name: str) -> Table | None:
        """On object storage nothing renames: vectorlane's own objects go first (a table made again under the
        name never meets the old one's checksum lines), then the manifests (the table is gone from every
        listing and open from then on), then the rest. A replica that commits to the table while it is
        dropped can bring a version of it back, without the rows the drop removed: as with LanceDB on a
        bucket, drop a table only when its writers are done with it."""
        files = self.location(name)
        with self._lock:
            if not _has_versions(files):
                raise TableNotFound(f"no table named {name!r}", table=name)
            dropped = self._open.pop(name, None)
        files.child(SIDECAR_DIR).remove_all()
        for entry in files.entries(VERSIONS_DIR):
            files.remove(f"{VERSIONS_DIR}/{entry.name}")
        files.remove_all()
        return dropped


def _has_versions(files: Location) -> bool:
    """Whether a table's folder holds a version: on a local disk its versions folder exists; on object
    storage, where a folder is only a prefix (and an emptied one may leave a marker), a manifest is listed."""
    if files.on_object_storage:
        return bool(manifest.listed_versions(files))
    return files.exists(VERSIONS_DIR)


def _sync_tree(root: Path) -> None:
    for base, _, names in os.walk(root):
        for name in names:
            durable.fsync_file(Path(base) / name)
        durable.fsync_dir(Path(base))
