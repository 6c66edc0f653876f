"""The result objects LanceDB's table methods return, with LanceDB's names and fields."""

from __future__ import annotations

from dataclasses import dataclass


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


__all__ = ["AddColumnsResult", "AddResult", "AlterColumnsResult", "DeleteResult", "DropColumnsResult",
           "MergeResult", "UpdateFieldMetadataResult", "UpdateResult"]
