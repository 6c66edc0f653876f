"""Leases on work that must run once among the store processes serving one location (re-embedding operations
today), recorded beside the table with conditional writes: no coordination service, no consensus of ours.

A lease is a small JSON object at `<table>.lance/_vectorlane/leases/<job>.json`: who holds it, until when
(wall clock), and its epoch. It is taken when absent (put-if-absent) or expired (put-if-unchanged on the
record read, so of two replicas taking over one expired lease exactly one wins), renewed by its holder with
put-if-unchanged, and given up by writing it expired. A holder that cannot renew, or that has not renewed for
longer than the lease (paused, cut off), stops its work before its next durable step: `Lease.check()` says so
by its own clock, without asking the storage, so a holder that wakes up late does not write over the replica
that took the work over (the epoch tells them apart in the logs).

On a local disk the same records are written under a lock file (flock), so two processes on one directory
(the store and a tool, or the follow tests) also take turns; on S3 the conditions are S3's own
(`If-None-Match: *`, `If-Match: <ETag>`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from store_service.storage.checksums import SIDECAR_DIR
from store_service.storage.location import Location

log = logging.getLogger(__name__)

LEASES_DIR = f"{SIDECAR_DIR}/leases"
DEFAULT_SECONDS = 30.0
SAFETY = 0.8  # a holder stops trusting its lease after this share of the lease without a renewal

def new_holder() -> str:
    """A name for one holder of leases (a store's reembedder), unique among the replicas and their restarts."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


HOLDER = new_holder()  # this process's default


class LeaseLost(Exception):
    """This process no longer holds the lease on the work it was doing: it stops without writing more."""


@dataclass(frozen=True)
class Record:
    holder: str
    expires: float  # wall-clock seconds
    epoch: int

    def to_json(self) -> bytes:
        return json.dumps({"holder": self.holder, "expires": self.expires, "epoch": self.epoch}).encode()

    @classmethod
    def from_json(cls, data: bytes) -> "Record | None":
        try:
            body = json.loads(data)
            return cls(str(body["holder"]), float(body["expires"]), int(body["epoch"]))
        except (ValueError, KeyError, TypeError):
            return None  # unreadable: treated as expired, and taken over by a conditional write


class Lease:
    """A lease this process holds on one job."""

    def __init__(self, files: Location, job: str, tag: str, record: Record, seconds: float) -> None:
        self.files = files
        self.holder = record.holder
        self.job = job
        self.path = f"{LEASES_DIR}/{job}.json"
        self.epoch = record.epoch
        self.seconds = seconds
        self._tag = tag
        self._renewed = time.monotonic()
        self._lost = False
        self._lock = threading.Lock()

    def check(self) -> bool:
        """Whether this process may still act on the job: renewed recently enough, by its own clock."""
        return not self._lost and time.monotonic() - self._renewed < self.seconds * SAFETY  # no lock: a
        # renewal in flight (a PUT) must not hold up the work that asks

    def renew(self) -> bool:
        """Extends the lease; False (for good) when another process took it over or the storage refused."""
        with self._lock:
            if self._lost:
                return False
            started = time.monotonic()
            record = Record(self.holder, time.time() + self.seconds, self.epoch)
            try:
                tag = self.files.put_if_unchanged(self.path, record.to_json(), self._tag)
            except Exception:  # noqa: BLE001 - the storage unreachable for now: kept while the lease is young
                log.warning("lease %s: could not renew", self.job, exc_info=True)
                return time.monotonic() - self._renewed < self.seconds * SAFETY
            if tag is None:
                self._lost = True
                log.warning("lease %s (epoch %d): taken over by another process", self.job, self.epoch)
                return False
            self._tag, self._renewed = tag, started
            return True

    def fence(self) -> None:
        """Renews the lease right before a step that must happen once (a commit); LeaseLost if it cannot."""
        if not self.renew() or not self.check():
            raise LeaseLost(f"the lease on {self.job} was lost")

    def release(self, forget: bool = False) -> None:
        """Gives the lease up (writes it expired), unless it was lost meanwhile. `forget`: removes its record
        instead, for a job that ended and whose name no one will claim again (a job's id is new each time)."""
        with self._lock:
            if self._lost:
                return
            self._lost = True
            if forget:
                try:
                    self.files.remove(self.path)
                    self.files.remove(f"{LEASES_DIR}/.{self.job}.json.lock")  # a local folder's lock file
                except Exception:  # noqa: BLE001 - a record left behind lapses, and cleanup takes it
                    log.warning("lease %s: its record could not be removed", self.job, exc_info=True)
                return
            try:
                self.files.put_if_unchanged(self.path, Record(self.holder, time.time(), self.epoch).to_json(),
                                            self._tag)  # lapsed from now on
            except Exception:  # noqa: BLE001 - never hides the error of the work it ends; it expires anyway
                log.warning("lease %s: could not release; it expires by itself", self.job, exc_info=True)


def acquire(files: Location, job: str, seconds: float = DEFAULT_SECONDS, holder: str = HOLDER,
            steal: bool = False) -> Lease | None:
    """The lease on `job` for `holder`, or None while another holder has it. `steal` takes it even then: only
    for a process that knows no other can be working on the job (a store on a local directory holds the
    directory's lock, so a live-looking lease there is a previous run's)."""
    path = f"{LEASES_DIR}/{job}.json"
    found = files.read_tagged(path)
    if found is None:
        record = Record(holder, time.time() + seconds, 1)
        tag = files.put_if_absent(path, record.to_json())
    else:
        data, current = found
        held = Record.from_json(data)
        if held is not None and held.expires > time.time() and not steal:
            return None  # held (by another, or by another thread of this holder: one at a time either way)
        record = Record(holder, time.time() + seconds, (held.epoch if held else 0) + 1)
        tag = files.put_if_unchanged(path, record.to_json(), current)
    if tag is None:
        return None  # another process took it between the read and the write
    if found is not None:
        log.info("lease %s: taken (epoch %d)", job, record.epoch)
    return Lease(files, job, tag, record, seconds)


def collect_expired(files: Location, older_than_s: float = 3600.0) -> int:
    """Removes the records of leases that lapsed more than `older_than_s` ago (finished work leaves its lease
    expired behind); how many. A contender that reads one as it goes finds it gone and looks again later."""
    removed = 0
    for entry in files.entries(LEASES_DIR):
        if not entry.name.endswith(".json"):
            continue
        found = files.read_tagged(f"{LEASES_DIR}/{entry.name}")
        record = Record.from_json(found[0]) if found is not None else None
        if record is not None and record.expires < time.time() - older_than_s:
            files.remove(f"{LEASES_DIR}/{entry.name}")
            files.remove(f"{LEASES_DIR}/.{entry.name}.lock")  # a local folder's lock file beside it
            removed += 1
    return removed


def holder_of(files: Location, job: str) -> Record | None:
    """The live holder of `job`'s lease, if any."""
    found = files.read_tagged(f"{LEASES_DIR}/{job}.json")
    if found is None:
        return None
    record = Record.from_json(found[0])
    return record if record is not None and record.expires > time.time() else None


@dataclass(frozen=True)
class Claim:
    """The job a thread works on under a lease: its commits are fenced by the lease and carry the job's id."""

    job_id: str
    lease: Lease


_CLAIM: contextvars.ContextVar[Claim | None] = contextvars.ContextVar("lease_claim", default=None)


@contextlib.contextmanager
def claimed(job_id: str, lease: Lease) -> Iterator[None]:
    token = _CLAIM.set(Claim(job_id, lease))
    try:
        yield
    finally:
        _CLAIM.reset(token)


def current_claim() -> Claim | None:
    return _CLAIM.get()


class Heartbeat:
    """Renews a lease every third of its length on a thread of its own until stopped; `on_lost` runs once
    when it cannot."""

    def __init__(self, lease: Lease, on_lost: Callable[[], None], forget: bool = False) -> None:
        self.lease = lease
        self._on_lost = on_lost
        self._forget = forget  # at the end, the lease's record goes (see Lease.release)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.job[:24]}", daemon=True)

    def __enter__(self) -> "Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.lease.release(forget=self._forget)

    def _run(self) -> None:
        while not self._stop.wait(self.lease.seconds / 3):
            try:
                renewed = self.lease.renew()
            except Exception:  # noqa: BLE001 - an unexpected storage error: kept if the lease is still young
                log.warning("lease %s: renewal failed", self.lease.job, exc_info=True)
                renewed = self.lease.check()
            if not renewed:
                self._on_lost()
                return
