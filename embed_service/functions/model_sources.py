"""Where a function's model may come from: files under the operator's model roots, a model hub when the
operator allows downloads, and its own Python code only when the operator allows remote code.

A caller names models in settings (`name`, `pretrained`, a config file...), and the libraries behind the
functions resolve such a value as a path whenever something exists there, relative to the working directory
included. So every value that is not a plain hub id or a built-in name is treated as a path and resolved with
`realpath` (links and `..` followed) against the roots: a relative value is looked up inside each root in
turn, an absolute one must land inside one. Anything else is refused, and a value naming nothing gets the
very same error as a value naming a file outside the roots, so a caller cannot probe which files exist.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from embed_service.errors import InvalidSettings, PermissionDenied

# What a hub id looks like: `name` or `org/name`, no path syntax. Anything else can only be a path.
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")
MAX_VALUE_LENGTH = 4096


@dataclass(frozen=True)
class ModelSources:
    roots: tuple[Path, ...] = ()
    allow_downloads: bool = False
    allow_remote_code: bool = False

    def find_local(self, value: str, *, folder: bool = False) -> Path | None:
        """The real path `value` names under a model root, if it names an existing file (or folder) there."""
        if not value or len(value) > MAX_VALUE_LENGTH or "\x00" in value:
            return None
        given = Path(value).expanduser() if value.startswith("~") else Path(value)
        for root in self.roots:
            real_root = Path(os.path.realpath(root))
            candidate = given if given.is_absolute() else real_root / given
            real = Path(os.path.realpath(candidate))
            if not real.is_relative_to(real_root):
                continue
            if (real.is_dir() if folder else real.is_file()):
                return real
        return None

    def hub(self, value: str, *, setting: str, function: str, path_first: bool = True) -> str:
        """`value` as a hub id (or tag) for the library to fetch or take from its cache, when the operator
        allows it. A value not shaped like a hub id is refused as a path outside the roots, and so is one the
        library would first look for as a local path (`path_first`) and would find, relative to the working
        directory."""
        if not is_hub_id(value) or (path_first and os.path.lexists(value)):
            raise self.local_refusal(setting)
        if not self.allow_downloads:
            raise PermissionDenied(
                f"{function}: setting {setting!r} names a model the library would fetch from a model hub; this "
                "embed service loads models only from its model roots (the operator allows downloads with "
                "--allow-downloads)", reason="MODEL_DOWNLOAD_NOT_ALLOWED", function=function, setting=setting)
        return value

    def check_remote_code(self, wanted: bool, *, function: str, setting: str = "trust_remote_code") -> None:
        if wanted and not self.allow_remote_code:
            raise PermissionDenied(
                f"{function}: setting {setting!r} would run the model's own Python code; this embed service does "
                "not (the operator allows it with --allow-remote-code)", reason="REMOTE_CODE_NOT_ALLOWED",
                function=function, setting=setting)

    @staticmethod
    def local_refusal(setting: str) -> InvalidSettings:
        """The one error for a value naming a file outside the roots and for one naming nothing."""
        return InvalidSettings(
            f"setting {setting!r} names no model file under the embed service's model roots; local model files "
            "must lie under a folder the operator allowed with --model-roots", reason="MODEL_PATH_NOT_ALLOWED",
            setting=setting)


def is_hub_id(value: str) -> bool:
    return bool(_HUB_ID.fullmatch(value)) and ".." not in value
