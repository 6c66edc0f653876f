"""Versioned manifests: version N of a table lists its schema, fragments, deleted row ids and indexes.

A delete that covers every row of a fragment drops the fragment from the next manifest (older versions keep
it), so memory and manifests follow the rows a table holds, not every row it ever held.

A manifest is JSON at `_versions/<N>.manifest`, published by atomic rename after fsync; the highest N
present is the table's latest version. Manifests are immutable once published.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from store_service.errors import DataLoss, VersionNotFound
from store_service.storage import durable

FORMAT = 1
VERSIONS_DIR = "_versions"
SUFFIX = ".manifest"


@dataclass(frozen=True)
class FileRef:
    """A file of the table's, with what it must contain: its row count and checksum."""

    path: str  # relative to the table directory
    rows: int
    sha256: str
    bytes: int
    first_row_id: int | None = None  # data fragments: their rows' ids run from here, assigned at commit

    def with_first_row_id(self, first: int) -> "FileRef":
        return dataclasses.replace(self, first_row_id=first)


@dataclass(frozen=True)
class Manifest:
    version: int
    schema: pa.Schema
    fragments: tuple[FileRef, ...] = ()
    deletions: FileRef | None = None  # one file listing every deleted row id of this version
    next_row_id: int = 0
    indexes: tuple[dict[str, Any], ...] = ()
    operation: str = "create"
    timestamp: float = field(default_factory=time.time)
    lineage: int = 1  # the version whose create, overwrite or restore began this version's row history

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.fragments) - (self.deletions.rows if self.deletions else 0)

    def successor(self, **changes: Any) -> "Manifest":
        return dataclasses.replace(self, version=self.version + 1, timestamp=time.time(), **changes)

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT,
            "version": self.version,
            "schema": base64.b64encode(self.schema.serialize().to_pybytes()).decode(),
            "fragments": [dataclasses.asdict(f) for f in self.fragments],
            "deletions": dataclasses.asdict(self.deletions) if self.deletions else None,
            "next_row_id": self.next_row_id,
            "indexes": list(self.indexes),
            "operation": self.operation,
            "timestamp": self.timestamp,
            "lineage": self.lineage,
        }
        return json.dumps(body, indent=1).encode()

    @classmethod
    def from_json(cls, data: bytes, *, table: str) -> "Manifest":
        try:
            body = json.loads(data)
            if body.get("format") != FORMAT:
                raise ValueError(f"unknown manifest format {body.get('format')!r}")
            schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(body["schema"])))
            return cls(
                version=int(body["version"]),
                schema=schema,
                fragments=tuple(FileRef(**f) for f in body["fragments"]),
                deletions=FileRef(**body["deletions"]) if body["deletions"] else None,
                next_row_id=int(body["next_row_id"]),
                indexes=tuple(body["indexes"]),
                operation=str(body["operation"]),
                timestamp=float(body["timestamp"]),
                lineage=int(body.get("lineage", 1)),
            )
        except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:
            raise DataLoss(f"table {table!r}: a manifest is unreadable ({exc})", reason="MANIFEST_CORRUPT",
                           table=table) from None


def manifest_path(table_dir: Path, version: int) -> Path:
    return table_dir / VERSIONS_DIR / f"{version:020d}{SUFFIX}"


def versions(table_dir: Path) -> list[int]:
    found = []
    for path in (table_dir / VERSIONS_DIR).iterdir():
        if path.name.endswith(SUFFIX) and not path.name.startswith("."):
            try:
                found.append(int(path.name[: -len(SUFFIX)]))
            except ValueError:
                continue
    return sorted(found)


def read(table_dir: Path, version: int, *, table: str) -> Manifest:
    try:
        data = manifest_path(table_dir, version).read_bytes()
    except FileNotFoundError:
        raise VersionNotFound(f"table {table!r} has no version {version}", table=table, version=version) from None
    manifest = Manifest.from_json(data, table=table)
    if manifest.version != version:
        raise DataLoss(f"table {table!r}: manifest {version} says it is version {manifest.version}",
                       reason="MANIFEST_CORRUPT", table=table)
    return manifest


def publish(table_dir: Path, manifest: Manifest) -> None:
    durable.publish(manifest_path(table_dir, manifest.version), manifest.to_json())
