"""Prometheus metrics of the store service: the RPC series every service has, plus rows written and
searches answered by how they were answered."""

from __future__ import annotations

import prometheus_client as prom

from rpc_common.service_metrics import ServiceMetrics


class StoreMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("store")
        self.tables = prom.Gauge("vectorlane_store_tables", "tables in the data directory", registry=self.registry)
