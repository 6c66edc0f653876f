"""Prometheus metrics of the embed service: the RPC series every service has, plus batching, queue
depth, retries, model loads and the embedding cache."""

from __future__ import annotations

import prometheus_client as prom

from rpc_common.service_metrics import LATENCY_BUCKETS, ServiceMetrics
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class EmbedMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("embed")
        r = self.registry
        self.batch_size = prom.Histogram("vectorlane_embed_batch_size", "inputs per model call, by queue",
                                         ["queue"], buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = prom.Histogram("vectorlane_embed_batch_seconds", "model call time, by queue",
                                            ["queue"], buckets=LATENCY_BUCKETS, registry=r)
        self.depth_gauge = prom.Gauge("vectorlane_embed_queue_depth", "inputs waiting, by queue", ["queue"],
                                      registry=r)
        self.retries = prom.Counter("vectorlane_embed_retries", "retried transient failures, by function",
                                    ["function"], registry=r)
        self.model_loads = prom.Counter("vectorlane_embed_model_loads", "model loads, by function and outcome",
                                        ["function", "outcome"], registry=r)
        self.cache_hits = prom.Counter("vectorlane_embed_cache_hits", "inputs answered from the embedding cache, "
                                       "by function", ["function"], registry=r)
        self.cache_misses = prom.Counter("vectorlane_embed_cache_misses", "cacheable inputs the cache did not hold, "
                                         "by function", ["function"], registry=r)
        self.cache_entries = prom.Gauge("vectorlane_embed_cache_entries", "vectors in the embedding cache",
                                        registry=r)
        self.cache_bytes = prom.Gauge("vectorlane_embed_cache_bytes", "bytes the embedding cache holds", registry=r)

    # CacheObserver
    def cache_lookup(self, function: str, hits: int, misses: int) -> None:
        if hits:
            self.cache_hits.labels(function).inc(hits)
        if misses:
            self.cache_misses.labels(function).inc(misses)

    def cache_size(self, entries: int, size_bytes: int) -> None:
        self.cache_entries.set(entries)
        self.cache_bytes.set(size_bytes)

    # QueueObserver
    def queue_depth(self, queue: str, depth: int) -> None:
        self.depth_gauge.labels(queue).set(depth)

    def batch_run(self, queue: str, size: int, seconds: float) -> None:
        self.batch_size.labels(queue).observe(size)
        self.batch_seconds.labels(queue).observe(seconds)

    # LoadObserver
    def model_loaded(self, function: str, seconds: float, ok: bool) -> None:
        self.model_loads.labels(function, "ok" if ok else "failed").inc()

    # FunctionRuntime.on_retry
    def retried(self, function: str, attempt: int, delay: float, exc: BaseException) -> None:
        self.retries.labels(function).inc()
