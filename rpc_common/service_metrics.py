"""Prometheus metrics every vectorlane service has (RPC counts and latency), on their own registry and port.

Each server owns its CollectorRegistry, so several servers in one process (tests) keep separate counts.
Services subclass this to add their own series.
"""

from __future__ import annotations

from typing import Any

import prometheus_client as prom

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        self.registry = prom.CollectorRegistry()
        self.requests = prom.Counter(f"vectorlane_{service}_requests", "RPCs handled, by method and status code",
                                     ["method", "code"], registry=self.registry)
        self.latency = prom.Histogram(f"vectorlane_{service}_request_seconds", "RPC latency, by method", ["method"],
                                      buckets=LATENCY_BUCKETS, registry=self.registry)
        self._http: Any = None

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
