"""Index builds and optimizations as jobs (`tables/jobs.py`): recorded before the work, run under a lease,
their commits carrying the job's id; a job whose process died is finished by another, or only settled when
its commit had landed, so an index is built and committed once."""

from __future__ import annotations

import threading
import time

import pytest

from store_service.storage import leases
from store_service.storage.manifest import JOB_KEY
from store_service.tables import jobs
from tests.store_service.conftest import create_docs
from vectorlane.store.v1 import store_service_pb2 as pb

DOCS = [{"id": i, "text": f"row {i} words", "category": "c"} for i in range(60)]
INDEX = {"params": {"kind": "IVF_FLAT", "metric": "l2", "num_partitions": 2, "num_sub_vectors": 0, "m": 32,
                    "ef_construction": 200, "extra": {}}, "vector_column": "vector", "index_name": "",
         "replace": False}


@pytest.fixture
def core(start_store, embed):
    store = start_store(embed, lease_seconds=1.0)
    create_docs(store.stub, rows=DOCS)
    return store.server.core


def job_versions(owner) -> list[str]:
    dataset = owner.table.writer_dataset()
    found = []
    for version in range(1, int(dataset.version) + 1):
        properties = dataset.read_transaction(version).transaction_properties or {}
        if JOB_KEY in properties:
            found.append(properties[JOB_KEY])
    return found


def abandoned(owner, kind: str, params: dict, job_id: str) -> tuple[jobs.Job, leases.Lease]:
    """A job recorded and claimed by a process that then died (its lease lapses after a second)."""
    job = jobs.Job(job_id, kind, params, owner.table.latest_version())
    lease = leases.acquire(owner.table.files, job.lease, 1.0, holder="a-store-that-died")
    owner.table.files.publish(job.path, job.to_json())
    return job, lease


def test_an_index_build_and_an_optimization_leave_no_record_and_tag_their_commits(core):
    entry, version = core.create_index("docs", jobs_params())
    core.optimize("docs", cleanup_older_than=-1)
    owner = core.owner("docs")
    assert owner.table.files.entries(jobs.JOBS_DIR) == []
    assert len(job_versions(owner)) >= 1 and entry.name == "vector_idx" and version > 1


def jobs_params():
    from store_service.indexes.vector_index import IndexParams

    return IndexParams(kind="IVF_FLAT", num_partitions=2)


def test_a_job_whose_process_died_is_finished_by_another(core):
    owner = core.owner("docs")
    job, _ = abandoned(owner, jobs.CREATE_INDEX, INDEX, "died-before-its-commit")
    assert core.jobs.take_over([owner]) == 0  # its lease still holds: someone may be working on it
    time.sleep(1.1)
    assert core.jobs.take_over([owner]) == 1
    core.jobs.join()  # it runs on a thread of its own
    assert job_versions(owner) == [job.id]
    assert [i.name for i in core.list_indexes("docs")] == ["vector_idx"]
    assert not owner.table.files.exists(job.path)


def test_a_job_whose_commit_landed_before_its_process_died_is_only_settled(core):
    owner = core.owner("docs")
    job, lease = abandoned(owner, jobs.CREATE_INDEX, INDEX, "died-after-its-commit")
    with leases.claimed(job.id, lease):
        core._build_index(owner, job.params)  # the commit lands, then the process dies before settling
    version = owner.table.latest_version()
    time.sleep(1.1)
    assert core.jobs.take_over([owner]) == 1
    core.jobs.join()
    assert owner.table.latest_version() == version and job_versions(owner) == [job.id]  # built once
    assert not owner.table.files.exists(job.path)


def test_a_commit_after_the_lease_was_lost_is_refused(core):
    owner = core.owner("docs")
    job, lease = abandoned(owner, jobs.CREATE_INDEX, INDEX, "stalled")
    time.sleep(1.1)
    taken = leases.acquire(owner.table.files, job.lease, 30, holder="the-replica-that-took-over")
    assert taken is not None
    with leases.claimed(job.id, lease), pytest.raises(leases.LeaseLost):
        core._build_index(owner, job.params)  # the stalled holder wakes up: its commit is fenced off
    assert job_versions(owner) == [] and core.list_indexes("docs") == []


