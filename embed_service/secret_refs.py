"""Secret references in LanceDB's syntax: `$var:name`.

A function setting that holds a secret (an API key) is stored and sent only as a reference, so a key can
never end up in table metadata or a log. The embed service resolves the reference when it builds the
function: first from a file `<secrets_dir>/<name>` (a mounted Kubernetes Secret), then from the
environment variable `VECTORLANE_SECRET_<NAME>` (name upper-cased, other characters as `_`). Only variables
with that prefix are reachable, so a caller cannot ask the service to send it an arbitrary environment
variable of the process. LanceDB's `$var:name:default` form is refused for secrets: its default is a literal
key, and it would be stored in table metadata with the reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from embed_service.errors import InvalidSettings, SecretNotFound
from embed_service.redaction import Redactor
from vectorlane_contract import references

ENV_PREFIX = "VECTORLANE_SECRET_"


@dataclass(frozen=True)
class SecretRef:
    name: str

    @classmethod
    def parse(cls, value: str, *, setting: str) -> "SecretRef":
        name = references.secret_name(value)
        if name is None:
            raise InvalidSettings(
                f"setting {setting!r} is a secret: give it as a reference '$var:name' "
                "(resolved by the embed service from its secrets), never as a literal value or a default",
                reason="LITERAL_SECRET",
                setting=setting,
            )
        return cls(name)

    def env_var(self) -> str:
        return ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", self.name).upper()


@dataclass(frozen=True)
class SecretResolver:
    """Resolves references against a secrets directory and the process environment; every value it hands
    out is remembered by `redactor`, which keeps it out of the service's errors and logs."""

    secrets_dir: Path | None = None
    environ: Mapping[str, str] | None = None
    redactor: Redactor = field(default_factory=Redactor, compare=False)

    def resolve(self, value: str, *, setting: str) -> str:
        ref = SecretRef.parse(value, setting=setting)
        if self.secrets_dir is not None:
            path = self.secrets_dir / ref.name
            # The name pattern admits no '/', but '..' could still climb out: refuse anything that does.
            if path.resolve().parent == self.secrets_dir.resolve() and path.is_file():
                return self._handed_out(path.read_text().strip())
        env = os.environ if self.environ is None else self.environ
        if ref.env_var() in env:
            return self._handed_out(env[ref.env_var()])
        raise SecretNotFound(
            f"secret {ref.name!r} for setting {setting!r} is not configured on the embed service "
            f"(set {ref.env_var()} or mount a file named {ref.name!r} in the secrets directory)",
            setting=setting,
            secret=ref.name,
        )

    def environment(self, variable: str) -> str | None:
        """The service's own credential in `variable` (OPENAI_API_KEY, AWS_SECRET_ACCESS_KEY, ...), if set."""
        env = os.environ if self.environ is None else self.environ
        value = env.get(variable) or None
        return self._handed_out(value) if value is not None else None

    def _handed_out(self, value: str) -> str:
        self.redactor.remember(value)
        return value
