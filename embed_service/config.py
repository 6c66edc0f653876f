"""The embed service's settings: every one is a flag and an environment variable `VECTORLANE_<NAME>`.

Flags win over the environment, the environment over the embedded defaults below. Lists are given
comma-separated (`--image-roots /data/images,/srv/pics`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from embed_service.core import FunctionSpec

ENV_PREFIX = "VECTORLANE_"


def _opt(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class EmbedConfig:
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 in a container)")
    port: int = _opt(50052, "gRPC port (0 picks a free one)")
    metrics_host: str = _opt("127.0.0.1", "address of the Prometheus /metrics endpoint")
    metrics_port: int = _opt(9452, "Prometheus /metrics port (0 picks a free one, -1 turns metrics off)")
    max_workers: int = _opt(64, "gRPC worker threads (concurrent calls being served)")
    max_message_bytes: int = _opt(64 * 1024 * 1024, "largest request or response message, in bytes")
    max_inputs_per_request: int = _opt(4096, "most inputs one Embed request may carry")
    batching: bool = _opt(True, "coalesce concurrent requests into model calls (dynamic batching)")
    max_batch_size: int = _opt(64, "most inputs in one model call")
    max_batch_wait_ms: float = _opt(5.0, "longest an input waits for a batch to fill, in milliseconds")
    max_queued_inputs: int = _opt(8192, "inputs a model's queue holds before answering RESOURCE_EXHAUSTED")
    preload: str = _opt("sentence-transformers",
                        "functions to load at start, comma-separated names or a JSON list of "
                        '{"name": ..., "settings": {...}}; health is NOT_SERVING until they are loaded')
    model_roots: tuple[Path, ...] = _opt((), "folders local model files (checkpoints, configs) may come from")
    image_roots: tuple[Path, ...] = _opt((), "folders image paths and file:// URIs may be read from")
    image_allowed_hosts: tuple[str, ...] = _opt((), "hosts (or host:port) images may be fetched from; * for any")
    image_max_bytes: int = _opt(32 * 1024 * 1024, "largest image accepted, in bytes")
    secrets_dir: Path | None = _opt(None, "folder of mounted secrets, one file per $var:name reference")
    secret_allowed_hosts: tuple[str, ...] = _opt(("api.openai.com",),
                                                 "hosts a resolved secret (an API key) may be sent to; * for any")
    retry_initial_delay: float = _opt(1.0, "first retry delay in seconds (doubles each attempt, with jitter)")
    retry_max_delay: float = _opt(60.0, "cap on one retry delay, in seconds")
    grace_seconds: float = _opt(20.0, "on SIGTERM, how long in-flight calls get to finish")
    log_level: str = _opt("INFO", "DEBUG, INFO, WARNING or ERROR")

    def preload_specs(self) -> list[FunctionSpec]:
        text = self.preload.strip()
        if not text:
            return []
        if text.startswith("["):
            return [FunctionSpec(item["name"], dict(item.get("settings", {}))) for item in json.loads(text)]
        return [FunctionSpec(name.strip()) for name in text.split(",") if name.strip()]

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
                  ) -> "EmbedConfig":
        import os

        env = os.environ if environ is None else environ
        parser = argparse.ArgumentParser(prog="vectorlane-embed",
                                         description="vectorlane embedding service (gRPC)")
        for f in dataclasses.fields(cls):
            flag = "--" + f.name.replace("_", "-")
            env_name = ENV_PREFIX + f.name.upper()
            help_text = f"{f.metadata['help']} [env {env_name}; default {f.default!r}]"
            if f.type in ("bool",):
                parser.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=None,
                                    help=help_text)
            else:
                parser.add_argument(flag, dest=f.name, default=None, help=help_text)
        args = parser.parse_args(argv)
        values: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            raw = getattr(args, f.name)
            if raw is None:
                raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            try:
                values[f.name] = _parse(f.type, raw)
            except ValueError as exc:
                parser.error(f"--{f.name.replace('_', '-')}: {exc}")
        return cls(**values)


def _parse(kind: Any, raw: Any) -> Any:
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
    if kind == "tuple[Path, ...]":
        return tuple(Path(p).expanduser() for p in text.split(",") if p.strip())
    if kind == "tuple[str, ...]":
        return tuple(p.strip() for p in text.split(",") if p.strip())
    if kind == "Path | None":
        return Path(text).expanduser() if text else None
    return text
