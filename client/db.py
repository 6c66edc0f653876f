"""LanceDB's module for connection types, under the same name so type hints written for LanceDB
(`db: DBConnection`, `db: AsyncConnection`) import unchanged."""

from __future__ import annotations

from vectorlane.connection import AsyncConnection, Connection

DBConnection = Connection
LanceDBConnection = Connection

__all__ = ["AsyncConnection", "DBConnection", "LanceDBConnection"]