def test_an_optimization_left_behind_is_run_again_safely(core):
    owner = core.owner("docs")
    job, _ = abandoned(owner, jobs.OPTIMIZE, {"cleanup_older_than": -1.0}, "optimize-left")
    time.sleep(1.1)
    assert core.jobs.take_over([owner]) == 1
    core.jobs.join()
    assert owner.table.manifest().rows == len(DOCS) and not owner.table.files.exists(job.path)
    assert len(owner.table.manifest().fragments) == 1


def test_a_store_started_on_a_directory_finishes_the_jobs_its_last_run_left(start_store, embed, tmp_path):
    first = start_store(embed, data_dir=tmp_path / "jobs", lease_seconds=1.0)
    create_docs(first.stub, rows=DOCS)
    owner = first.server.core.owner("docs")
    job, _ = abandoned(owner, jobs.CREATE_INDEX, INDEX, "left-by-a-crash")
    first.server.stop(grace=0.1)
    time.sleep(1.1)
    second = start_store(embed, data_dir=tmp_path / "jobs", lease_seconds=1.0)
    deadline = time.monotonic() + 30
    while not second.stub.GetTable(pb.GetTableRequest(name="docs")).table.indexes:
        assert time.monotonic() < deadline, "the job left behind was not finished"
        time.sleep(0.05)


def test_jobs_taken_over_run_on_threads_of_their_own_a_few_at_a_time(core, monkeypatch):
    owner = core.owner("docs")
    release = threading.Event()
    started: list[str] = []

    def slow(_owner, params):  # a long build, held until the test lets it finish
        started.append(params["n"])
        release.wait(30)
        return {}

    monkeypatch.setitem(core.jobs.runners, "slow", slow)
    for n in range(jobs.MAX_TAKEOVERS + 1):
        abandoned(owner, "slow", {"n": n}, f"slow-{n}")
    time.sleep(1.1)
    assert core.jobs.take_over([owner]) == jobs.MAX_TAKEOVERS  # returned while they run: the scan goes on
    assert core.jobs.take_over([owner]) == 0  # its own running jobs are not taken again, the last waits
    deadline = time.monotonic() + 10
    while len(started) < jobs.MAX_TAKEOVERS:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    release.set()
    core.jobs.join()
    assert core.jobs.take_over([owner]) == 1  # a later scan finds the one left
    core.jobs.join()
    assert sorted(started) == list(range(jobs.MAX_TAKEOVERS + 1))
    assert owner.table.files.entries(jobs.JOBS_DIR) == []


def test_a_claim_that_fails_gives_its_slot_back_and_a_lone_store_waits_for_slots(core, monkeypatch):
    owner = core.owner("docs")
    release = threading.Event()
    done: list[int] = []
    monkeypatch.setitem(core.jobs.runners, "slow", lambda _owner, params: (release.wait(30), done.append(1))[1])
    for n in range(jobs.MAX_TAKEOVERS + 1):
        abandoned(owner, "slow", {"n": n}, f"slow-{n}")
    time.sleep(1.1)
    unreachable = leases.acquire

    def failing(*args, **kwargs):
        raise OSError("the bucket is unreachable")

    monkeypatch.setattr(leases, "acquire", failing)
    for _ in range(jobs.MAX_TAKEOVERS + 1):  # more failures than slots: none is kept
        with pytest.raises(OSError):
            core.jobs.take_over([owner])
    monkeypatch.setattr(leases, "acquire", unreachable)
    scan = threading.Thread(target=core.jobs.take_over, args=([owner],), kwargs={"steal": True})
    scan.start()  # a lone store's one scan at start: it waits for a slot rather than leave the third job
    time.sleep(0.5)
    assert scan.is_alive() and done == []
    release.set()
    scan.join(30)
    core.jobs.join()
    assert len(done) == jobs.MAX_TAKEOVERS + 1 and owner.table.files.entries(jobs.JOBS_DIR) == []
