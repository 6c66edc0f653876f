"""Crash trials: a client streams adds (precomputed vectors, and text embedded through the embed service),
deletes, updates, merge-inserts and index builds at a real `python -m store_service` process, which is
`kill -9`ed at a random moment. After each restart the tables must hold exactly the acknowledged changes,
plus the one change in flight either wholly or not at all; indexes must agree with exact search; versions
must list and read cleanly.

The client runs one change at a time, so the expected contents are a ledger (id -> (tag, text)) and, while
a change is in flight, the ledger as it would be after it.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa

from tests.store_service.conftest import WordHash, arrow_rows, function, json_rows
from vectorlane.store.v1 import store_service_pb2 as pb
from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

DIMS = 8
VEC, EMB = "vec", "emb"  # precomputed vectors; vectors from word-hash (32 dims) through the embed service
WORDS = "red green blue apple car sea sky stone river moon bird tree".split()
Ledger = dict[int, tuple[int, str]]  # id -> (tag, text)


class ServiceProcess:
    """A vectorlane service as its console entry point runs it (`python -m <package>`), on an ephemeral port.
    Every one started is killed by `kill_leftovers` (the reliability tests' autouse fixture) if a failing test
    left it running."""

    started: list["ServiceProcess"] = []

    def __init__(self, package: str, **env: str) -> None:
        import importlib

        environment = {**os.environ, "VECTORLANE_PORT": "0", "VECTORLANE_METRICS_PORT": "-1", **env}
        self.process = subprocess.Popen([sys.executable, "-m", package, "--log-level", "WARNING"], env=environment,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        ServiceProcess.started.append(self)
        self.target = importlib.import_module(f"{package}.cli").address_in_banner(self.process.stdout)
        assert self.target, f"{package} did not say where it listens"
        threading.Thread(target=self.process.stdout.read, daemon=True).start()  # keep the pipe drained
        self.channel = grpc.insecure_channel(self.target)

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    @classmethod
    def kill_leftovers(cls) -> None:
        for service in cls.started:
            if service.process.poll() is None:
                service.process.kill()
                service.process.wait(timeout=30)
        cls.started.clear()

    def stop(self, sig: int = signal.SIGKILL) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        self.channel.close()


class StoreProcess(ServiceProcess):
    def __init__(self, data_dir: Path, embed_address: str) -> None:
        super().__init__("store_service", VECTORLANE_DATA_DIR=str(data_dir), VECTORLANE_EMBED_ADDRESS=embed_address)
        self.stub = pb_grpc.StorageServiceStub(self.channel)


def vector_of(row_id: int) -> list[float]:
    return np.random.default_rng(row_id).standard_normal(DIMS).astype(np.float32).tolist()


def create_tables(stub: pb_grpc.StorageServiceStub) -> None:
    stub.CreateTable(pb.CreateTableRequest(name=VEC, schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="tag", type=pb.DATA_TYPE_INT64),
        pb.Field(name="text", type=pb.DATA_TYPE_STRING),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])))
    stub.CreateTable(pb.CreateTableRequest(name=EMB, schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="tag", type=pb.DATA_TYPE_INT64),
        pb.Field(name="text", type=pb.DATA_TYPE_STRING), pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR)]),
        embedding_functions=[function("word-hash", "text", "vector")]))


@dataclass
class Change:
    """One change the client makes: its RPC and the ledger it leaves behind."""
    kind: str
    table: str
    call: object  # Callable[[stub], Any]
    after: Ledger


@dataclass
class Workload:
    """Random changes against both tables, one at a time, with the ledger of what each acknowledged."""
    rng: random.Random
    ledgers: dict[str, Ledger] = field(default_factory=lambda: {VEC: {}, EMB: {}})
    next_id: int = 0
    next_tag: int = 1
    acknowledged: int = 0
    in_flight: Change | None = None

    def rows(self, table: str, ids: list[int], tag: int, text: dict[int, str]) -> pb.Rows:
        if table == EMB:  # no vectors: the store asks the embed service for them
            return json_rows([{"id": i, "tag": tag, "text": text[i]} for i in ids])
        vectors = np.asarray([vector_of(i) for i in ids], dtype=np.float32).reshape(-1)
        return arrow_rows(pa.table({"id": pa.array(ids, pa.int64()), "tag": pa.array([tag] * len(ids), pa.int64()),
                                    "text": [text[i] for i in ids],
                                    "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors), DIMS)}))

    def text(self) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(3))

    def next_change(self) -> Change:
        table = self.rng.choice([VEC, EMB])
        ledger, tag = self.ledgers[table], self.next_tag
        self.next_tag += 1
        existing = sorted(ledger)
        kind = self.rng.choices(["add", "delete", "update", "merge", "index"], [5, 1, 1, 2, 1])[0]
        if not existing or kind == "add":
            ids = list(range(self.next_id, self.next_id + self.rng.randint(20, 120)))
            self.next_id += len(ids)
            texts = {i: self.text() for i in ids}
            messages = [ids[k:k + 40] for k in range(0, len(ids), 40)]
            requests = [pb.AddRowsRequest(table=table if k == 0 else "", rows=self.rows(table, chunk, tag, texts))
                        for k, chunk in enumerate(messages)]
            return Change("add", table, lambda s: s.AddRows(iter(requests), timeout=60),
                          {**ledger, **{i: (tag, texts[i]) for i in ids}})
        picked = self.rng.sample(existing, min(len(existing), self.rng.randint(1, 15)))
        where = f"id IN ({', '.join(map(str, picked))})"
        if kind == "delete":
            return Change("delete", table, lambda s: s.DeleteRows(pb.DeleteRowsRequest(table=table, where=where),
                                                                   timeout=60),
                          {i: v for i, v in ledger.items() if i not in picked})
        if kind == "update":
            values = pb.UpdateRowsRequest(table=table, where=where)
            values.values.update({"tag": tag})
            return Change("update", table, lambda s: s.UpdateRows(values, timeout=60),
                          {i: ((tag, v[1]) if i in picked else v) for i, v in ledger.items()})
        if kind == "merge":
            fresh = list(range(self.next_id, self.next_id + self.rng.randint(1, 20)))
            self.next_id += len(fresh)
            texts = {i: self.text() for i in picked + fresh}
            request = pb.MergeInsertRequest(table=table, on=["id"], when_matched_update_all=True,
                                            when_not_matched_insert_all=True,
                                            rows=self.rows(table, picked + fresh, tag, texts))
            return Change("merge", table, lambda s: s.MergeInsert(iter([request]), timeout=60),
                          {**ledger, **{i: (tag, texts[i]) for i in picked + fresh}})
        index = self.rng.choice([pb.INDEX_TYPE_IVF_FLAT, pb.INDEX_TYPE_HNSW])
        request = pb.CreateIndexRequest(table=table, index_type=index, replace=True,
                                        num_partitions=max(1, min(8, len(existing) // 40)))
        return Change("index", table, lambda s: s.CreateIndex(request, timeout=120), dict(ledger))

    def run(self, stub: pb_grpc.StorageServiceStub, stop: threading.Event) -> None:
        """Makes changes until `stop` or until the store goes away; records each acknowledged one."""
        while not stop.is_set():
            change = self.next_change()
            self.in_flight = change
            try:
                change.call(stub)
            except grpc.RpcError as exc:
                if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
                                  grpc.StatusCode.DEADLINE_EXCEEDED):
                    return  # killed mid-change: its outcome is what the trial checks
                if change.kind == "index" and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                    self.in_flight = None
                    continue  # too few rows for the partitions asked for: refused, nothing changed
                raise
            self.ledgers[change.table] = change.after
            self.acknowledged += 1
            self.in_flight = None


def read_table(stub: pb_grpc.StorageServiceStub, table: str, version: int = 0) -> pa.Table:
    reply = stub.ReadRows(pb.ReadRowsRequest(table=table, format=pb.ROW_FORMAT_ARROW, version=version,
                                             limit=100_000), timeout=60)
    return pa.ipc.open_stream(pa.py_buffer(reply.rows.arrow_ipc)).read_all()


def contents(rows: pa.Table) -> Ledger:
    return {i: (t, x) for i, t, x in zip(rows.column("id").to_pylist(), rows.column("tag").to_pylist(),
                                         rows.column("text").to_pylist())}


def check_after_restart(stub: pb_grpc.StorageServiceStub, workload: Workload, rng: random.Random) -> dict[str, str]:
    """Every check of a restarted store; moves the ledgers to what the store holds. Returns, per table,
    whether the change in flight at the kill landed ("applied", "not applied" or "none")."""
    outcome = {}
    in_flight = workload.in_flight
    for table in (VEC, EMB):
        rows = read_table(stub, table)
        found = contents(rows)
        expected = workload.ledgers[table]
        if in_flight is not None and in_flight.table == table and found != expected:
            assert found == in_flight.after, f"{table}: the change in flight ({in_flight.kind}) is half-visible"
            outcome[table] = "applied"
        else:
            assert found == expected, f"{table}: acknowledged changes lost or unacknowledged ones visible"
            outcome[table] = "not applied" if in_flight is not None and in_flight.table == table else "none"
        workload.ledgers[table] = found
        assert stub.CountRows(pb.CountRowsRequest(table=table)).count == len(found)
        check_vectors(table, rows)
        check_indexes(stub, table, rows, rng)
        check_versions(stub, table)
    workload.in_flight = None
    return outcome


def check_vectors(table: str, rows: pa.Table) -> None:
    if rows.num_rows == 0:  # a kill before the first add was acknowledged, or every row deleted
        return
    vectors = np.asarray(rows.column("vector").to_pylist(), dtype=np.float32)
    if table == VEC:
        expected = np.asarray([vector_of(i) for i in rows.column("id").to_pylist()], dtype=np.float32)
    else:
        expected = WordHash().embed_texts(rows.column("text").to_pylist(), None)
    assert vectors.shape == expected.reshape(len(rows), -1).shape
    np.testing.assert_allclose(vectors, expected.reshape(vectors.shape), atol=1e-5)


def check_indexes(stub: pb_grpc.StorageServiceStub, table: str, rows: pa.Table, rng: random.Random) -> None:
    """Searches through the table's index (if any) agree with exact search over the rows read back."""
    if len(rows) == 0:
        return
    ids = np.asarray(rows.column("id").to_pylist())
    vectors = np.asarray(rows.column("vector").to_pylist(), dtype=np.float32)
    indexes = stub.GetTable(pb.GetTableRequest(name=table)).table.indexes
    exact_only = not indexes or indexes[0].index_type == pb.INDEX_TYPE_IVF_FLAT  # IVF_FLAT probing every list
    for _ in range(3):
        query = vectors[rng.randrange(len(vectors))] + np.float32(0.01)
        k = min(10, len(ids))
        distances = ((vectors - query) ** 2).sum(axis=1)
        best = np.sort(distances)[:k]
        reply = stub.Search(pb.SearchRequest(table=table, vector=pb.Vector(values=query.tolist()), limit=k,
                                             select=["id"], nprobes=64, ef=512), timeout=60)
        got = [int(r.fields["id"].number_value) for r in reply.rows.json.rows]
        assert len(got) == k and set(got) <= set(ids.tolist()), f"{table}: rows the table does not hold: {got}"
        by_id = dict(zip(ids.tolist(), distances))
        found = np.sort([by_id[i] for i in got])  # texts repeat in `emb`: compare distances, not ids
        if exact_only:
            np.testing.assert_allclose(found, best, rtol=1e-4, atol=1e-4, err_msg=f"{table}: not the exact top {k}")
        else:
            assert (found <= best[-1] + 1e-4).mean() >= 0.9, f"{table}: the HNSW index misses the exact top {k}"


def check_versions(stub: pb_grpc.StorageServiceStub, table: str) -> None:
    versions = list(stub.ListVersions(pb.ListVersionsRequest(table=table, page_size=1000)).versions)
    numbers = [v.version for v in versions]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers), numbers
    for v in versions[-3:]:  # the newest versions read back with the row count they claim
        assert len(read_table(stub, table, v.version)) == v.num_rows
