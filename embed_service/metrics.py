"""Prometheus metrics of the embed service, served on their own port.

Each server owns its CollectorRegistry, so several servers in one process (tests) keep separate counts.
"""

from __future__ import annotations

from typing import Any

import prometheus_client as prom

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class EmbedMetrics:
    def __init__(self) -> None:
        self.registry = prom.CollectorRegistry()
        r = self.registry
        self.requests = prom.Counter("vectorlane_embed_requests", "RPCs handled, by method and status code",
                                     ["method", "code"], registry=r)
        self.latency = prom.Histogram("vectorlane_embed_request_seconds", "RPC latency, by method", ["method"],
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.batch_size = prom.Histogram("vectorlane_embed_batch_size", "inputs per model call, by queue",
                                         ["queue"], buckets=_BATCH_BUCKETS, registry=r)
        self.batch_seconds = prom.Histogram("vectorlane_embed_batch_seconds", "model call time, by queue",
                                            ["queue"], buckets=_LATENCY_BUCKETS, registry=r)
        self.depth_gauge = prom.Gauge("vectorlane_embed_queue_depth", "inputs waiting, by queue", ["queue"],
                                      registry=r)
        self.retries = prom.Counter("vectorlane_embed_retries", "retried transient failures, by function",
                                    ["function"], registry=r)
        self.model_loads = prom.Counter("vectorlane_embed_model_loads", "model loads, by function and outcome",
                                        ["function", "outcome"], registry=r)
        self._http: Any = None

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

    def serve(self, host: str, port: int) -> int:
        """Starts the /metrics HTTP endpoint; returns the port it listens on."""
        server, _ = prom.start_http_server(port, addr=host, registry=self.registry)
        self._http = server
        return int(server.server_port)

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None

    def value(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.registry.get_sample_value(name, labels or {}) or 0.0
