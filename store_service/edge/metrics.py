"""Prometheus metrics of the store service: the RPC series every service has, plus rows changed by
operation, index builds, function-change operations (running, runs ended by state, rows re-embedded), and
each table's rows and version (read from its latest manifest at scrape time)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import prometheus_client as prom
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rpc_common.service_metrics import ServiceMetrics

TableState = tuple[str, int, int]  # name, rows, version


class _Tables(Collector):
    def __init__(self, tables: Callable[[], Iterable[TableState]]) -> None:
        self._tables = tables

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rows = GaugeMetricFamily("vectorlane_store_table_rows", "rows in the latest version, by table",
                                 labels=["table"])
        versions = GaugeMetricFamily("vectorlane_store_table_version", "latest version, by table", labels=["table"])
        for name, count, version in self._tables():
            rows.add_metric([name], count)
            versions.add_metric([name], version)
        yield rows
        yield versions


class StoreMetrics(ServiceMetrics):
    def __init__(self) -> None:
        super().__init__("store")
        self.tables = prom.Gauge("vectorlane_store_tables", "tables in the data directory", registry=self.registry)
        self.rows_changed = prom.Counter("vectorlane_store_rows_changed", "rows added, updated or deleted, by "
                                         "operation", ["operation"], registry=self.registry)
        self.index_builds = prom.Counter("vectorlane_store_index_builds", "index builds, by type and outcome",
                                         ["index_type", "outcome"], registry=self.registry)
        self.index_build_seconds = prom.Histogram("vectorlane_store_index_build_seconds", "index build time",
                                                  buckets=(0.1, 0.5, 1, 5, 15, 60, 300, 1800),
                                                  registry=self.registry)

        self.operations_running = prom.Gauge("vectorlane_store_operations_running",
                                             "function-change operations running in this process",
                                             registry=self.registry)
        self.operation_runs = prom.Counter("vectorlane_store_operation_runs", "runs of function-change "
                                           "operations that ended, by kind and the state they ended in",
                                           ["kind", "state"], registry=self.registry)
        self.reembedded = prom.Counter("vectorlane_store_reembedded_rows", "rows embedded by function-change "
                                       "operations, by kind", ["kind"], registry=self.registry)

    # the re-embedder's observer
    def rows_reembedded(self, kind: str, rows: int) -> None:
        self.reembedded.labels(kind.lower()).inc(rows)

    def run_ended(self, kind: str, state: str) -> None:
        self.operation_runs.labels(kind.lower(), state.lower()).inc()

    def watch_tables(self, tables: Callable[[], Iterable[TableState]]) -> None:
        """Reports every table's rows and version, as `tables()` gives them when Prometheus scrapes."""
        self.registry.register(_Tables(tables))
