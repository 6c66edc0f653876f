"""LanceDB's `$var:` references in function settings, defined once for the client and both services.

`$var:name` names a value that is resolved where the function runs (for a function the embed service hosts,
from the service's own secrets; for one computed in the client, from `get_registry().set_var`);
`$var:name:default` carries a default used when the variable is not set. Secrets travel and are stored only
as references without a default (a default would be a literal key). A secret's name is letters, digits,
`_`, `.` and `-`, starting with a letter or `_`, at most 128 characters.
"""

from __future__ import annotations

import re
from typing import NamedTuple

PREFIX = "$var:"
_SECRET = re.compile(r"\$var:(?P<name>[A-Za-z_][A-Za-z0-9_.-]{0,127})")


class Reference(NamedTuple):
    name: str
    default: str | None  # None: no default given


def parse(value: object) -> Reference | None:
    """The reference `value` is (`$var:name` or `$var:name:default`), or None for any other value."""
    if not isinstance(value, str) or not value.startswith(PREFIX):
        return None
    name, has_default, default = value[len(PREFIX):].partition(":")
    return Reference(name, default if has_default else None)


def secret_name(value: object) -> str | None:
    """The name of the secret `value` refers to, when it is a reference a secret may be given as (well-formed,
    no default); else None."""
    found = _SECRET.fullmatch(value) if isinstance(value, str) else None
    return found["name"] if found else None


__all__ = ["PREFIX", "Reference", "parse", "secret_name"]
