"""The embed service's settings: every one is a flag and an environment variable `VECTORLANE_<NAME>`
(see `rpc_common.settings`)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from embed_service.core import FunctionSpec
from embed_service.secret_hosts import LOCAL_MODEL_SERVERS, PROVIDER_HOSTS, SecretHosts
from rpc_common import settings
from rpc_common.admission import AdmissionSettings
from rpc_common.security import SecuritySettings


_opt = settings.setting


@dataclass(frozen=True)
class EmbedConfig(SecuritySettings, AdmissionSettings):
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 in a container)")
    port: int = _opt(50052, "gRPC port (0 picks a free one)")
    metrics_host: str = _opt("127.0.0.1", "address of the Prometheus /metrics endpoint; it needs no token and "
                                          "shows table and function names: keep it on loopback or a trusted "
                                          "network")
    metrics_port: int = _opt(9452, "Prometheus /metrics port (0 picks a free one, -1 turns metrics off)")
    max_workers: int = _opt(64, "gRPC worker threads (concurrent calls being served)")
    max_message_bytes: int = _opt(64 * 1024 * 1024, "largest request or response message, in bytes")
    max_inputs_per_request: int = _opt(4096, "most inputs one Embed request may carry")
    max_rerank_documents: int = _opt(1000, "most documents one Rerank request may score")
    max_text_chars: int = _opt(1_000_000, "longest text input, in characters (models see far less: texts are "
                                          "cut to 64 characters per token of the model's window before "
                                          "tokenizing)")
    batching: bool = _opt(True, "coalesce concurrent requests into model calls (dynamic batching)")
    max_batch_size: int = _opt(64, "most inputs in one model call")
    max_batch_wait_ms: float = _opt(5.0, "longest an input waits for a batch to fill, in milliseconds")
    batch_quiet_ms: float = _opt(1.0, "a filling batch closes once no input has arrived for this long, in ms")
    max_queued_inputs: int = _opt(8192, "inputs a model's queue holds before answering RESOURCE_EXHAUSTED")
    cache_mib: int = _opt(256, "embedding cache size in MiB: vectors of texts and image bytes already embedded "
                                "for source columns, by function, settings and content (0 turns it off)")
    cache_queries: bool = _opt(False, "also cache query embeddings (text and image searches)")
    preload: str = _opt("sentence-transformers",
                        "functions to load at start, comma-separated names or a JSON list of "
                        '{"name": ..., "settings": {...}}; health is NOT_SERVING until they are loaded')
    max_loaded_models: int = _opt(4, "distinct models held loaded; the least recently used idle one is evicted "
                                     "for a new one (variants differing only in batch_size, normalize or "
                                     "max_retries share one model)")
    max_function_variants: int = _opt(32, "distinct (function, settings) variants held, each with its batching "
                                          "queues")
    model_roots: tuple[Path, ...] = _opt((), "folders local model files (checkpoints, configs) may come from; "
                                             "every path a setting names must resolve inside one")
    allow_downloads: bool = _opt(False, "let settings name models a library fetches from a model hub (or its "
                                        "cache); off: models come only from --model-roots and bundled packages")
    allow_remote_code: bool = _opt(False, "let a caller's trust_remote_code run a model folder's own Python code")
    image_roots: tuple[Path, ...] = _opt((), "folders image paths and file:// URIs may be read from")
    image_allowed_hosts: tuple[str, ...] = _opt((), "hosts (or host:port) images may be fetched from; * for any")
    image_max_bytes: int = _opt(32 * 1024 * 1024, "largest image accepted, in bytes")
    image_max_pixels: int = _opt(64_000_000, "largest decoded image, in pixels")
    image_max_pixels_per_request: int = _opt(64_000_000, "decoded pixels one request's images may hold together")
    image_fetch_timeout_s: float = _opt(10.0, "longest an image URL fetch may take in all (connect and read), "
                                              "in seconds")
    secrets_dir: Path | None = _opt(None, "folder of mounted secrets, one file per $var:name reference")
    secret_allowed_hosts: tuple[str, ...] = _opt(PROVIDER_HOSTS,
                                                 "endpoints a resolved secret (an API key) may be sent to: "
                                                 "[scheme://]host[:port], https and its port unless given; "
                                                 "http only where an entry says http://; * as the port for "
                                                 "any; * for any host over https")
    endpoint_allowed_hosts: tuple[str, ...] = _opt(PROVIDER_HOSTS + LOCAL_MODEL_SERVERS,
                                                   "endpoints a function may call at all (openai's base_url, "
                                                   "ollama's host, ...), as --secret-allowed-hosts writes them; "
                                                   "by default the providers' APIs and an Ollama on this machine")
    retry_initial_delay: float = _opt(1.0, "first retry delay in seconds (doubles each attempt, with jitter)")
    retry_max_delay: float = _opt(60.0, "cap on one retry delay, in seconds")
    grace_seconds: float = _opt(20.0, "on SIGTERM, how long in-flight calls get to finish")
    log_level: str = _opt("INFO", "DEBUG, INFO, WARNING or ERROR")

    def __post_init__(self) -> None:
        super().__post_init__()
        SecretHosts.parse(self.secret_allowed_hosts)  # a malformed entry: refuse to start (ValueError)
        SecretHosts.parse(self.endpoint_allowed_hosts)

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
        return settings.load(cls, "vectorlane-embed", "vectorlane embedding service (gRPC)", argv, environ)
