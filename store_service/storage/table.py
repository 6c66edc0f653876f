"""Tables on disk: a directory per table holding fragments and versioned manifests.

Every change is a commit: new files are written and fsynced, then manifest N+1 is published atomically,
so a crash leaves version N or N+1 and never a mix. One writer per table at a time (a thread lock plus an
flock on the table's `.lock`, which also keeps a second process out); readers pin a manifest and read
immutable files, so they see a consistent snapshot while a writer commits.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import Aborted, Cancelled, InvalidArgument, TableExists, TableNotFound
from store_service.storage import durable, fragments, manifest
from store_service.storage.fragments import DATA_DIR, DELETIONS_DIR, ROW_ID
from store_service.storage.manifest import Manifest
from store_service.storage.names import check_table_name

TABLES_DIR = "tables"
VERSIONS_CACHED = 4  # versions whose files stay cached in memory (the latest and those just before)


@dataclass(frozen=True)
class Snapshot:
    """A table as of one version."""

    table: "Table"
    manifest: Manifest

    @property
    def version(self) -> int:
        return self.manifest.version

    @property
    def schema(self) -> pa.Schema:
        return self.manifest.schema

    def deleted_row_ids(self) -> np.ndarray:
        ref = self.manifest.deletions
        if ref is None:
            return np.empty(0, dtype=np.int64)
        return self.table._read(ref).column(ROW_ID).to_numpy()

    def missing_row_ids(self) -> np.ndarray:
        """Row ids below `next_row_id` this version does not hold, sorted: its deleted rows, the rows of
        fragments a delete dropped whole, and rows added after the version a restore went back to."""
        parts = [self.deleted_row_ids()]
        covered = 0
        for start, end in _ranges(self.manifest):
            if start > covered:
                parts.append(np.arange(covered, start, dtype=np.int64))
            covered = max(covered, end)
        if self.manifest.next_row_id > covered:
            parts.append(np.arange(covered, self.manifest.next_row_id, dtype=np.int64))
        return np.sort(np.concatenate(parts))

    def missing_count(self) -> int:
        return self.manifest.next_row_id - self.manifest.rows

    def to_arrow(self, *, with_row_ids: bool = False) -> pa.Table:
        """Every live row, in commit order; `_rowid` as the last column when asked for."""
        self.table._retain(self.manifest)
        parts = [self.table._read(ref) for ref in self.manifest.fragments]
        schema = self.schema.append(pa.field(ROW_ID, pa.int64(), nullable=False))
        data = pa.concat_tables([p.cast(schema) for p in parts]) if parts else schema.empty_table()
        deleted = self.deleted_row_ids()
        if len(deleted):
            data = data.filter(pc.invert(pc.is_in(data.column(ROW_ID), value_set=pa.array(deleted))))
        return data if with_row_ids else data.drop_columns([ROW_ID])


class Table:
    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        self.directory = directory
        self._thread_lock = threading.Lock()
        self._cache: dict[str, pa.Table] = {}  # fragment path@first row id -> rows with `_rowid`
        self._cached_versions: OrderedDict[int, frozenset[str]] = OrderedDict()  # what the cache keeps
        self._cache_lock = threading.Lock()
        self._latest: tuple[int, int] | None = None  # (versions dir mtime, latest version)

    # ----- reading ------------------------------------------------------------------------------------
    def version_numbers(self) -> list[int]:
        return manifest.versions(self.directory)

    def latest_version(self) -> int:
        """The latest version without listing the directory when nothing changed: commits in this process
        record it, and a commit by another process changes the versions directory's mtime."""
        stamp = os.stat(self.directory / manifest.VERSIONS_DIR).st_mtime_ns
        with self._cache_lock:
            if self._latest is not None and self._latest[0] == stamp:
                return self._latest[1]
        latest = self.version_numbers()[-1]
        with self._cache_lock:
            self._latest = (stamp, latest)
        return latest

    def manifest(self, version: int | None = None) -> Manifest:
        if version is None:
            version = self.latest_version()
        return manifest.read(self.directory, version, table=self.name)

    def snapshot(self, version: int | None = None) -> Snapshot:
        return Snapshot(self, self.manifest(version))

    def _retain(self, version: Manifest) -> None:
        """Keeps the files of `version` and the few versions read before it cached, and drops the rest, so
        the cache follows the versions in use rather than every fragment ever read."""
        with self._cache_lock:
            self._cached_versions[version.version] = frozenset(map(_cache_key, _files(version)))
            self._cached_versions.move_to_end(version.version)
            while len(self._cached_versions) > VERSIONS_CACHED:
                self._cached_versions.popitem(last=False)
            kept = frozenset().union(*self._cached_versions.values())
            for key in [k for k in self._cache if k not in kept]:
                del self._cache[key]

    def fragment(self, ref: manifest.FileRef) -> pa.Table:
        """The rows of one data fragment of this table, with their `_rowid` column."""
        return self._read(ref)

    def _read(self, ref: manifest.FileRef) -> pa.Table:
        """A data fragment with its `_rowid` column (ids are assigned by the manifest that lists it)."""
        key = _cache_key(ref)
        with self._cache_lock:
            cached = self._cache.get(key)
        if cached is None:
            cached = fragments.read(self.directory, ref, table=self.name)  # files are immutable: cache them
            if ref.first_row_id is not None:
                cached = _with_row_ids(cached, ref.first_row_id)
            with self._cache_lock:
                self._cache[key] = cached
        return cached

    # ----- writing ------------------------------------------------------------------------------------
    @contextmanager
    def _writer(self) -> Iterator[None]:
        with self._thread_lock, open(self.directory / ".lock", "a+b") as lock_file:
            fcntl.flock(lock_file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def commit(self, change: Callable[[Manifest], Manifest]) -> Manifest:
        """Applies `change` to the latest manifest and publishes the result as the next version."""
        with self._writer():
            base = self.manifest(self.version_numbers()[-1])  # listed under the lock: authoritative
            new = change(base)
            if new.version != base.version + 1:
                raise RuntimeError("this is a bug: a commit must publish exactly the next version")
            manifest.publish(self.directory, new)
            stamp = os.stat(self.directory / manifest.VERSIONS_DIR).st_mtime_ns
            with self._cache_lock:
                self._latest = (stamp, new.version)
            return new

    def stage(self, data: pa.Table, schema: pa.Schema) -> Staged:
        """Writes rows (conformed to `schema`) as a fragment no version lists yet; `commit_rows` publishes
        it, `discard` removes it. Staging needs no lock, so a long add does not hold up other writers."""
        rows = conform(data, schema)
        if rows.num_rows == 0:
            return Staged(None, schema)
        return Staged(fragments.write(self.directory, rows), schema)

    def discard(self, staged: Iterable[Staged]) -> None:
        for item in staged:
            if item.ref is not None:
                (self.directory / item.ref.path).unlink(missing_ok=True)

    def commit_rows(self, staged: Sequence[Staged] = (), *, delete_row_ids: np.ndarray | None = None,
                    overwrite: bool = False, schema: pa.Schema | None = None, read_at: Manifest | None = None,
                    operation: str = "append", restage: Restage | None = None,
                    still_wanted: Callable[[], bool] | None = None) -> Manifest:
        """Publishes staged fragments (their rows get the next row ids) and deletions as one version.

        `read_at`: the version the change was computed from (update, merge, delete by filter); the commit
        is refused (WRITE_CONFLICT, retry it) if the table was overwritten or restored since. Staged rows
        must have been conformed to the latest schema, or to `schema` when overwriting with a new one;
        `restage` (an append's) conforms them again, under the lock, if the schema changed meanwhile (an
        embedding function switched), instead of refusing the commit. `still_wanted`, asked under the lock
        just before publishing, can still call the change off (its caller went away).
        """
        current = list(staged)
        written: list[manifest.FileRef] = []  # deletion files this commit wrote

        def change(base: Manifest) -> Manifest:
            if still_wanted is not None and not still_wanted():
                raise Cancelled(f"the caller went away before the change to table {self.name!r} was committed; "
                                "nothing was committed", reason="CALLER_GONE", table=self.name)
            target = schema if (overwrite and schema is not None) else base.schema
            if any(not item.schema.equals(target) for item in current):
                if restage is None or overwrite:
                    raise Aborted(f"table {self.name!r} changed its schema during the write; retry it",
                                  reason="WRITE_CONFLICT", table=self.name)
                current[:] = restage(current, target)
            if read_at is not None and not extends(read_at, base):
                raise Aborted(f"table {self.name!r} was overwritten or restored during the change; retry it",
                              reason="WRITE_CONFLICT", table=self.name)
            deleting = np.unique(np.asarray(delete_row_ids if delete_row_ids is not None else [], dtype=np.int64))
            previous = Snapshot(self, base).deleted_row_ids() if len(deleting) else np.empty(0, dtype=np.int64)
            if read_at is not None and len(deleting) and not _held(base, previous, deleting).all():
                raise Aborted(f"rows of table {self.name!r} this change replaces were changed by another "
                              "writer meanwhile; retry it", reason="WRITE_CONFLICT", table=self.name)
            next_id = base.next_row_id
            refs = []
            for item in current:
                if item.ref is not None:
                    refs.append(item.ref.with_first_row_id(next_id))
                    next_id += item.ref.rows
            if overwrite:
                return base.successor(schema=target, fragments=tuple(refs), deletions=None, indexes=(),
                                      next_row_id=next_id, operation=operation, lineage=base.version + 1)
            kept, deletions = base.fragments, base.deletions
            merged = np.union1d(previous, deleting)
            if len(merged) != len(previous):
                kept, merged = _drop_whole(base.fragments, merged)
                deletions = (fragments.write(self.directory, pa.table({ROW_ID: pa.array(merged, type=pa.int64())}),
                                             DELETIONS_DIR) if len(merged) else None)
                if deletions is not None:
                    written.append(deletions)
            return base.successor(fragments=kept + tuple(refs), deletions=deletions,
                                  next_row_id=next_id, operation=operation)

        try:
            return self.commit(change)
        except BaseException:
            self.discard(current)
            for ref in written:
                (self.directory / ref.path).unlink(missing_ok=True)
            raise

    def append(self, data: pa.Table) -> Manifest:
        return self.commit_rows([self.stage(data, self.manifest().schema)])

    def overwrite(self, data: pa.Table, schema: pa.Schema | None = None) -> Manifest:
        """Replaces every row (and the schema, when given) in one new version; old versions stay readable."""
        target = schema or self.manifest().schema
        return self.commit_rows([self.stage(data, target)], overwrite=True, schema=target, operation="overwrite")

    def delete_row_ids(self, row_ids: np.ndarray) -> Manifest:
        return self.commit_rows(delete_row_ids=row_ids, operation="delete")

    def restore(self, version: int) -> Manifest:
        """Makes the contents of `version` the latest, as a new version (history is kept)."""
        old = self.manifest(version)

        def change(base: Manifest) -> Manifest:
            return base.successor(schema=old.schema, fragments=old.fragments, deletions=old.deletions,
                                  indexes=old.indexes, operation=f"restore:{version}", lineage=base.version + 1)

        return self.commit(change)


@dataclass(frozen=True)
class Staged:
    """A written fragment waiting for its commit (None when there were no rows), and the schema it fits."""

    ref: manifest.FileRef | None
    schema: pa.Schema


Restage = Callable[[list["Staged"], pa.Schema], list["Staged"]]


def extends(read_at: Manifest, base: Manifest) -> bool:
    """Whether `base` grew from `read_at` by appends, deletes and index changes only (no overwrite/restore)."""
    return base.lineage == read_at.lineage and base.schema.equals(read_at.schema)


def _ranges(version: Manifest) -> list[tuple[int, int]]:
    """The row-id range [start, end) of each data fragment of `version`, in id order."""
    return sorted((f.first_row_id, f.first_row_id + f.rows) for f in version.fragments if f.first_row_id is not None)


def _held(version: Manifest, deleted: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Which of `ids` are rows of `version`: inside one of its fragments and not deleted."""
    ranges = np.array(_ranges(version), dtype=np.int64).reshape(-1, 2)
    at = np.searchsorted(ranges[:, 0], ids, side="right") - 1
    inside = (at >= 0) & (ids < ranges[np.maximum(at, 0), 1]) if len(ranges) else np.zeros(len(ids), dtype=bool)
    return inside & ~np.isin(ids, deleted)


def _drop_whole(refs: tuple[manifest.FileRef, ...], deleted: np.ndarray
                ) -> tuple[tuple[manifest.FileRef, ...], np.ndarray]:
    """(fragments that keep a live row, the deleted ids inside them): a fragment whose every row is deleted
    leaves the manifest, and its ids leave the deletions."""
    kept, kept_ids = [], []
    for ref in refs:
        start, end = ref.first_row_id, ref.first_row_id + ref.rows
        inside = deleted[np.searchsorted(deleted, start):np.searchsorted(deleted, end)]
        if len(inside) < ref.rows:
            kept.append(ref)
            kept_ids.append(inside)
    return tuple(kept), (np.concatenate(kept_ids) if kept_ids else np.empty(0, dtype=np.int64))


def _files(version: Manifest) -> tuple[manifest.FileRef, ...]:
    return version.fragments + ((version.deletions,) if version.deletions else ())


def _cache_key(ref: manifest.FileRef) -> str:
    return f"{ref.path}@{ref.first_row_id}"


def conform(data: pa.Table, schema: pa.Schema) -> pa.Table:
    """`data` with the table's columns in the table's order and types; missing nullable columns are null."""
    names = set(schema.names)
    unknown = [n for n in data.column_names if n not in names]
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
            raise InvalidArgument(f"column {f.name!r} is required", reason="MISSING_COLUMN", column=f.name)
        if not f.nullable and columns[-1].null_count:
            raise InvalidArgument(f"column {f.name!r} may not hold nulls", reason="NULL_IN_REQUIRED_COLUMN",
                                  column=f.name)
    return pa.Table.from_arrays(columns, schema=schema)


def _with_row_ids(rows: pa.Table, first: int) -> pa.Table:
    return rows.append_column(pa.field(ROW_ID, pa.int64(), nullable=False),
                              pa.array(np.arange(first, first + rows.num_rows, dtype=np.int64)))


class TableStore:
    """The tables under one data directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.tables_dir = root / TABLES_DIR
        self.tables_dir.mkdir(parents=True, exist_ok=True)
        self._open: dict[str, Table] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return sorted(p.name for p in self.tables_dir.iterdir()
                      if not p.name.startswith(".") and (p / manifest.VERSIONS_DIR).is_dir())

    def open(self, name: str) -> Table:
        check_table_name(name)
        with self._lock:
            table = self._open.get(name)
            if table is None:
                directory = self.tables_dir / name
                if not (directory / manifest.VERSIONS_DIR).is_dir():
                    raise TableNotFound(f"no table named {name!r}", table=name)
                table = self._open[name] = Table(directory, name)
            return table

    def exists(self, name: str) -> bool:
        check_table_name(name)
        return (self.tables_dir / name / manifest.VERSIONS_DIR).is_dir()

    def create(self, name: str, schema: pa.Schema, data: pa.Table | None = None) -> Table:
        """Creates a table at version 1 (with `data` when given); TableExists if the name is taken."""
        check_table_name(name)
        staging = self.tables_dir / f".creating-{uuid.uuid4().hex}"
        try:
            for sub in (manifest.VERSIONS_DIR, DATA_DIR, DELETIONS_DIR):
                (staging / sub).mkdir(parents=True)
            refs: tuple[manifest.FileRef, ...] = ()
            rows = conform(data, schema) if data is not None else None
            if rows is not None and rows.num_rows:
                refs = (fragments.write(staging, rows).with_first_row_id(0),)
            first = Manifest(version=1, schema=schema, fragments=refs,
                             next_row_id=rows.num_rows if rows is not None else 0)
            manifest.publish(staging, first)
            for sub in (DATA_DIR, DELETIONS_DIR):
                durable.fsync_dir(staging / sub)
            with self._lock:
                target = self.tables_dir / name
                if target.exists():
                    raise TableExists(f"a table named {name!r} exists", table=name)
                os.rename(staging, target)  # the table appears whole, or not at all
                durable.fsync_dir(self.tables_dir)
                self._open.pop(name, None)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
        return self.open(name)

    def drop(self, name: str) -> None:
        check_table_name(name)
        with self._lock:
            directory = self.tables_dir / name
            if not (directory / manifest.VERSIONS_DIR).is_dir():
                raise TableNotFound(f"no table named {name!r}", table=name)
            graveyard = self.tables_dir / f".dropped-{uuid.uuid4().hex}"
            os.rename(directory, graveyard)  # gone from view in one step
            durable.fsync_dir(self.tables_dir)
            self._open.pop(name, None)
        shutil.rmtree(graveyard, ignore_errors=True)
