"""LanceDB's `$var:` settings for functions computed in this process: `get_registry().set_var("key", v)`, then
`create(api_key="$var:key")` (or `"$var:device:cpu"`, with a default used when the variable is not set).

Local functions resolve every variable here. A function the embed service hosts gets only its
`$var:name:default` settings resolved here (runtime choices such as a device); its `$var:name` references go
as written, and the embed service resolves them from its own mounted secrets: a secret never passes through
the client or into a table's metadata.
"""

from __future__ import annotations

import threading
from typing import Any

from vectorlane_contract.references import PREFIX, parse

__all__ = ["PREFIX", "get_var", "reset", "resolve_defaulted_variables", "resolve_variables", "set_var"]

_variables: dict[str, str] = {}
_lock = threading.Lock()


def set_var(name: str, value: str) -> None:
    if not isinstance(name, str) or not name or ":" in name:
        raise ValueError(f"a variable name is a non-empty string without colons, not {name!r}")
    with _lock:
        _variables[name] = value


def get_var(name: str) -> str:
    with _lock:
        return _variables[name]


def reset() -> None:
    with _lock:
        _variables.clear()


def resolve_defaulted_variables(settings: dict[str, Any]) -> dict[str, Any]:
    """`settings` with each `$var:name:default` value resolved (the variable, or else its default); plain
    `$var:name` references are left as they are."""
    resolved = dict(settings)
    for key, value in settings.items():
        reference = parse(value)
        if reference is not None and reference.default is not None:
            with _lock:
                resolved[key] = _variables.get(reference.name, reference.default)
    return resolved


def resolve_variables(settings: dict[str, Any], sensitive_keys: list[str]) -> dict[str, Any]:
    """`settings` with each `$var:name[:default]` value replaced; a sensitive key given literally is refused."""
    resolved = dict(settings)
    for key, value in settings.items():
        if not isinstance(value, str):
            continue
        reference = parse(value)
        if reference is None:
            if key in sensitive_keys:
                raise ValueError(f"Sensitive key '{key}' cannot be set to a hardcoded value: give it as "
                                 f"'$var:name' and set the variable with get_registry().set_var(name, value)")
            continue
        name = reference.name
        with _lock:
            found = _variables.get(name)
        if found is not None:
            resolved[key] = found
        elif reference.default is not None:
            resolved[key] = reference.default
        else:
            raise ValueError(f"Variable '{name}' not found in registry: set it with "
                             f"get_registry().set_var({name!r}, value) (variables last for the process)")
    return resolved
