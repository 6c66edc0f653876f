"""LanceDB's module for connection types, under the same name so type hints written for LanceDB
(`db: DBConnection`) import unchanged. vectorlane has one connection class for both transports today."""

from __future__ import annotations

from vectorlane.connection import Connection

DBConnection = Connection
LanceDBConnection = Connection
AsyncConnection = Connection

__all__ = ["AsyncConnection", "DBConnection", "LanceDBConnection"]
