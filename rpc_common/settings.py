"""Service settings as frozen dataclasses where every field is a flag and an environment variable.

Flags win over the environment (`VECTORLANE_<FIELD>`), the environment over the dataclass defaults. Lists
are given comma-separated (`--image-roots /data/images,/srv/pics`). Both services load theirs this way.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import field
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "VECTORLANE_"
T = TypeVar("T")


def setting(default: Any, help: str, secret: bool = False) -> Any:
    """A settings field with its help text; a secret one is left out of the settings' repr (and so of logs)."""
    return field(default=default, metadata={"help": help, "secret": secret}, repr=not secret)


def load(cls: type[T], prog: str, description: str, argv: Sequence[str] | None = None,
         environ: Mapping[str, str] | None = None) -> T:
    env = os.environ if environ is None else environ
    parser = argparse.ArgumentParser(prog=prog, description=description)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    for f in fields:
        flag = "--" + f.name.replace("_", "-")
        help_text = f"{f.metadata['help']} [env {ENV_PREFIX + f.name.upper()}; default {f.default!r}]"
        if f.type == "bool":
            parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=f.name, default=None, help=help_text)
    args = parser.parse_args(argv)
    values: dict[str, Any] = {}
    for f in fields:
        raw = getattr(args, f.name)
        if raw is None:
            raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is None:
            continue
        try:
            values[f.name] = parse_value(f.type, raw)
        except ValueError as exc:
            parser.error(f"--{f.name.replace('_', '-')}: {exc}")
    try:
        return cls(**values)
    except ValueError as exc:  # settings that are each well-formed but refused (an empty token list...)
        parser.error(str(exc))


def parse_value(kind: Any, raw: Any) -> Any:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip()
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"not a boolean: {text!r}")
    if kind == "int":
        return int(text)
    if kind == "float":
        return float(text)
    if kind == "Path":
        return Path(text).expanduser()
    if kind == "tuple[Path, ...]":
        return tuple(Path(p).expanduser() for p in text.split(",") if p.strip())
    if kind in ("tuple[str, ...]", "tuple[str, ...] | None"):
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if kind == "Path | None":
        return Path(text).expanduser() if text else None
    return text
