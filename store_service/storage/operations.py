"""The changes a table's writer commits, as typed operations: each becomes exactly one Lance commit, recorded
under its `name` in the transaction (what ListVersions shows).

An operation is data: everything slow (embedding, computing new columns, writing and fsyncing fragments,
building an index) is done before it is made, so the writer's lock is held only to check the operation
against the latest version and commit it. An operation that was prepared against a version the table has
moved on from in a way it can absorb raises `Moved` (the preparer does the missing part and commits again);
one that conflicts raises Aborted WRITE_CONFLICT. Nothing is ever half-applied.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from store_service.errors import Aborted, StorageFailed
from store_service.storage.manifest import Manifest

Deletes = Mapping[int, np.ndarray]  # fragment id -> physical row offsets to delete
DataKey = tuple[int, tuple[str, ...]]  # FragmentRef.data_key
Wanted = Callable[[], bool]  # whether the caller still wants the change (a flag read: no I/O)
SchemaEdit = Callable[[pa.Schema, tuple[dict[str, Any], ...]], tuple[pa.Schema, Sequence[dict[str, Any]]]]


class CommittedNotDurable(StorageFailed):
    """Lance committed the change, but making it durable failed (an fsync, the checksum log): the version
    exists and its files are in use, so nothing may be removed; the caller is told the change may not
    survive a power cut."""

    reason = "COMMIT_NOT_DURABLE"


class Moved(Aborted):
    """The latest version moved past what the operation was prepared for in a way a new preparation absorbs
    (rows appended after a column rewrite was computed, a schema switched under an append's staged rows)."""

    reason = "WRITE_CONFLICT"


@dataclass(frozen=True)
class Staged:
    """Fragments written for a commit that has not happened (none when there were no rows), and the schema
    they fit."""

    fragments: tuple[Any, ...]  # lance FragmentMetadata
    schema: pa.Schema
    rows: int
    checksums: dict[str, tuple[int, str]] = field(default_factory=dict, compare=False)

    @property
    def files(self) -> list[str]:
        from store_service.storage import manifest

        return [manifest.data_file(f) for fragment in self.fragments for f in fragment.files]


@dataclass(frozen=True)
class Append:
    """New rows, staged for the latest schema: Moved if the schema changed since (they are staged again)."""

    staged: tuple[Staged, ...]
    wanted: Wanted | None = None
    name: str = "append"


@dataclass(frozen=True)
class Overwrite:
    """Every row replaced (and the schema, with no indexes): LanceDB's mode="overwrite"."""

    staged: tuple[Staged, ...]
    schema: pa.Schema
    wanted: Wanted | None = None
    name: str = "overwrite"


@dataclass(frozen=True)
class Delete:
    """Rows deleted by physical offset, as computed from `read_at` (Lance refuses it if they changed since)."""

    deletes: Deletes
    read_at: Manifest
    name: str = "delete"


@dataclass(frozen=True)
class Update:
    """Rows replaced by new versions of them: their old copies deleted and the new ones added in one commit."""

    staged: tuple[Staged, ...]
    deletes: Deletes
    read_at: Manifest
    name: str = "update"


@dataclass(frozen=True)
class Merge:
    """LanceDB's merge_insert: matched rows replaced, new rows inserted, unmatched target rows deleted."""

    staged: tuple[Staged, ...]
    deletes: Deletes
    read_at: Manifest
    wanted: Wanted | None = None
    name: str = "merge_insert"


@dataclass(frozen=True)
class Restore:
    """The contents of `version` as a new latest version (history kept)."""

    version: int

    @property
    def name(self) -> str:
        return f"restore:{self.version}"


@dataclass(frozen=True)
class CreateIndex:
    """An index entry listed in the catalog; one on the same column or with the same name is replaced only
    when `replace` (else INDEX_EXISTS). Refused if the rows were overwritten or restored since `read_at`."""

    entry: dict[str, Any]
    replace: bool
    read_at: Manifest
    name: str = "create_index"


@dataclass(frozen=True)
class DropIndex:
    index: str
    name: str = "drop_index"


@dataclass(frozen=True)
class CreateTextIndex:
    """A full-text index Lance built over the fragments of `read_at` (its files durable, with `checksums`),
    listed in Lance's index section; the column's FTS index, or the index of the same name, is replaced only
    when `replace` (else INDEX_EXISTS). Refused if the rows were overwritten or restored since `read_at`."""

    index: Any  # lance.dataset.Index
    column: str
    replace: bool
    files: tuple[str, ...]
    checksums: Mapping[str, tuple[int, str]]
    read_at: Manifest
    name: str = "create_fts_index"
    rebuilds: str | None = None  # an optimize's catch-up: the uuid of the index it rebuilt, which must still be
    # the one listed under that name (one dropped or replaced meanwhile is not brought back: Moved)


@dataclass(frozen=True)
class DropTextIndex:
    index: str
    name: str = "drop_fts_index"


@dataclass(frozen=True)
class CatchUpIndexes:
    """Index entries whose files now cover rows added since they were built, by index name; an index
    replaced meanwhile (its entry differs from `stale`) keeps its own."""

    fresh: Mapping[str, dict[str, Any]]
    stale: Mapping[str, dict[str, Any]]
    read_at: Manifest
    name: str = "optimize:indexes"


@dataclass(frozen=True)
class RewriteColumns:
    """Every fragment given new data files in `schema` (a function switch), keeping ids, row ids and
    deletions, with the index entries of `column` replaced by `indexes`. `fragments` are the rewritten
    fragments by data key: Moved if the latest version holds a fragment they lack."""

    schema: pa.Schema
    fragments: Mapping[DataKey, Any]
    column: str
    indexes: tuple[dict[str, Any], ...]
    read_at: Manifest
    name: str = "rewrite_columns"
    rebuilt_from: frozenset[str] = frozenset()  # the index files `indexes` were rebuilt from: listed only if
    # one of them still is (an index dropped or replaced meanwhile is not brought back over the caller's)


@dataclass(frozen=True)
class ChangeSchema:
    """LanceDB's add, alter and drop columns: `edit` (a pure function of the schema and the index catalog)
    gives the new schema. With `new_files` (by data key: the files holding new columns for that fragment's
    physical rows, and the new fields), one Lance Merge; Moved if a fragment lacks them. Without, a Project."""

    edit: SchemaEdit
    read_at: Manifest
    new_files: Mapping[DataKey, tuple[list[Any], list[pa.Field]]] | None = None
    new_fields: tuple[pa.Field, ...] | None = None  # the new columns' fields when there is no fragment
    name: str = "change_schema"


@dataclass(frozen=True)
class Compact:
    """Lance's compaction, executed (`maintenance.prepare_compaction`): the rewrite results, the version they
    were planned on, the deletion file each original fragment had then (Moved if one changed since), and the
    new files with their checksums."""

    results: tuple[Any, ...]  # lance.optimize.RewriteResult
    read_version: int
    originals: Mapping[int, str | None]
    files: tuple[str, ...]
    checksums: Mapping[str, tuple[int, str]]
    name: str = "optimize:compact"


Operation = (Append | Overwrite | Delete | Update | Merge | Restore | CreateIndex | DropIndex | CreateTextIndex
             | DropTextIndex | CatchUpIndexes | RewriteColumns | ChangeSchema | Compact)

REPLACES_ROWS = (Overwrite, Restore)  # after these, the rows (and fragments) of before are no one's


__all__ = ["Append", "CatchUpIndexes", "ChangeSchema", "CommittedNotDurable", "Compact", "CreateIndex",
           "CreateTextIndex", "Delete", "Deletes", "DropIndex", "DropTextIndex",
           "Merge", "Moved", "Operation", "Overwrite", "Restore", "RewriteColumns", "Staged", "Update"]
