"""The result objects LanceDB's table methods return, with LanceDB's names and fields."""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class AddResult:
    version: int


@dataclass(frozen=True)
class DeleteResult:
    version: int
    num_deleted_rows: int = 0


@dataclass(frozen=True)
class UpdateResult:
    rows_updated: int
    version: int


@dataclass(frozen=True)
class MergeResult:
    version: int
    num_updated_rows: int
    num_inserted_rows: int
    num_deleted_rows: int
    num_attempts: int = 1  # the store commits a merge once, under the table's writer lock


@dataclass(frozen=True)
class AddColumnsResult:
    version: int


@dataclass(frozen=True)
class AlterColumnsResult:
    version: int


@dataclass(frozen=True)
class DropColumnsResult:
    version: int


@dataclass(frozen=True)
class UpdateFieldMetadataResult:
    version: int


@dataclass(frozen=True)
class IndexInfo:
    """An index as `list_indices()` describes it, with LanceDB's names (`name`, `index_type`: "IVF_FLAT",
    "IVF_PQ", "HNSW", "FLAT" or "FTS", `columns`), and the store's own: its metric (empty for FTS), the
    version it covers and the parameters it was built with (FTS: its tokenizer settings)."""

    name: str
    index_type: str
    columns: list[str]
    distance_type: str
    version: int
    parameters: dict[str, Any]
    index_version: int | None = None  # an FTS index's on-disk format as Lance records it (2, or 3 for 256 blocks)

    @property
    def vector_column(self) -> str:
        return self.columns[0]

    @property
    def index_details(self) -> dict[str, Any]:
        """LanceDB's name for an index's settings (an FTS index's tokenizer)."""
        return self.parameters


@dataclass(frozen=True)
class FtsToken:
    """A token an FTS tokenizer keeps (LanceDB's `tokenize`): its text, and its position among the text's
    tokens (counting those removed, such as stop words)."""

    text: str
    position: int


@dataclass(frozen=True)
class VersionInfo:
    """A version as `list_versions()` describes it: LanceDB's `version`, `timestamp` and `metadata` (which holds
    the operation that made it and the rows it has), readable as attributes or, as LanceDB's dicts, by key."""

    version: int
    timestamp: datetime.datetime
    metadata: dict[str, str]

    def __getitem__(self, key: str) -> Any:
        if key not in ("version", "timestamp", "metadata"):
            raise KeyError(key)
        return getattr(self, key)


__all__ = ["AddColumnsResult", "AddResult", "AlterColumnsResult", "DeleteResult", "DropColumnsResult", "FtsToken",
           "IndexInfo",
           "MergeResult", "UpdateFieldMetadataResult", "UpdateResult", "VersionInfo"]
