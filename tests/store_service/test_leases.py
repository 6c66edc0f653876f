"""Leases on work that must run once, on a local folder (flock), on S3 and on Azure Blob Storage (conditional
PUTs on real servers on loopback: moto, Azurite): one holder at a time, takeover only after expiry and by
exactly one contender, a holder that lost its lease finds out before its next step, a released lease is free
at once."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from store_service.storage import leases
from store_service.storage.location import LocalFolder, ObjectFolder
from tests.object_store import environment


@pytest.fixture(params=["local", "s3", "az"])
def files(request, tmp_path):
    if request.param == "local":
        yield LocalFolder(tmp_path)
        return
    server = request.getfixturevalue("local_s3" if request.param == "s3" else "local_azure")
    with environment(server.environment()):
        yield ObjectFolder(server.uri(server.bucket("leases"), uuid.uuid4().hex[:8]))


def test_one_holder_at_a_time_and_a_takeover_only_after_expiry(files):
    first = leases.acquire(files, "job", seconds=1.5, holder="a")
    assert first is not None and first.epoch == 1
    assert leases.acquire(files, "job", seconds=1.5, holder="b") is None
    assert leases.holder_of(files, "job").holder == "a"
    assert first.renew() and first.check()
    time.sleep(1.6)  # expired: a, cut off, did not renew
    assert not first.check()  # a knows it by its own clock, without asking
    second = leases.acquire(files, "job", seconds=5, holder="b")
    assert second is not None and second.epoch == 2
    assert not first.renew()  # and a's renewal is refused: b holds it now
    with pytest.raises(leases.LeaseLost):
        first.fence()
    second.release()
    assert leases.holder_of(files, "job") is None
    third = leases.acquire(files, "job", seconds=5, holder="c")
    assert third is not None and third.epoch == 3


def test_of_many_contenders_for_an_expired_lease_exactly_one_wins(files):
    assert leases.acquire(files, "job", seconds=1.0, holder="dead") is not None
    time.sleep(1.1)
    won: list[str] = []
    barrier = threading.Barrier(6)

    def contend(name: str) -> None:
        barrier.wait()
        if leases.acquire(files, "job", seconds=30, holder=name) is not None:
            won.append(name)

    threads = [threading.Thread(target=contend, args=(f"r{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and leases.holder_of(files, "job").holder == won[0]


def test_a_heartbeat_keeps_a_lease_and_reports_its_loss(files):
    lease = leases.acquire(files, "beat", seconds=1.2, holder="a")
    lost = threading.Event()
    with leases.Heartbeat(lease, on_lost=lost.set):
        time.sleep(2.0)  # longer than the lease: renewed meanwhile
        assert lease.check() and leases.acquire(files, "beat", seconds=1.2, holder="b") is None
        record = files.read_tagged(f"{leases.LEASES_DIR}/beat.json")
        files.put_if_unchanged(f"{leases.LEASES_DIR}/beat.json",  # another process takes it by force
                               leases.Record("b", time.time() + 60, lease.epoch + 1).to_json(), record[1])
        assert lost.wait(2.0)
    assert not lease.check() and leases.holder_of(files, "beat").holder == "b"  # its release left b's record


def test_an_unreadable_record_counts_as_expired(files):
    files.put_if_absent(f"{leases.LEASES_DIR}/torn.json", b"{not json")
    taken = leases.acquire(files, "torn", holder="a")
    assert taken is not None and taken.epoch == 1


def test_records_of_leases_that_lapsed_long_ago_are_collected(files):
    old = leases.acquire(files, "old", seconds=1.0, holder="a")
    old.release()
    fresh = leases.acquire(files, "fresh", seconds=60, holder="a")
    assert leases.collect_expired(files, older_than_s=3600) == 0  # released just now: kept a while
    assert leases.collect_expired(files, older_than_s=-1) == 1  # the released one only; the live one stays
    assert leases.holder_of(files, "fresh").holder == "a" and fresh.renew()
    assert files.read_tagged(f"{leases.LEASES_DIR}/old.json") is None
    assert leases.acquire(files, "old", seconds=1.0, holder="b").epoch == 1  # taken afresh
