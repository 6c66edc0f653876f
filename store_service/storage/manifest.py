"""One version of a table as the store sees it: read from a Lance manifest, never written by hand.

Lance keeps the versions (`_versions/*.manifest`); this module gives the store an immutable summary of one:
its schema (with the `embedding_functions` metadata LanceDB reads), its fragments with their deletion
files, and vectorlane's index catalog. The catalog lives in the schema metadata under `vectorlane:indexes`
so a commit that changes a column and its index (a function switch) is one Lance commit; it is taken out
of the schema the store serves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

if TYPE_CHECKING:
    from store_service.storage.location import Entry, Location

INDEXES_KEY = b"vectorlane:indexes"
OPERATION_KEY = "vectorlane.operation"  # the store's name for the change, in the Lance transaction
JOB_KEY = "vectorlane.job"  # the job (an index build, an optimization) a commit belongs to, in the transaction
VERSIONS_DIR = "_versions"
DATA_DIR = "data"
DELETIONS_DIR = "_deletions"
TRANSACTIONS_DIR = "_transactions"
_V2_BASE = (1 << 64) - 1  # Lance's v2 manifest names count down from u64::MAX


@dataclass(frozen=True)
class FragmentRef:
    """A Lance fragment of one version: its immutable data files and the deletion file of that version."""

    id: int
    files: tuple[str, ...]  # relative to the dataset: data/<name>.lance
    physical_rows: int
    deletion: str | None = None  # relative to the dataset
    deleted: int = 0
    metadata: Any = field(default=None, compare=False, repr=False)  # lance.fragment.FragmentMetadata

    @property
    def rows(self) -> int:
        return self.physical_rows - self.deleted

    @property
    def data_key(self) -> tuple[int, tuple[str, ...]]:
        """What identifies the fragment's rows across versions (its deletions may differ)."""
        return (self.id, self.files)


@dataclass(frozen=True)
class Manifest:
    version: int
    schema: pa.Schema  # as served: without the index catalog
    fragments: tuple[FragmentRef, ...] = ()
    indexes: tuple[dict[str, Any], ...] = ()
    operation: str = ""
    timestamp: float = 0.0
    row_count: int | None = None  # given by a history listing, which has no fragments

    @property
    def rows(self) -> int:
        return self.row_count if self.row_count is not None else sum(f.rows for f in self.fragments)


def deletion_path(fragment_id: int, deletion: Any) -> str:
    suffix = "arrow" if deletion.file_type == "array" else "bin"
    return f"{DELETIONS_DIR}/{fragment_id}-{deletion.read_version}-{deletion.id}.{suffix}"


def data_file(file: Any) -> str:
    """A Lance DataFile's path relative to the dataset. pylance 13's `DataFile.path` property defines a class
    on every call (36 us: 3.6 ms per version of a 100-fragment table); its field `_path` is read when present."""
    path = getattr(file, "_path", None)
    return f"{DATA_DIR}/{path if isinstance(path, str) else file.path}"


def fragment_ref(metadata: Any) -> FragmentRef:
    deletion = metadata.deletion_file
    return FragmentRef(
        id=int(metadata.id),
        files=tuple(data_file(f) for f in metadata.files),
        physical_rows=int(metadata.physical_rows),
        deletion=deletion_path(metadata.id, deletion) if deletion is not None else None,
        deleted=int(deletion.num_deleted_rows) if deletion is not None else 0,
        metadata=metadata,
    )


def split_schema(schema: pa.Schema) -> tuple[pa.Schema, tuple[dict[str, Any], ...]]:
    """(the schema as served, the index catalog it carries)."""
    metadata = dict(schema.metadata or {})
    raw = metadata.pop(INDEXES_KEY, None)
    indexes: tuple[dict[str, Any], ...] = tuple(json.loads(raw)) if raw else ()
    return schema.with_metadata(metadata) if metadata else schema.remove_metadata(), indexes


def with_indexes(schema: pa.Schema, indexes: Sequence[dict[str, Any]]) -> pa.Schema:
    metadata = dict(schema.metadata or {})
    metadata.pop(INDEXES_KEY, None)
    if indexes:
        metadata[INDEXES_KEY] = json.dumps(list(indexes)).encode()
    return schema.with_metadata(metadata) if metadata else schema.remove_metadata()


def from_dataset(dataset: Any) -> Manifest:
    schema, indexes = split_schema(dataset.schema)
    fragments = tuple(fragment_ref(f.metadata) for f in dataset.get_fragments())
    return Manifest(version=int(dataset.version), schema=schema, fragments=fragments, indexes=indexes)


def manifest_file(dataset_dir: Path, version: int) -> Path:
    """The manifest file of `version` (v2 naming, which vectorlane writes; v1 for older LanceDB tables)."""
    v2 = dataset_dir / VERSIONS_DIR / f"{_V2_BASE - version:020d}.manifest"
    return v2 if v2.exists() else dataset_dir / VERSIONS_DIR / f"{version}.manifest"


def manifest_name(files: "Location", version: int) -> str:
    """`manifest_file` relative to the dataset, at any location."""
    v2 = v2_manifest_name(version)
    return v2 if files.exists(v2) else f"{VERSIONS_DIR}/{version}.manifest"


def v2_manifest_name(version: int) -> str:
    """The manifest's name, relative to the dataset, in Lance's v2 naming (what vectorlane's tables use)."""
    return f"{VERSIONS_DIR}/{_V2_BASE - version:020d}.manifest"


def listed_versions(files: "Location") -> list[int]:
    """The versions whose manifests a listing of the versions folder shows, at any location."""
    return sorted(listed_manifests(files))


def listed_manifests(files: "Location") -> dict[int, "Entry"]:
    """The manifests a listing of the versions folder shows, by version."""
    found = {}
    for entry in files.entries(VERSIONS_DIR):
        number = _number_of(entry.name)
        if number is not None:
            found[number] = entry
    return found


def _number_of(name: str) -> int | None:
    if not name.endswith(".manifest") or name.startswith("."):
        return None
    try:
        number = int(name[: -len(".manifest")])
    except ValueError:
        return None
    return _V2_BASE - number if number > (1 << 63) else number


def committed_after(versions_dir: str, version: int) -> bool:
    """Whether a version after `version` was committed: its manifest file exists under either naming (two
    stats; Lance commits versions one after another, each with put-if-not-exists)."""
    return os.path.exists(f"{versions_dir}/{_V2_BASE - version - 1:020d}.manifest") or \
        os.path.exists(f"{versions_dir}/{version + 1}.manifest")


def version_files(dataset_dir: Path) -> dict[int, Path]:
    """Every manifest file of the dataset by version number."""
    found = {}
    try:
        entries = list((dataset_dir / VERSIONS_DIR).iterdir())
    except FileNotFoundError:
        return {}
    for path in entries:
        number = _number_of(path.name)
        if number is not None:
            found[number] = path
    return found


def versions(dataset_dir: Path) -> list[int]:
    return sorted(version_files(dataset_dir))
