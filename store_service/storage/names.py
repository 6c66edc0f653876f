"""Table names: letters, digits, `_`, `-` and `.`, starting with a letter, digit or `_`, at most 128
characters. No separator, no `..`: a name can never address anything outside the data directory."""

from __future__ import annotations

import re

from store_service.errors import InvalidArgument, InvalidTableName

MAX_LENGTH = 128
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def check_table_name(name: str) -> str:
    if not name:
        raise InvalidTableName("the table name is empty", table=name)
    if len(name) > MAX_LENGTH:
        raise InvalidTableName(f"table names are at most {MAX_LENGTH} characters; this one has {len(name)}",
                               table=name[:MAX_LENGTH] + "…")
    if not _NAME.fullmatch(name) or ".." in name:
        raise InvalidTableName(f"table name {name!r} may hold only letters, digits, '_', '-' and '.', must "
                               "start with a letter, digit or '_', and may not contain '..'", table=name)
    return name


def check_tag_name(tag: str) -> str:
    """Tags follow the same rule as table names (Lance stores each as a file named after it)."""
    if not tag or len(tag) > MAX_LENGTH or not _NAME.fullmatch(tag) or ".." in tag:
        raise InvalidArgument(f"tag {tag[:MAX_LENGTH]!r} must be 1-{MAX_LENGTH} letters, digits, '_', '-' or '.', "
                              "starting with a letter, digit or '_', without '..'", reason="INVALID_TAG")
    return tag
