"""Assembles the embed service: gRPC server, health, reflection, interceptors, metrics, preloading and
graceful shutdown. `EmbedServer(config).start()` is what the console script and the tests run."""

from __future__ import annotations

import logging
import threading

from embed_service.cache import EmbeddingCache
from embed_service.config import EmbedConfig
from embed_service.core import BatchingConfig, EmbeddingCore
from embed_service.functions.base import FunctionRuntime
from embed_service.functions.model_sources import ModelSources
from embed_service.functions.registry import Registry, get_registry
from embed_service.inputs import ImagePolicy
from embed_service.metrics import EmbedMetrics
from embed_service.redaction import redact_log_records
from embed_service.secret_hosts import SecretHosts
from embed_service.secret_refs import SecretResolver
from embed_service.servicer import EmbeddingServicer
from rpc_common.service_host import HostedServer, ServiceHost
from vectorlane_contract.embed.v1 import embed_service_pb2 as pb

log = logging.getLogger(__name__)

ERROR_DOMAIN = "embed.vectorlane.dev"
SERVICE = pb.DESCRIPTOR.services_by_name["EmbeddingService"]


def build_core(config: EmbedConfig, metrics: EmbedMetrics, registry: Registry | None = None) -> EmbeddingCore:
    runtime = FunctionRuntime(
        secrets=SecretResolver(config.secrets_dir),
        sources=ModelSources(config.model_roots, allow_downloads=config.allow_downloads,
                             allow_remote_code=config.allow_remote_code),
        secret_hosts=SecretHosts.parse(config.secret_allowed_hosts),
        endpoint_hosts=SecretHosts.parse(config.endpoint_allowed_hosts),
        retry_initial_delay=config.retry_initial_delay,
        retry_max_delay=config.retry_max_delay,
        on_retry=metrics.retried,
    )
    images = ImagePolicy(roots=config.image_roots, allowed_hosts=frozenset(h.lower() for h in
                                                                          config.image_allowed_hosts),
                         max_bytes=config.image_max_bytes, max_pixels=config.image_max_pixels,
                         max_pixels_per_request=config.image_max_pixels_per_request,
                         fetch_timeout=config.image_fetch_timeout_s, max_text_chars=config.max_text_chars)
    batching = BatchingConfig(enabled=config.batching, max_batch_size=config.max_batch_size,
                              max_wait_s=config.max_batch_wait_ms / 1000.0,
                              quiet_s=config.batch_quiet_ms / 1000.0, max_queued=config.max_queued_inputs,
                              max_models=config.max_loaded_models, max_functions=config.max_function_variants)
    cache = EmbeddingCache(config.cache_mib * 1024 * 1024, cache_queries=config.cache_queries, observer=metrics)
    return EmbeddingCore(registry or get_registry(), runtime, images=images, batching=batching,
                         max_inputs_per_request=config.max_inputs_per_request,
                         max_rerank_documents=config.max_rerank_documents, queue_observer=metrics,
                         load_observer=metrics, cache=cache)


class EmbedServer(HostedServer):
    def __init__(self, config: EmbedConfig, registry: Registry | None = None) -> None:
        self.config = config
        self.metrics = EmbedMetrics()
        self.core = build_core(config, self.metrics, registry)
        self.ready = threading.Event()
        self.preload_error: BaseException | None = None
        self._stopped = threading.Event()
        redact = self.core.runtime.secrets.redactor.redact
        redact_log_records(redact)  # what a provider answered may quote a key: not in this process's logs
        self._host = ServiceHost(
            service=SERVICE, servicer=EmbeddingServicer(self.core), domain=ERROR_DOMAIN, metrics=self.metrics,
            max_workers=config.max_workers, max_message_bytes=config.max_message_bytes, thread_prefix="embed-rpc",
            security=config, admission=config, redact=redact)
        self.health = self._host.health

    def start(self) -> "EmbedServer":
        c = self.config
        self._host.start(c.host, c.port, c.metrics_host, c.metrics_port)
        log.info("embed service listening on %s (metrics %s)", self.address,
                 self.metrics_url())
        threading.Thread(target=self._preload, name="embed-preload", daemon=True).start()
        return self

    def _preload(self) -> None:
        specs = self.config.preload_specs()
        try:
            for spec in specs:
                log.info("preloading %s ...", spec.name)
                self.core.function(spec, pin=True)
        except BaseException as exc:  # health stays NOT_SERVING: the operator asked for this model
            self.preload_error = exc
            log.error("preloading failed; health stays NOT_SERVING: %s", exc)
            return
        if not self._stopped.is_set():
            self._host.set_serving(True)
            log.info("ready: %d function(s) preloaded; health SERVING", len(specs))
        self.ready.set()

    def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones finish within the grace period, stop."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        grace = self.config.grace_seconds if grace is None else grace
        log.info("shutting down: health NOT_SERVING; in-flight calls get %.1fs", grace)
        self._host.stop(grace)
        self.core.close()
        log.info("embed service stopped")
