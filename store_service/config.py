"""The store service's settings: every one is a flag and an environment variable `VECTORLANE_<NAME>`
(see `rpc_common.settings`); `VECTORLANE_DATA_DIR` is where tables live."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from rpc_common import settings
from rpc_common.admission import AdmissionSettings
from rpc_common.security import SecuritySettings
from store_service.errors import InvalidArgument
from store_service.storage.location import check_object_environment, is_object_uri
from store_service.tables import consistency

_opt = settings.setting
OBJECT_STORAGE_INTERVAL_S = 2.0  # the default read-consistency interval when tables are on object storage


@dataclass(frozen=True)
class StoreConfig(SecuritySettings, AdmissionSettings):
    host: str = _opt("127.0.0.1", "address to listen on (0.0.0.0 in a container)")
    port: int = _opt(50051, "gRPC port (0 picks a free one)")
    data_dir: str = _opt("data", "where the tables live: a local directory, or object storage (s3://bucket/prefix "
                                 "with AWS_* environment variables, az://container/prefix with AZURE_STORAGE_*, "
                                 "gs://bucket/prefix with GOOGLE_SERVICE_ACCOUNT; plain http only with "
                                 "AWS_ALLOW_HTTP / AZURE_ALLOW_HTTP / GOOGLE_ALLOW_HTTP=true)")
    embed_address: str = _opt("127.0.0.1:50052", "the embed service (host:port); empty: every function is local")
    embed_timeout_s: float = _opt(120.0, "longest one call to the embed service may take, in seconds")
    embed_batch_size: int = _opt(256, "source values per Embed call when rows arrive without vectors")
    embed_in_flight: int = _opt(4, "Embed calls one add keeps in the air")
    embed_auth_token: str = _opt("", "bearer token this store presents to the embed service (secret: prefer "
                                     "VECTORLANE_EMBED_AUTH_TOKEN)", secret=True)
    embed_tls_ca: Path | None = _opt(None, "PEM CA of the embed service's certificate: TLS towards it")
    embed_tls_cert: Path | None = _opt(None, "PEM certificate this store presents to the embed service (mTLS)")
    embed_tls_key: Path | None = _opt(None, "PEM private key of --embed-tls-cert")
    metrics_host: str = _opt("127.0.0.1", "address of the Prometheus /metrics endpoint; it needs no token and "
                                          "shows table and function names: keep it on loopback or a trusted "
                                          "network")
    metrics_port: int = _opt(9451, "Prometheus /metrics port (0 picks a free one, -1 turns metrics off)")
    max_workers: int = _opt(32, "gRPC worker threads (concurrent calls being served)")
    max_message_bytes: int = _opt(64 * 1024 * 1024, "largest request or response message, in bytes")
    max_search_limit: int = _opt(10_000, "largest `limit` a search may ask for")
    max_read_rows: int = _opt(100_000, "most rows one ReadRows response holds (more are read page by page), "
                                       "and the most rows one batch search answers")
    max_batch_queries: int = _opt(1_000, "most query vectors one search may carry (LanceDB's search([v1, v2, ...]))")
    max_filter_length: int = _opt(64 * 1024, "longest filter (`where`) accepted, in characters (at most 131072 for "
                                             "those Lance evaluates); parsing costs about 15 µs a character")
    max_subvectors_per_row: int = _opt(1024, "most vectors one row of a multivector column may hold (a search "
                                             "compares each with every query vector)")
    evaluation_memory_bytes: int = _opt(1024 * 1024 * 1024, "memory the store lets SQL expressions (filters Lance "
                                        "evaluates, computed columns, values_sql, add_columns) hold at once, in bytes; "
                                        "work beyond it is refused (RESOURCE_EXHAUSTED)")
    read_consistency_interval: str = _opt("", "how stale a read may be about versions another process committed "
                                              "to a table (LanceDB's read_consistency_interval), in seconds: 0 "
                                              "checks on every read; 'none' sees only this store's own commits; "
                                              f"empty: 0 on a local disk, {OBJECT_STORAGE_INTERVAL_S:g} on object "
                                              "storage")
    lease_seconds: float = _opt(30.0, "how long a store process's claim on work that must run once (a "
                                      "re-embedding operation, an index build, an optimize) lasts without renewal; "
                                      "other replicas take the work over once it lapses")
    ingest_workers: int = _opt(4, "threads preparing (embedding, writing) incoming batches")
    grace_seconds: float = _opt(20.0, "on SIGTERM, how long in-flight calls get to finish")
    log_level: str = _opt("INFO", "DEBUG, INFO, WARNING or ERROR")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.evaluation_memory_bytes < 1024 * 1024:
            raise ValueError("--evaluation-memory-bytes must be at least 1 MiB (1048576)")
        if not 1.0 <= self.lease_seconds <= 3600.0:
            raise ValueError("--lease-seconds must be between 1 and 3600")
        if self.max_subvectors_per_row < 1:
            raise ValueError("--max-subvectors-per-row must be at least 1")
        try:
            consistency.parse(self.read_consistency_interval or "0")
        except InvalidArgument as exc:
            raise ValueError(f"--read-consistency-interval: {exc.message}") from None
        if is_object_uri(self.data_dir):
            try:
                check_object_environment(self.data_dir)
            except ValueError as exc:
                raise ValueError(f"--data-dir: {exc}") from None

    @property
    def on_object_storage(self) -> bool:
        return is_object_uri(self.data_dir)

    def consistency_interval(self) -> float | None:
        """The read-consistency interval in force: as set, else by where the tables live."""
        text = self.read_consistency_interval or (str(OBJECT_STORAGE_INTERVAL_S) if self.on_object_storage
                                                  else "0")
        return consistency.parse(text)

    def shown_data_dir(self) -> str:
        """Where the tables are, for a log line or the banner."""
        return self.data_dir if self.on_object_storage else str(Path(self.data_dir).resolve())

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None
                  ) -> "StoreConfig":
        return settings.load(cls, "vectorlane-store", "vectorlane storage service (gRPC)", argv, environ)
