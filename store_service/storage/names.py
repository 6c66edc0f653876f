"""Table names: letters, digits, `_`, `-` and `.`, starting with a letter, digit or `_`, at most 128
characters. No separator, no `..`: a name can never address anything outside the data directory. Nor a
trailing `.` (`x.` would be the folder `x..lance`), nor a name ending in `.lance` (`t.lance` would be the
folder `t.lance.lance`, and read by tools as the table `t.lance` or the dataset `t.lance`): names LanceDB's
layout cannot hold unambiguously."""

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
    if not _well_formed(name):
        raise InvalidTableName(f"table name {name!r} may hold only letters, digits, '_', '-' and '.', must "
                               "start with a letter, digit or '_', may not contain '..' nor end in '.' or "
                               "'.lance'", table=name)
    return name


def _well_formed(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and ".." not in name and not name.endswith(".") \
        and not name.lower().endswith(".lance")


def check_tag_name(tag: str) -> str:
    """Tags follow the same rule as table names (Lance stores each as a file named after it)."""
    if not tag or len(tag) > MAX_LENGTH or not _well_formed(tag):
        raise InvalidArgument(f"tag {tag[:MAX_LENGTH]!r} must be 1-{MAX_LENGTH} letters, digits, '_', '-' or '.', "
                              "starting with a letter, digit or '_', without '..' and not ending in '.' or "
                              "'.lance'", reason="INVALID_TAG")
    return tag


def check_version(version: int) -> int:
    """A version number as a caller may give one: negative is INVALID_VERSION everywhere (0 means "the
    latest" where an RPC says so, and is never a version of its own); a positive one that the table does
    not have is VERSION_NOT_FOUND, decided where it is looked up."""
    if version < 0:
        raise InvalidArgument(f"version {version} is negative; versions count from 1 (0: the latest, where "
                              "allowed)", reason="INVALID_VERSION", version=version)
    return version
