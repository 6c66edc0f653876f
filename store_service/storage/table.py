"""Tables as Lance datasets at `<data_dir>/<name>.lance` (LanceDB's layout), and the only code that writes one.

Each kind of change is a named operation that becomes one Lance commit: `append`, `overwrite`,
`replace_rows` (delete, update, merge_insert: deletion files and new fragments in one version), `restore`,
`set_indexes` and `rewrite_columns` (a function switch: every fragment gets new data files, keeping its
row ids and deletions). Lance makes the commit atomic and versioned; this module adds what Lance does not do:

- **fsync.** Lance never syncs. Fragments and deletion files are fsynced (with their folders) before the
  commit, the new manifest, transaction file and folders right after it, and only then is the change
  acknowledged. So an acknowledged version survives a power cut; one cut short is at worst a torn newest
  manifest, which `recovery` rolls back at start.
- **checksums** of every file a commit adds (`checksums.py`), checked on first read.
- **stable row ids**: datasets are created with them, so FAISS labels survive compaction.

A thread lock orders this process's commits per table; Lance's own conflict checks (the commit names the
version a change was computed from) refuse a change that another writer made stale: WRITE_CONFLICT.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import logging
import os
import queue
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
from lance.optimize import Compaction

from store_service.errors import (Aborted, AlreadyExists, Cancelled, DataLoss, FailedPrecondition,
                                  InvalidArgument, NotFound, ResourceExhausted, ServiceError,
                                  TableExists, TableNotFound, VersionNotFound)
from store_service.expressions import Judged
from store_service.expressions.budget import EVALUATION
from store_service.expressions.row_sizes import cell_bytes, input_bytes
from store_service.storage import durable, field_ids, manifest
from store_service.storage.checksums import SIDECAR_DIR, ChecksumLog
from store_service.storage.fragments import INDEXES_DIR, ROW_ID
from store_service.storage.manifest import (DATA_DIR, DELETIONS_DIR, OPERATION_KEY, TRANSACTIONS_DIR, VERSIONS_DIR,
                                            FragmentRef, Manifest)
from store_service.storage.names import check_table_name, check_tag_name, check_version

log = logging.getLogger(__name__)

SUFFIX = ".lance"
REFS_DIR = "_refs"  # Lance's tags
DATASETS_CACHED = 8  # opened versions kept per table (the latest and those pinned by readers)
MAX_ROWS_PER_FILE = 1 << 20
UPDATE_ANCHOR = "__vectorlane_anchor"  # a column taken beside update expressions (see `computed`)
READAHEAD = 2  # batches Lance reads ahead of a filter's evaluation (its default, 16, would hold 17 at once)
FRAGMENT_READAHEAD = 2  # fragments one such scan reads at once
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


@dataclass(frozen=True)
class Staged:
    """Fragments written for a commit that has not happened (none when there were no rows), and the schema
    they fit."""

    fragments: tuple[Any, ...]  # lance FragmentMetadata
    schema: pa.Schema
    rows: int
    checksums: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict, compare=False)

    @property
    def files(self) -> list[str]:
        return [manifest.data_file(f) for fragment in self.fragments for f in fragment.files]


@dataclass(frozen=True)
class Cleaned:
    """What a cleanup removed."""

    versions: int = 0
    files: int = 0
    bytes: int = 0


Restage = Callable[[list[Staged], pa.Schema], list[Staged]]
SchemaEdit = Callable[[pa.Schema, tuple[dict[str, Any], ...]], tuple[pa.Schema, Sequence[dict[str, Any]]]]


@dataclass(frozen=True)
class NewColumns:
    """Columns to compute for every physical row: SQL expressions by name (Lance's SQL, as LanceDB has it,
    judged by the expression gate), or a function from a batch of the `reads` columns to a batch of the new
    ones."""

    values: Mapping[str, Judged] | Callable[[pa.RecordBatch], pa.RecordBatch]
    reads: list[str] | None = None
    batch_rows: int = 1024
    error_reason: str = "INVALID_EXPRESSION"  # when a value cannot be computed
Deletes = Mapping[int, np.ndarray]  # fragment id -> physical row offsets to delete


class Table:
    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.directory = directory
        self.uri = str(directory)
        self.checksums = ChecksumLog(directory, name)
        self._write_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._datasets: OrderedDict[int, Any] = OrderedDict()
        self._latest: tuple[int, int] | None = None  # (versions dir mtime, latest version)
        self._scrub_queued: set[str] = set()

    # ----- reading ------------------------------------------------------------------------------------
    def version_numbers(self) -> list[int]:
        return manifest.versions(self.directory)

    def latest_version(self) -> int:
        """The latest version without opening the dataset when nothing changed: a commit (here or by another
        process, LanceDB included) changes the versions folder's mtime."""
        try:
            stamp = os.stat(self.directory / VERSIONS_DIR).st_mtime_ns
        except FileNotFoundError:
            raise TableNotFound(f"no table named {self.name!r}", table=self.name) from None
        with self._cache_lock:
            if self._latest is not None and self._latest[0] == stamp:
                return self._latest[1]
        latest = self._open(None).version
        with self._cache_lock:
            self._latest = (stamp, latest)
        return latest

    def _open(self, version: int | None) -> Any:
        try:
            return lance.dataset(self.uri, version=version)
        except ValueError as exc:
            text = str(exc)
            if version is not None and ("not found" in text.lower() or "does not exist" in text.lower()):
                raise VersionNotFound(f"table {self.name!r} has no version {version}", table=self.name,
                                      version=version) from None
            raise DataLoss(f"table {self.name!r}: Lance cannot open version {version or 'latest'} "
                           f"({self._shown(exc)})", reason="MANIFEST_CORRUPT", table=self.name) from None
        except OSError as exc:
            raise DataLoss(f"table {self.name!r}: Lance cannot open it ({self._shown(exc)})",
                           reason="MANIFEST_CORRUPT", table=self.name) from None

    def _shown(self, exc: BaseException) -> str:
        """Lance's error text for a caller: without the data directory's absolute path, and short."""
        return str(exc).replace(str(self.directory.parent), "<data_dir>")[:300]

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
        self.checksums.verify(str(manifest.manifest_file(self.directory, version).relative_to(self.directory)),
                              reason="MANIFEST_CORRUPT")
        with self._cache_lock:
            self._datasets[version] = opened
            while len(self._datasets) > DATASETS_CACHED:
                self._datasets.popitem(last=False)
        return opened

    def _version_set(self, version: int) -> set[int]:
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
            raise DataLoss(f"table {self.name!r}: fragment {ref.id} is unreadable ({self._shown(exc)})",
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
            raise DataLoss(f"table {self.name!r}: fragment {ref.id} is unreadable ({self._shown(exc)})",
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
        for path in paths:
            if not self.directory.is_dir():
                return  # dropped meanwhile
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
            raise DataLoss(f"table {self.name!r}: rows are unreadable ({self._shown(exc)})",
                           reason="FRAGMENT_CORRUPT", table=self.name) from None
        if rows.num_rows != len(row_ids):
            raise DataLoss(f"table {self.name!r}: {len(row_ids)} rows asked, {rows.num_rows} read",
                           reason="FRAGMENT_CORRUPT", table=self.name)
        return {name: rows.column(name).combine_chunks() for name in columns}

    def computed(self, snapshot: Snapshot, refs: Sequence[FragmentRef], row_ids: np.ndarray,
                 expressions: Mapping[str, Judged], *, max_output_bytes: int) -> dict[str, pa.Array]:
        """SQL expressions (judged by the gate) evaluated by Lance's engine for rows by stable id, in that
        order, from the fragments `refs` (checked first): LanceDB's `update(values_sql=...)` and
        `select({name: expression})`. In batches the evaluation budget sizes from the rows' input; more than
        `max_output_bytes` of values in all is RESOURCE_EXHAUSTED. For no rows, empty arrays of the types
        Lance plans for them."""
        if not expressions:
            return {}
        texts = {name: judged.text for name, judged in expressions.items()}
        what = f"computing {', '.join(list(texts)[:4])}"
        with self._evaluating():
            if len(row_ids) == 0:
                rows = snapshot.dataset.scanner(columns=texts, limit=0).to_table()
                return {name: rows.column(name).combine_chunks() for name in texts}
            self.verify(refs)
            reads = frozenset().union(*(judged.columns for judged in expressions.values()))
            plan = EVALUATION.batches([j.cost for j in expressions.values()],
                                      self._input_bytes(snapshot, row_ids, reads), what=what)
            anchor = next(f.name for f in snapshot.schema)  # Lance projects constants only beside a column
            columns = {**texts, UPDATE_ANCHOR: f"`{anchor.replace('`', '``')}`"}
            parts, produced = [], 0
            for start in range(0, len(row_ids), plan.rows):
                ids = np.asarray(row_ids[start:start + plan.rows], dtype=np.uint64).tolist()
                with EVALUATION.reserve(plan.reserve, what=what):
                    part = snapshot.dataset._take_rows(ids, columns=columns).select(list(texts))
                produced += part.nbytes
                if produced > max_output_bytes:
                    raise ResourceExhausted(f"{what}: the values exceed {max_output_bytes} bytes",
                                            reason="EXPRESSION_OUTPUT_TOO_LARGE", limit=str(max_output_bytes))
                parts.append(part)
            rows = pa.concat_tables(parts)
        return {name: rows.column(name).combine_chunks() for name in texts}

    def _input_bytes(self, snapshot: Snapshot, row_ids: np.ndarray, columns: Iterable[str]) -> np.ndarray:
        """Each row's bytes in `columns` (an expression's input), read only for columns whose cells vary."""
        ids = np.asarray(row_ids, dtype=np.uint64).tolist()
        return input_bytes(snapshot.schema, columns, len(row_ids), lambda names: map(
            cell_bytes, snapshot.dataset._take_rows(ids, columns=names).columns))

    def _fragment_input_bytes(self, snapshot: Snapshot, ref: FragmentRef, columns: Iterable[str]) -> np.ndarray:
        """Each physical row's bytes in `columns`, for evaluating expressions over the whole fragment."""
        return input_bytes(snapshot.schema, columns, ref.physical_rows, lambda names: map(
            cell_bytes, self.read_fragment(snapshot, ref, names).select(names).columns))

    @contextlib.contextmanager
    def _evaluating(self, reason: str = "INVALID_EXPRESSION", what: str = "the expressions") -> Iterator[None]:
        """Lance refusing SQL expressions (a Rust panic arrives as pyo3's PanicException) as `reason`; the
        store's own errors (a budget refusal) pass as they are."""
        try:
            yield
        except ServiceError:
            raise
        except BaseException as exc:  # noqa: BLE001
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            raise InvalidArgument(f"Lance cannot evaluate {what} ({self._shown(exc)[:300]})",
                                  reason=reason) from None

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
                           f"({self._shown(exc)})", reason="FRAGMENT_CORRUPT", table=self.name) from None
        return (addresses & 0xFFFFFFFF).astype(np.int64)

    def check_filter(self, snapshot: Snapshot, where: str) -> str | None:
        """Why Lance's SQL cannot evaluate `where` on this version (None when it can): planned, not run."""
        try:
            snapshot.dataset.scanner(filter=where, columns=[], with_row_id=True, limit=0).explain_plan()
            return None
        except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException
            if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                raise
            return self._shown(exc).replace("Invalid user input: ", "").split(", /home/")[0]

    def matching_offsets(self, snapshot: Snapshot, refs: Sequence[FragmentRef], judged: Judged,
                         input_bytes: np.ndarray) -> dict[int, np.ndarray]:
        """Per fragment id, the physical offsets of the rows (deleted ones included) of the fragments `refs`
        that match the filter, evaluated by Lance's SQL engine as LanceDB evaluates a filter: in one scan (so
        planned once, not once a fragment), in batches the evaluation budget sizes from each row's
        `input_bytes`."""
        self.verify(refs)
        fragments = [snapshot.dataset.get_fragment(ref.id) for ref in refs]
        what = "the filter"
        plan = EVALUATION.batches([judged.cost], input_bytes, what=what,
                                  in_flight=(READAHEAD + 1) * FRAGMENT_READAHEAD)
        with EVALUATION.reserve(plan.reserve, what=what), self._evaluating("INVALID_FILTER", what):
            found = snapshot.dataset.scanner(
                columns=[], filter=judged.text, with_row_id=True, with_row_address=True, include_deleted_rows=True,
                fragments=fragments, batch_size=plan.rows, batch_readahead=READAHEAD,
                fragment_readahead=FRAGMENT_READAHEAD).to_table().column("_rowaddr")
        addresses = found.drop_null().to_numpy().astype(np.uint64)
        owners, offsets = addresses >> np.uint64(32), (addresses & np.uint64(0xFFFFFFFF)).astype(np.int64)
        return {ref.id: offsets[owners == np.uint64(ref.id)] for ref in refs}

    # ----- staging ------------------------------------------------------------------------------------
    def stage(self, data: pa.Table, schema: pa.Schema) -> Staged:
        """Writes rows (conformed to `schema`) as fragments no version lists yet, durably and checksummed;
        a commit publishes them, `discard` removes them. Staging takes no lock, so a long add does not hold
        up other writers."""
        rows = conform(data, schema)
        if rows.num_rows == 0:
            return Staged((), schema, 0)
        written, checksums = self._write_fragments(rows, schema, same_schema=schema.equals(self.schema()))
        return Staged(tuple(written), schema, rows.num_rows, checksums)

    def _write_fragments(self, rows: pa.Table, schema: pa.Schema, *, same_schema: bool
                         ) -> tuple[list[Any], dict[str, tuple[int, str]]]:
        """Fragments written, fsynced and hashed (their checksum lines are appended by the commit that
        publishes them, so a discarded stage leaves no trace)."""
        with durable.storage_errors(self.directory / DATA_DIR / "fragment"):
            written = write_fragments(rows, self.uri, schema=schema, mode="append" if same_schema else "overwrite",
                                      max_rows_per_file=MAX_ROWS_PER_FILE)
        paths = [manifest.data_file(f) for fragment in written for f in fragment.files]
        try:
            checksums = self._make_durable(paths)
        except BaseException:
            for relative in paths:
                (self.directory / relative).unlink(missing_ok=True)
            raise
        return written, checksums

    def _make_durable(self, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
        """fsyncs files (and their folders) and returns their checksums, to be logged before the commit."""
        paths = list(paths)
        hashing = _HASHERS.submit(self.checksums.hash, paths)  # beside the fsyncs: both release the GIL
        folders = set()
        try:
            for relative in paths:
                durable.fsync_file(self.directory / relative)
                folders.add((self.directory / relative).parent)
            for folder in folders:
                durable.fsync_dir(folder)
        finally:
            checksums = hashing.result()
        return checksums

    def read_staged(self, staged: Staged) -> pa.Table:
        """The rows of staged fragments, read back (an append restaged for a schema that changed)."""
        from lance.file import LanceFileReader

        parts = [LanceFileReader(str(self.directory / relative)).read_all().to_table() for relative in staged.files]
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def discard(self, staged: Iterable[Staged]) -> None:
        for item in staged:
            for relative in item.files:
                (self.directory / relative).unlink(missing_ok=True)

    # ----- committing ---------------------------------------------------------------------------------
    def _commit(self, operation: Any, read_version: int, name: str) -> Manifest:
        """One Lance commit, made durable before it returns (the caller holds the write lock)."""
        transaction = Transaction(read_version=read_version, operation=operation, uuid=str(uuid.uuid4()),
                                  transaction_properties={OPERATION_KEY: name})
        try:
            with durable.storage_errors(self.directory / VERSIONS_DIR / "manifest"):
                committed = lance.LanceDataset.commit(self.uri, transaction, read_version=read_version,
                                                      max_retries=5)
        except OSError as exc:  # Lance reports a conflict as OSError / CommitConflictError
            if "conflict" in str(exc).lower() or "incompatible" in str(exc).lower():
                raise Aborted(f"table {self.name!r} was changed by another writer during the change; retry it",
                              reason="WRITE_CONFLICT", table=self.name) from None
            raise
        self._sync_commit(committed.version, transaction.uuid)
        with self._cache_lock:  # readers open their own dataset objects: pylance's are not shared across threads
            self._latest = (os.stat(self.directory / VERSIONS_DIR).st_mtime_ns, committed.version)
        return dataclasses.replace(manifest.from_dataset(committed), operation=name)

    def _sync_commit(self, version: int, transaction_id: str) -> None:
        manifest_path = manifest.manifest_file(self.directory, version)
        durable.fsync_file(manifest_path)
        hint = self.directory / VERSIONS_DIR / "latest_version_hint.json"
        if hint.exists():
            durable.fsync_file(hint)
        for txn in (self.directory / TRANSACTIONS_DIR).glob(f"*-{transaction_id}.txn"):
            durable.fsync_file(txn)
        for folder in (VERSIONS_DIR, TRANSACTIONS_DIR):
            if (self.directory / folder).is_dir():
                durable.fsync_dir(self.directory / folder)
        self.checksums.record([str(manifest_path.relative_to(self.directory))])

    def _base(self) -> Any:
        """The latest dataset, opened afresh under the write lock (authoritative) and used by the writer only:
        a pylance dataset a thread mutates (deleting rows of its fragments) must not be read by another."""
        return self._open(None)

    def commit_rows(self, staged: Sequence[Staged] = (), *, deletes: Deletes | None = None, overwrite: bool = False,
                    schema: pa.Schema | None = None, read_at: Manifest | None = None, operation: str = "append",
                    restage: Restage | None = None, still_wanted: Callable[[], bool] | None = None) -> Manifest:
        """Publishes staged fragments and deletions (physical offsets per fragment) as one version.

        `read_at`: the version the change was computed from (update, merge, delete by filter); Lance refuses
        the commit (WRITE_CONFLICT, retry it) if a conflicting change landed since. Staged rows must fit the
        latest schema, or `schema` when overwriting with a new one; `restage` (an append's) conforms them
        again, under the lock, if the schema changed meanwhile (an embedding function switched), instead of
        refusing. `still_wanted`, asked under the lock just before committing, can still call it off.
        """
        current = list(staged)
        written: list[str] = []
        try:
            with self._write_lock:
                base = self._base()
                if still_wanted is not None and not still_wanted():
                    raise Cancelled(f"the caller went away before the change to table {self.name!r} was "
                                    "committed; nothing was committed", reason="CALLER_GONE", table=self.name)
                base_schema, _ = manifest.split_schema(base.schema)
                target = schema if (overwrite and schema is not None) else base_schema
                if any(not item.schema.equals(target) for item in current if item.rows):
                    if restage is None or overwrite:
                        raise Aborted(f"table {self.name!r} changed its schema during the write; retry it",
                                      reason="WRITE_CONFLICT", table=self.name)
                    current[:] = restage(current, target)
                new = [f for item in current for f in item.fragments]
                for item in current:
                    self.checksums.append(item.checksums)
                op: LanceOperation.BaseOperation
                if overwrite:
                    op = LanceOperation.Overwrite(manifest.with_indexes(target, ()), new)
                    return self._commit(op, base.version, operation)
                read_version = read_at.version if read_at is not None else base.version
                updated, removed = self._deletions(base, deletes or {}, written)
                if not updated and not removed:
                    op = LanceOperation.Append(new)
                elif not new:
                    op = LanceOperation.Delete(updated, removed, f"vectorlane {operation}")
                else:
                    op = LanceOperation.Update(removed_fragment_ids=removed, updated_fragments=updated,
                                               new_fragments=new)
                return self._commit(op, read_version, operation)
        except BaseException:
            self.discard(current)
            for relative in written:
                (self.directory / relative).unlink(missing_ok=True)
            raise

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
            with durable.storage_errors(self.directory / DELETIONS_DIR / "deletion"):
                result = fragment.delete_rows(np.unique(np.asarray(offsets, dtype=np.int64)).tolist())
            if result is None:
                removed.append(int(fragment_id))
            else:
                path = manifest.deletion_path(result.id, result.deletion_file)
                written.append(path)
                self.checksums.append(self._make_durable([path]))
                updated.append(result)
        return updated, removed

    def restore(self, version: int) -> Manifest:
        """Makes the contents of `version` the latest, as a new version (history is kept)."""
        self.dataset(version)  # VERSION_NOT_FOUND before anything is written
        with self._write_lock:
            base = self._base()
            return self._commit(LanceOperation.Restore(version), base.version, f"restore:{version}")

    def set_indexes(self, change: Callable[[Manifest], list[dict[str, Any]]], read_at: Manifest | None = None,
                    operation: str = "create_index") -> Manifest:
        """Replaces the index catalog with `change(latest)`, in a version of its own."""
        with self._write_lock:
            base = self._base()
            current = manifest.from_dataset(base)
            indexes = change(current)
            if read_at is not None and not _rows_extend(read_at, base):
                raise Aborted(f"table {self.name!r} was overwritten or restored while the index was built; build "
                              "it again", reason="WRITE_CONFLICT", table=self.name)
            raw = manifest.with_indexes(current.schema, indexes).metadata or {}
            key = manifest.INDEXES_KEY.decode()
            value = raw.get(manifest.INDEXES_KEY)
            op = LanceOperation.UpdateConfig(schema_metadata_updates=LanceOperation.UpdateMap(
                {key: value.decode() if value is not None else None}))
            return self._commit(op, base.version, operation)

    def rewrite_columns(self, schema: pa.Schema, rewrite: Callable[[Snapshot, FragmentRef], pa.Table],
                        indexes: Callable[[Manifest], list[dict[str, Any]]], *, read_at: Manifest,
                        operation: str) -> Manifest:
        """Gives every fragment of the latest version new data files in `schema` (`rewrite` returns its
        physical rows, deleted ones included, in order), keeping fragment ids, row ids and deletions, with
        the index catalog `indexes` returns: one commit. Fragments written before the lock are reused."""
        written: list[str] = []
        done: dict[tuple[int, tuple[str, ...]], Any] = {}
        try:
            snapshot = self.snapshot()
            for ref in snapshot.manifest.fragments:  # most of the work, before taking the lock
                done[ref.data_key] = self._rewritten(snapshot, ref, schema, rewrite, written)
            with self._write_lock:
                base = self._base()
                current = manifest.from_dataset(base)
                if not _rows_extend(read_at, base):
                    raise Aborted(f"table {self.name!r} was overwritten, restored or altered during the switch",
                                  reason="WRITE_CONFLICT", table=self.name)
                latest = Snapshot(self, current, base)
                fragments = []
                for ref in current.fragments:
                    metadata = done.get(ref.data_key)
                    if metadata is None:  # added after the pass above: rewritten now, under the lock
                        metadata = self._rewritten(latest, ref, schema, rewrite, written)
                    fragments.append(dataclasses.replace(metadata, deletion_file=ref.metadata.deletion_file))
                target = manifest.with_indexes(schema, indexes(current))
                return self._commit(LanceOperation.Merge(fragments, target), base.version, operation)
        except BaseException:
            for relative in written:
                (self.directory / relative).unlink(missing_ok=True)
            raise

    def _rewritten(self, snapshot: Snapshot, ref: FragmentRef, schema: pa.Schema,
                   rewrite: Callable[[Snapshot, FragmentRef], pa.Table], written: list[str]) -> Any:
        rows = conform(rewrite(snapshot, ref), schema)
        if rows.num_rows != ref.physical_rows:
            raise RuntimeError("this is a bug: a rewritten fragment must keep every physical row")
        new, checksums = self._write_fragments(rows, schema, same_schema=False)
        written.extend(manifest.data_file(f) for fragment in new for f in fragment.files)
        self.checksums.append(checksums)  # before the commit; lines of files a failed switch removes are harmless
        if len(new) != 1:
            raise RuntimeError("this is a bug: a fragment was rewritten as several")
        return dataclasses.replace(new[0], id=ref.id, row_id_meta=ref.metadata.row_id_meta,
                                   created_at_version_meta=ref.metadata.created_at_version_meta,
                                   last_updated_at_version_meta=ref.metadata.last_updated_at_version_meta)

    # ----- schema changes ------------------------------------------------------------------------------
    def change_schema(self, target: SchemaEdit, *, read_at: Manifest, new_columns: NewColumns | None = None,
                      operation: str) -> Manifest:
        """One commit giving the latest version the schema `target` returns (LanceDB's add, alter and drop
        columns). `target(schema, indexes)` gets the latest schema, every field carrying its Lance field id
        (`field_ids.FIELD_ID`) and the `new_columns` appended, with the index catalog; it may drop, reorder and
        rename fields, change their nullability and the metadata (functions, catalog), and returns both.

        Without `new_columns` nothing but a manifest is written (a Lance Project). With them, each fragment
        gets a data file holding the new columns for every physical row (computed by Lance from SQL
        expressions, or by a function of some columns): written, fsynced and hashed before the lock for the
        fragments the latest version has, under it for any added since; then one Lance Merge. Lance refuses
        a Merge that renames or changes existing fields, so the caller asks for those in a change of their
        own."""
        written: list[str] = []
        done: dict[tuple[int, tuple[str, ...]], Any] = {}
        try:
            snapshot = self.snapshot()
            if new_columns is not None:
                for ref in snapshot.manifest.fragments:  # most of the work, before taking the lock
                    done[ref.data_key] = self._merged(snapshot, ref, new_columns, written)
            with self._write_lock:
                base = self._base()
                current = manifest.from_dataset(base)
                if not _rows_extend(read_at, base):
                    raise Aborted(f"table {self.name!r} was overwritten, restored or altered during the change; "
                                  "retry it", reason="WRITE_CONFLICT", table=self.name)
                fragments, new_fields = [], None
                if new_columns is not None:
                    latest = Snapshot(self, current, base)
                    for ref in current.fragments:
                        files = done.get(ref.data_key)
                        if files is None:  # added after the pass above: computed now, under the lock
                            files = self._merged(latest, ref, new_columns, written)
                        fragments.append(dataclasses.replace(ref.metadata, files=[*ref.metadata.files, *files[0]]))
                        new_fields = files[1]
                    if new_fields is None:  # no fragment to compute: the new fields' ids from an empty merge
                        new_fields = self._new_fields(base, new_columns)
                schema = field_ids.arrow_with_ids(base.lance_schema)
                if new_fields is not None:
                    schema = pa.schema([*schema, *new_fields], metadata=schema.metadata)
                served, indexes = manifest.split_schema(schema)
                edited, edited_indexes = target(served, indexes)
                wanted = field_ids.lance_schema(manifest.with_indexes(edited, edited_indexes))
                known = field_ids.all_ids(base.lance_schema) | field_ids.ids_in(new_fields or [])
                if not field_ids.all_ids(wanted) <= known:
                    raise FailedPrecondition(f"table {self.name!r}: this schema change would renumber nested "
                                             "fields (a map column); it is not supported", reason="UNSUPPORTED_CHANGE",
                                             table=self.name)
                op: LanceOperation.BaseOperation = (LanceOperation.Merge(fragments, wanted) if new_columns is not None
                                                    else LanceOperation.Project(wanted))
                return self._commit(op, base.version, operation)
        except BaseException:
            for relative in written:
                (self.directory / relative).unlink(missing_ok=True)
            raise

    def _merged(self, snapshot: Snapshot, ref: FragmentRef, new_columns: NewColumns, written: list[str]
                ) -> tuple[list[Any], list[pa.Field]]:
        """(the data files holding `new_columns` for the fragment's physical rows, made durable; the new
        fields with their ids)."""
        for path in ref.files:
            self.checksums.verify(path)
        fragment = snapshot.dataset.get_fragment(ref.id)
        given, batch_rows, reserve = new_columns.values, new_columns.batch_rows, 0
        values: Mapping[str, str] | Callable[[pa.RecordBatch], pa.RecordBatch] = given  # type: ignore[assignment]
        if isinstance(given, Mapping):
            what = f"computing {', '.join(list(given)[:4])}"
            reads = frozenset().union(*(judged.columns for judged in given.values()))
            plan = EVALUATION.batches([j.cost for j in given.values()],
                                      self._fragment_input_bytes(snapshot, ref, reads), what=what, in_flight=2)
            values = {n: j.text for n, j in given.items()}
            batch_rows, reserve = min(batch_rows, plan.rows), plan.reserve
        with EVALUATION.reserve(reserve, what="computing new columns"), self._computing(new_columns), \
                durable.storage_errors(self.directory / DATA_DIR / "fragment"):
            metadata, schema = fragment.merge_columns(values, columns=new_columns.reads, batch_size=batch_rows)
        old = set(ref.metadata.files and [f.path for f in ref.metadata.files])
        files = [f for f in metadata.files if f.path not in old]
        paths = [manifest.data_file(f) for f in files]
        written.extend(paths)
        self.checksums.append(self._make_durable(paths))
        known = {name for name in snapshot.dataset.schema.names}
        fields = [f.with_nullable(True) for f in field_ids.arrow_with_ids(schema) if f.name not in known]
        return files, fields  # nullable: rows added later hold null in them

    @contextlib.contextmanager
    def _computing(self, new_columns: NewColumns) -> Iterator[None]:
        """What Lance (or the function) says about values it cannot compute, as the caller's error."""
        try:
            yield
        except (ValueError, TypeError, RuntimeError, OSError, pa.ArrowException) as exc:
            if isinstance(exc, OSError) and "os error 28" in str(exc):
                raise
            raise InvalidArgument(f"table {self.name!r}: the new columns cannot be computed ({self._shown(exc)})",
                                  reason=new_columns.error_reason, table=self.name) from None

    def _new_fields(self, base: Any, new_columns: NewColumns) -> list[pa.Field]:
        """The new columns' fields on a table without fragments: their types, numbered after the largest id."""
        with self._computing(new_columns):
            if isinstance(new_columns.values, Mapping):
                computed = base.scanner(columns={n: j.text for n, j in new_columns.values.items()}).projected_schema
            else:
                reads = base.schema.empty_table().select(list(new_columns.reads or ()))
                computed = new_columns.values(pa.RecordBatch.from_pylist([], schema=reads.schema)).schema
        fields = [f.with_nullable(True) for f in computed]  # rows added later hold null in them
        return field_ids.numbered(fields, max(field_ids.all_ids(base.lance_schema), default=-1) + 1)

    # ----- maintenance -------------------------------------------------------------------------------
    def compact(self, *, target_rows_per_fragment: int = MAX_ROWS_PER_FILE) -> Manifest | None:
        """Lance's compaction as one `optimize:compact` commit: small fragments, and fragments with many
        deleted rows, are rewritten into fewer; stable row ids are kept, so FAISS labels stay valid. The new
        files are made durable before the commit. None when nothing needs compacting. Holds the write lock
        throughout, so no delete or update can race the rewrite."""
        with self._write_lock:
            base = self._base()
            plan = Compaction.plan(base, {"target_rows_per_fragment": target_rows_per_fragment,
                                          "materialize_deletions": True})
            if plan.num_tasks() == 0:
                return None
            results = [task.execute(base) for task in plan.tasks]
            paths = [manifest.data_file(f) for result in results for fragment in result.new_fragments
                     for f in fragment.files]
            try:
                self.checksums.append(self._make_durable(paths))
                op = LanceOperation.Rewrite(
                    groups=[LanceOperation.RewriteGroup(old_fragments=r.original_fragments,
                                                        new_fragments=r.new_fragments) for r in results],
                    rewritten_indices=[])
                return self._commit(op, plan.read_version, "optimize:compact")
            except BaseException:
                for relative in paths:
                    (self.directory / relative).unlink(missing_ok=True)
                raise

    def cleanup(self, older_than: datetime.timedelta) -> Cleaned:
        """Removes versions older than `older_than` (never the latest, never a tagged one) and the files only
        they referenced; what vectorlane keeps beside them (index files, checksum lines) follows."""
        with self._write_lock:
            base = self._base()
            stats = base.cleanup_old_versions(older_than=older_than, error_if_tagged_old_versions=False)
            kept = set(self.version_numbers())
            with self._cache_lock:
                for version in [v for v in self._datasets if v not in kept]:
                    del self._datasets[version]
            removed_indexes = self._collect_index_files(base)
            self.checksums.retain(lambda relative: (self.directory / relative).exists())
        return Cleaned(versions=int(stats.old_versions), bytes=int(stats.bytes_removed) + removed_indexes[1],
                       files=int(stats.data_files_removed + stats.deletion_files_removed +
                                 stats.transaction_files_removed) + removed_indexes[0])

    def _collect_index_files(self, dataset: Any) -> tuple[int, int]:
        folder = self.directory / INDEXES_DIR
        if not folder.is_dir():
            return 0, 0
        referenced: set[str] = set()
        for number in self.version_numbers():
            try:
                _, indexes = manifest.split_schema(dataset.checkout_version(number).schema)
            except (OSError, ValueError):
                continue
            referenced.update(entry["file"]["path"] for entry in indexes)
        files = size = 0
        for path in folder.iterdir():
            if path.is_file() and f"{INDEXES_DIR}/{path.name}" not in referenced:
                size += path.stat().st_size
                path.unlink()
                files += 1
        return files, size

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
            with durable.storage_errors(self.directory / REFS_DIR / "tag"):
                self._open(None).tags.create(tag, version)
            self._sync_tags()

    def delete_tag(self, tag: str) -> None:
        check_tag_name(tag)
        with self._write_lock:
            if tag not in self.tags():
                raise NotFound(f"table {self.name!r} has no tag {tag!r}", reason="TAG_NOT_FOUND", tag=tag)
            with durable.storage_errors(self.directory / REFS_DIR / "tag"):
                self._open(None).tags.delete(tag)
            self._sync_tags()

    def tagged_version(self, tag: str) -> int:
        check_tag_name(tag)
        found = self.tags().get(tag)
        if found is None:
            raise NotFound(f"table {self.name!r} has no tag {tag!r}", reason="TAG_NOT_FOUND", tag=tag)
        return found

    def _sync_tags(self) -> None:
        folder = self.directory / REFS_DIR
        if folder.is_dir():
            _sync_tree(folder)

    # convenience for tests and simple callers
    def append(self, data: pa.Table) -> Manifest:
        return self.commit_rows([self.stage(data, self.manifest().schema)])

    def overwrite(self, data: pa.Table, schema: pa.Schema | None = None) -> Manifest:
        """Replaces every row (and the schema, when given) in one new version; old versions stay readable."""
        target = schema or self.manifest().schema
        return self.commit_rows([self.stage(data, target)], overwrite=True, schema=target, operation="overwrite")


_HISTORY_BREAKS = ("Overwrite", "Restore", "Merge", "Project", "Rewrite", "DataReplacement")


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
    """The tables under one data directory: `<root>/<name>.lance`, as LanceDB lays them out."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, Table] = {}
        self._lock = threading.Lock()

    def path(self, name: str) -> Path:
        return self.root / f"{name}{SUFFIX}"

    def names(self) -> list[str]:
        found = []
        for entry in self.root.iterdir():
            if entry.name.endswith(SUFFIX) and not entry.name.startswith(".") and (entry / VERSIONS_DIR).is_dir():
                found.append(entry.name[: -len(SUFFIX)])
        return sorted(found)

    def open(self, name: str) -> Table:
        check_table_name(name)
        with self._lock:
            table = self._open.get(name)
            if table is None:
                directory = self.path(name)
                if not (directory / VERSIONS_DIR).is_dir():
                    raise TableNotFound(f"no table named {name!r}", table=name)
                table = self._open[name] = Table(directory, name)
            return table

    def exists(self, name: str) -> bool:
        check_table_name(name)
        return (self.path(name) / VERSIONS_DIR).is_dir()

    def create(self, name: str, schema: pa.Schema, data: pa.Table | None = None) -> Table:
        """Creates a table at version 1 (with `data` when given); TableExists if the name is taken. The
        dataset is written under a temporary name, made durable, and renamed into place whole."""
        check_table_name(name)
        staging = self.root / f".creating-{uuid.uuid4().hex}{SUFFIX}"
        try:
            rows = conform(data, schema) if data is not None else schema.empty_table()
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
                durable.fsync_dir(self.root)
                self._open.pop(name, None)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.open(name)

    def drop(self, name: str) -> Table | None:
        """Removes the table; returns its handle if one was open, so the caches built on it can go too."""
        check_table_name(name)
        with self._lock:
            directory = self.path(name)
            if not (directory / VERSIONS_DIR).is_dir():
                raise TableNotFound(f"no table named {name!r}", table=name)
            graveyard = self.root / f".dropped-{uuid.uuid4().hex}"
            os.rename(directory, graveyard)  # gone from view in one step
            durable.fsync_dir(self.root)
            dropped = self._open.pop(name, None)
        shutil.rmtree(graveyard, ignore_errors=True)
        return dropped


def _sync_tree(root: Path) -> None:
    for base, _, names in os.walk(root):
        for name in names:
            durable.fsync_file(Path(base) / name)
        durable.fsync_dir(Path(base))
