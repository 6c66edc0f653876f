"""Assembles the store service: the core over a data directory and an embed-service client, behind the
shared gRPC host (health, reflection, metrics, error mapping, graceful shutdown)."""

from __future__ import annotations

import itertools
import logging
import threading
import time

from rpc_common.security import channel_credentials
from rpc_common.service_host import HostedServer, ServiceHost
from store_service.search import scan
from store_service.config import StoreConfig
from store_service.expressions.budget import EVALUATION
from store_service.core import StoreCore, StoreLimits
from store_service.embedder import Embedder
from store_service.edge.metrics import StoreMetrics
from store_service.storage import recovery
from store_service.storage.location import LocalFolder, open_location, probe_conditional_writes
from store_service.storage.recovery import DataDirLock
from store_service.tables import consistency
from store_service.edge.consistency import ReadConsistencyInterceptor
from store_service.edge.servicer import DECODERS, StorageServicer
from vectorlane_contract.store.v1 import store_service_pb2 as pb

log = logging.getLogger(__name__)

ERROR_DOMAIN = "store.vectorlane.dev"
METRICS_STALENESS_S = 15.0  # how old the tables' rows and versions in a scrape may be (a typical scrape period)
SERVICE = pb.DESCRIPTOR.services_by_name["StorageService"]


class StoreServer(HostedServer):
    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        self.location = open_location(config.data_dir)
        # one store per local directory; on object storage any number serve the same tables (Lance's commits
        # are put-if-not-exists there)
        self._data_lock = DataDirLock(self.location.path) if isinstance(self.location, LocalFolder) else None
        if self._data_lock is None:
            probe_conditional_writes(self.location)  # reachable, and its conditional writes hold
        self.metrics = StoreMetrics()
        credentials = None
        if config.embed_tls_ca or config.embed_tls_cert:
            credentials = channel_credentials(config.embed_tls_ca, config.embed_tls_cert, config.embed_tls_key)
        token = config.embed_auth_token
        embedder = Embedder(config.embed_address, timeout_s=config.embed_timeout_s,
                            batch_size=config.embed_batch_size, max_in_flight=config.embed_in_flight,
                            metadata=(("authorization", f"Bearer {token}"),) if token else (),
                            credentials=credentials)
        limits = StoreLimits(max_search_limit=config.max_search_limit, max_read_rows=config.max_read_rows,
                             max_batch_queries=config.max_batch_queries,
                             ingest_workers=config.ingest_workers, max_filter_length=config.max_filter_length,
                             max_response_bytes=config.max_message_bytes // 2,
                             max_subvectors_per_row=config.max_subvectors_per_row,
                             read_consistency_interval=config.consistency_interval(),
                             lease_seconds=config.lease_seconds)
        EVALUATION.configure(config.evaluation_memory_bytes)
        scan.use_single_threaded_blas()  # exact scans parallelise across queries and chunks, not inside BLAS
        self.core = StoreCore(self.location, embedder, limits)
        self.metrics.tables.set_function(lambda: len(self.core.tables.names(max_age=METRICS_STALENESS_S)))
        self.metrics.watch_tables(self._table_states)
        self.core.reembedder.observer = self.metrics
        self.metrics.operations_running.set_function(self.core.reembedder.running)
        self._stopped = False
        self._stopping = threading.Event()
        self._host = ServiceHost(
            service=SERVICE, servicer=StorageServicer(self.core, self.metrics), decoders=DECODERS, domain=ERROR_DOMAIN,
            metrics=self.metrics, max_workers=config.max_workers, max_message_bytes=config.max_message_bytes,
            thread_prefix="store-rpc", security=config, admission=config,
            interceptors=[ReadConsistencyInterceptor()])
        self.health = self._host.health

    def _table_states(self) -> list[tuple[str, int, int]]:
        """Every table's rows and version for a scrape: as this process knows them, looked up again at most
        every METRICS_STALENESS_S (on object storage each look is a LIST of the bucket)."""
        states = []
        with consistency.for_call(str(METRICS_STALENESS_S) if self.location.on_object_storage else None):
            for name in self.core.tables.names(max_age=METRICS_STALENESS_S):
                try:
                    info = self.core.describe_table(name)
                except Exception:  # noqa: BLE001 - a table dropped or unreadable meanwhile is left out
                    continue
                states.append((name, info.num_rows, info.version))
        return states

    def start(self) -> "StoreServer":
        c = self.config
        self._host.start(c.host, c.port, c.metrics_host, c.metrics_port)
        if isinstance(self.location, LocalFolder):  # torn manifests, what a crash left, before anything writes
            recovery.recover(self.location.path)  # (an object store has neither: a PUT is whole or absent)
            self._host.set_serving(True)  # tables open lazily; nothing to wait for
        else:  # a replica among others: ready once it has loaded the tables it serves (health says so)
            threading.Thread(target=self._warm_then_serve, name="store-warm", daemon=True).start()
        # Work a previous run left: on a local directory this store holds the lock, so every lease there is
        # that run's (taken at once); on object storage only lapsed ones are, and the warm thread keeps looking.
        alone = isinstance(self.location, LocalFolder)
        resumed = self.core.functions.resume_all(steal=alone)  # re-embedding (threads of their own)
        if resumed:
            log.info("resumed %d re-embedding operation(s)", resumed)
        if alone:  # index builds and optimizations it left, off the start path
            threading.Thread(target=self.core.take_over_work, kwargs={"steal": True}, name="store-jobs",
                             daemon=True).start()
        log.info("store service listening on %s, data in %s, embed service %s (metrics %s)", self.address,
                 c.shown_data_dir(), c.embed_address or "none",
                 self.metrics_url())
        return self

    def _warm_then_serve(self) -> None:
        started = time.monotonic()
        names: list[str] = []
        for attempt in itertools.count():
            try:
                names = self.core.tables.names()
                break
            except Exception:  # noqa: BLE001 - the bucket unreachable: NOT_SERVING until it answers
                log.warning("the tables at %s cannot be listed; not ready", self.config.shown_data_dir(),
                            exc_info=attempt == 0)
                if self._stopping.wait(min(30.0, 0.5 * 2 ** attempt)):
                    return
        for name in names:
            if self._stopped:
                return
            try:
                self.core.tables.owner(name).warm()
            except Exception:  # noqa: BLE001 - one table that cannot load does not keep the others unserved
                log.warning("table %s: not loaded before serving", name, exc_info=True)
        if not self._stopped:
            self._host.set_serving(True)
            log.info("loaded %d table(s) in %.1fs: serving", len(names), time.monotonic() - started)
        while not self._stopping.wait(self.config.lease_seconds / 3):  # work a replica that died left behind
            try:
                self.core.take_over_work()
            except Exception:  # noqa: BLE001 - the next round tries again
                log.warning("could not look for operations to take over", exc_info=True)

    def stop(self, grace: float | None = None) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones finish (an add commits or leaves nothing)."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        grace = self.config.grace_seconds if grace is None else grace
        log.info("shutting down: health NOT_SERVING; in-flight calls get %.1fs", grace)
        self._host.stop(grace)
        self.core.close()
        if self._data_lock is not None:
            self._data_lock.release()
        log.info("store service stopped")
