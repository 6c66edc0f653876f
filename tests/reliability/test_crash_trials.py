"""kill -9 the store at random moments while a client changes two tables (one embedded through the embed
service): every acknowledged change survives, the change in flight is all or nothing, indexes agree with exact
search, versions list and read. `VECTORLANE_CRASH_TRIALS` sets the number of kills (`make stress`: 25)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from embed_service.functions import get_registry
from embed_service.server import EmbedServer
from tests.conftest import BASE_CONFIG
from tests.helpers import error_info
from tests.reliability.crash_trials import EMB, VEC, StoreProcess, Workload, check_after_restart, create_tables
from tests.store_service.conftest import WordHash
from vectorlane.store.v1 import store_service_pb2 as pb

pytestmark = pytest.mark.slow
TRIALS = int(os.environ.get("VECTORLANE_CRASH_TRIALS", "6"))


@pytest.fixture
def word_hash_embed():
    get_registry().register("word-hash")(WordHash)
    server = EmbedServer(replace(BASE_CONFIG, metrics_port=-1)).start()
    yield f"127.0.0.1:{server.port}"
    server.stop(0.2)
    get_registry().unregister("word-hash")


def test_kill_9_at_random_moments_loses_no_acknowledged_change_and_shows_no_half_change(tmp_path, word_hash_embed):
    data, rng = tmp_path / "data", random.Random(int(os.environ.get("VECTORLANE_CRASH_SEED", "7")))
    workload = Workload(random.Random(rng.random()))
    outcomes: Counter[str] = Counter()
    strays = 0
    for trial in range(TRIALS):
        store = StoreProcess(data, word_hash_embed)
        if trial == 0:
            create_tables(store.stub)
        stop = threading.Event()
        client = threading.Thread(target=workload.run, args=(store.stub, stop))
        client.start()
        time.sleep(rng.uniform(0.2, 2.0))
        store.stop(signal.SIGKILL)
        stop.set()
        client.join(60)
        assert not client.is_alive()
        strays += len(stray_files(data))
        restarted = StoreProcess(data, word_hash_embed)
        assert stray_files(data) == [], "files no version references outlived a restart"
        kind = workload.in_flight.kind if workload.in_flight else "between changes"
        for landed in check_after_restart(restarted.stub, workload, rng).values():
            if landed != "none":
                outcomes[f"{kind} {landed}"] += 1
        restarted.stop(signal.SIGTERM)
    print(f"\n{TRIALS} kills, {workload.acknowledged} acknowledged changes; in flight at the kill: {dict(outcomes)}; "
          f"{strays} stray files left by the kills, all collected at restart")
    assert workload.acknowledged >= TRIALS


def stray_files(data: Path) -> list[str]:
    """Files under the data directory that no version of any table references."""
    from store_service.storage.recovery import referenced_files

    found = [p.name for p in data.iterdir() if p.name.startswith((".creating-", ".dropped-"))]
    for table in (p for p in data.iterdir() if p.name.endswith(".lance") and not p.name.startswith(".")):
        keep = referenced_files(table)
        found += [f"{table.name}/{sub}/{f.name}" for sub in ("data", "_deletions", "_vectorlane/indexes")
                  if (table / sub).is_dir() for f in (table / sub).iterdir() if f"{sub}/{f.name}" not in keep]
        found += [f"{table.name}/{sub}/{f.name}" for sub in ("_versions", "_transactions") if (table / sub).is_dir()
                  for f in (table / sub).iterdir() if f.name.startswith(".")]
    return found


def test_a_corrupt_fragment_is_data_loss_for_its_table_only(tmp_path, word_hash_embed):
    data = tmp_path / "data"
    store = StoreProcess(data, word_hash_embed)
    create_tables(store.stub)
    workload = Workload(random.Random(3))
    for _ in range(6):
        change = workload.next_change()
        change.call(store.stub)
        workload.ledgers[change.table] = change.after
    store.stop(signal.SIGTERM)
    fragments = sorted((data / f"{VEC}.lance" / "data").glob("*.lance"))
    assert fragments, "no fragment files to corrupt"
    raw = bytearray(fragments[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    fragments[0].write_bytes(bytes(raw))

    store = StoreProcess(data, word_hash_embed)
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.ReadRows(pb.ReadRowsRequest(table=VEC))
    assert caught.value.code() == grpc.StatusCode.DATA_LOSS
    assert error_info(caught.value).reason == "FRAGMENT_CORRUPT"
    assert VEC in caught.value.details()
    assert store.stub.CountRows(pb.CountRowsRequest(table=EMB)).count == len(workload.ledgers[EMB])
    assert set(store.stub.ListTables(pb.ListTablesRequest()).names) == {VEC, EMB}
    store.stop(signal.SIGTERM)
