"""An acknowledged write survives kill -9, and no half-written commit is ever visible."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

import lance
import numpy as np

from store_service.storage.table import TableStore

BATCH = 50
WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    import pyarrow as pa
    from store_service.storage.table import TableStore

    store = TableStore(__import__("pathlib").Path(sys.argv[1]))
    schema = pa.schema([pa.field("id", pa.int64(), nullable=False), pa.field("payload", pa.string())])
    table = store.open("t") if store.exists("t") else store.create("t", schema)
    batch = int(sys.argv[2])
    while True:
        ids = np.arange(batch * {batch}, (batch + 1) * {batch})
        table.append(pa.table({{"id": ids, "payload": ["x" * 200] * len(ids)}}))
        print("ack", batch, flush=True)  # the commit returned: the write is acknowledged
        batch += 1
""").format(batch=BATCH)


def test_acknowledged_appends_survive_kill_9_and_no_partial_commit_shows(tmp_path):
    root = tmp_path / "data"
    rng = random.Random(42)
    acked: set[int] = set()
    next_batch = 0
    for _ in range(5):
        process = subprocess.Popen([sys.executable, "-c", WRITER, str(root), str(next_batch)],
                                   stdout=subprocess.PIPE, text=True)
        first = process.stdout.readline()  # the kill lands among appends, not during the imports
        if first.startswith("ack"):
            acked.add(int(first.split()[1]))
        deadline = time.monotonic() + rng.uniform(0.3, 1.5)
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if line.startswith("ack"):
                acked.add(int(line.split()[1]))
        process.send_signal(signal.SIGKILL)
        process.wait()
        for line in process.stdout:  # acks printed before the kill
            if line.startswith("ack"):
                acked.add(int(line.split()[1]))

        ids = lance.dataset(str(TableStore(root).open("t").directory)).to_table().column("id").to_numpy()
        batches, counts = np.unique(ids // BATCH, return_counts=True)
        assert set(acked) <= set(batches.tolist()), "an acknowledged batch was lost"
        assert (counts == BATCH).all(), "a batch is partly visible"
        assert len(np.unique(ids)) == len(ids)
        next_batch = int(batches.max()) + 1 if len(batches) else 0
    assert len(acked) > 5
