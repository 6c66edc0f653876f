"""The result objects LanceDB's table methods return, with LanceDB's names and fields."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AddColumnsResult:
    version: int


@dataclass(frozen=True)
class AlterColumnsResult:
    version: int


@dataclass(frozen=True)
class DropColumnsResult:
    version: int


__all__ = ["AddColumnsResult", "AlterColumnsResult", "DropColumnsResult"]
