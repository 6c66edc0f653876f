"""Index builds and optimizations as jobs that run once among the store processes serving a table.

A job is recorded beside the table (`_vectorlane/jobs/<id>.json`) before its work starts and runs under a
lease (`storage.leases`); its commits carry the job's id in their transaction and are fenced by the lease.
When the process running one dies, another process serving the table (every replica looks every third of a
lease; a lone store at its next start) finds the record RUNNING with its lease lapsed, takes the lease, and
either finishes the work (on a thread of its own: the scan goes on) or, when the job's commit already landed,
only settles the record. An index build
is therefore committed once; an optimization is safe to run again by nature (a second compaction finds
nothing to do). The record goes once the job is done: the caller has its answer, or is gone.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from store_service.errors import Aborted
from store_service.storage import leases
from store_service.storage.checksums import SIDECAR_DIR
from store_service.storage.manifest import JOB_KEY
from store_service.tables.owner import TableOwner

log = logging.getLogger(__name__)

JOBS_DIR = f"{SIDECAR_DIR}/jobs"
CREATE_INDEX = "create_index"
OPTIMIZE = "optimize"
MAX_TAKEOVERS = 2  # jobs taken over at once by one process, each on a thread of its own (an HNSW build is long)

Runner = Callable[[TableOwner, dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class Job:
    id: str
    kind: str
    params: dict[str, Any]
    read_version: int  # the latest version when it was recorded: its commits come after
    created: float = field(default_factory=time.time)

    def to_json(self) -> bytes:
        return json.dumps({"id": self.id, "kind": self.kind, "params": self.params,
                           "read_version": self.read_version, "created": self.created}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Job":
        body = json.loads(data)
        return cls(str(body["id"]), str(body["kind"]), dict(body["params"]), int(body["read_version"]),
                   float(body["created"]))

    @property
    def lease(self) -> str:
        return f"job-{self.id}"

    @property
    def path(self) -> str:
        return f"{JOBS_DIR}/{self.id}.json"


class Jobs:
    """Runs jobs for the callers of this process and takes over those whose process died."""

    def __init__(self, runners: dict[str, Runner], lease_seconds: float = leases.DEFAULT_SECONDS) -> None:
        self.runners = runners
        self.lease_seconds = lease_seconds
        self.holder = leases.new_holder()
        self._running: set[str] = set()
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(MAX_TAKEOVERS)
        self._takeovers: set[threading.Thread] = set()

    def run(self, owner: TableOwner, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        """Records the job, claims it and does it; its result."""
        files = owner.table.files
        job = Job(uuid.uuid4().hex, kind, params, owner.table.latest_version())
        with self._lock:
            self._running.add(job.id)  # before its record exists: a takeover scan here never takes it
        try:
            lease = leases.acquire(files, job.lease, self.lease_seconds, self.holder)
            if lease is None:
                raise RuntimeError("this is a bug: a new job's lease is taken")
            files.publish(job.path, job.to_json())
            return self._execute(owner, job, lease)
        finally:
            with self._lock:
                self._running.discard(job.id)

    def _execute(self, owner: TableOwner, job: Job, lease: leases.Lease) -> dict[str, Any]:
        """Does the job under its lease; its record goes before the lease does (a job that succeeded, or one
        that cannot be done: a bad parameter, a conflict, a bug), so no one takes over what ended."""
        files = owner.table.files
        with self._lock:
            self._running.add(job.id)
        try:
            with leases.Heartbeat(lease, on_lost=lambda: None, forget=True), leases.claimed(job.id, lease):
                try:
                    result = self.runners[job.kind](owner, job.params)
                except leases.LeaseLost:
                    raise Aborted(f"table {owner.name!r}: another store process took this "
                                  f"{job.kind.replace('_', ' ')} over (this one stalled past its lease); it "
                                  "finishes it there", reason="JOB_TAKEN_OVER", table=owner.name) from None
                except BaseException:
                    if lease.check():
                        files.remove(job.path)
                    raise
                files.remove(job.path)
                return result
        finally:
            with self._lock:
                self._running.discard(job.id)

    def take_over(self, owners: list[TableOwner], steal: bool = False) -> int:
        """Claims the jobs of `owners`' tables whose process died (their lease lapsed; with `steal`, every
        job this process does not run: see `leases.acquire`) and finishes each on a thread of its own, at
        most `MAX_TAKEOVERS` at once (the rest wait for a later scan, unclaimed); how many it claimed."""
        count = 0
        for owner in owners:
            files = owner.table.files
            for entry in files.entries(JOBS_DIR):
                try:
                    job = Job.from_json(files.read(f"{JOBS_DIR}/{entry.name}"))
                except (FileNotFoundError, ValueError, KeyError, TypeError):
                    continue  # settled meanwhile, or a record cut short (its job never ran)
                with self._lock:
                    if job.id in self._running:
                        continue
                holder = leases.holder_of(files, job.lease)
                if job.kind not in self.runners or holder is not None and (not steal or holder.holder == self.holder):
                    continue
                # A replica's periodic scan leaves what finds no free slot to a later scan; a lone store's
                # one scan at start (`steal`) waits for a slot instead: nothing else would look again.
                if not self._slots.acquire(blocking=steal):
                    return count
                if self._start(owner, job, steal):
                    count += 1
        return count

    def _start(self, owner: TableOwner, job: Job, steal: bool) -> bool:
        """Claims `job` and starts its thread, holding a slot taken for it; whether it started. On any failure
        (the store unreachable for the claim, no thread to be had) the slot, the claim and the id go back."""
        lease = None
        thread = None
        try:
            lease = leases.acquire(owner.table.files, job.lease, self.lease_seconds, self.holder, steal)
            if lease is None:
                self._slots.release()
                return False
            with self._lock:
                self._running.add(job.id)
            thread = threading.Thread(target=self._finish, args=(owner, job, lease), daemon=True,
                                      name=f"takeover-{job.id[:8]}")
            self._takeovers.add(thread)
            thread.start()
            return True
        except BaseException:
            with self._lock:
                self._running.discard(job.id)
            if thread is not None:
                self._takeovers.discard(thread)
            self._slots.release()
            if lease is not None:
                try:
                    lease.release()
                except OSError:
                    pass
            raise

    def join(self, timeout: float | None = None) -> None:
        """Waits for the jobs taken over so far to end."""
        for thread in list(self._takeovers):
            thread.join(timeout)

    def _finish(self, owner: TableOwner, job: Job, lease: leases.Lease) -> None:
        """A taken-over job, settled (its commit had landed) or done again."""
        files = owner.table.files
        try:
            if not files.exists(job.path):  # it ended between the look and the claim
                lease.release(forget=True)
                return
            if _committed(owner, job):
                log.info("table %s: job %s (%s) was committed before its process died; settled", owner.name,
                         job.id, job.kind)
                files.remove(job.path)
                lease.release(forget=True)
                return
            log.info("table %s: taking over job %s (%s) of a store process that died", owner.name, job.id, job.kind)
            self._execute(owner, job, lease)
        except Exception:  # noqa: BLE001 - logged; a job that cannot be done is dropped with its record
            log.warning("table %s: job %s (%s) taken over failed", owner.name, job.id, job.kind, exc_info=True)
        finally:
            with self._lock:
                self._running.discard(job.id)
            self._takeovers.discard(threading.current_thread())
            self._slots.release()


def _committed(owner: TableOwner, job: Job) -> bool:
    """Whether a version after the job was recorded carries its id (an index build that landed)."""
    if job.kind == OPTIMIZE:
        return False  # safe to run again
    dataset = owner.table.writer_dataset()
    for version in range(job.read_version + 1, int(dataset.version) + 1):
        try:
            transaction = dataset.read_transaction(version)
        except (OSError, ValueError):
            continue
        if transaction is not None and (transaction.transaction_properties or {}).get(JOB_KEY) == job.id:
            return True
    return False
