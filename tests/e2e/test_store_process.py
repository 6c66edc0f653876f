"""The store as users run it: `python -m store_service` processes, killed with -9 mid-stream, restarted on
the same data; a MiniLM table reopened by a new process; the README's grpcurl walkthrough."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest

from embed_service.config import EmbedConfig
from embed_service.server import EmbedServer
from tests.e2e.processes import StoreProcess
from tests.helpers import GRPCURL, grpcurl
from tests.store_service.conftest import arrow_rows, json_rows
from vectorlane.store.v1 import store_service_pb2 as pb

pytestmark = pytest.mark.slow
ROWS_PER_MESSAGE, MESSAGES_PER_ADD, DIMS = 40, 5, 8


def add_messages(first_id: int) -> Iterator[pb.AddRowsRequest]:
    for m in range(MESSAGES_PER_ADD):
        start = first_id + m * ROWS_PER_MESSAGE
        ids = np.arange(start, start + ROWS_PER_MESSAGE)
        vectors = np.random.default_rng(start).standard_normal((ROWS_PER_MESSAGE, DIMS)).astype(np.float32)
        batch = pa.table({"id": ids, "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMS)})
        yield pb.AddRowsRequest(table="t", rows=arrow_rows(batch)) if m == 0 else pb.AddRowsRequest(
            rows=arrow_rows(batch))
        time.sleep(0.01)  # a client producing rows as it goes: kills land inside streams


def test_kill_9_during_streamed_adds_keeps_acknowledged_adds_and_no_partial_add(tmp_path):
    data = tmp_path / "data"
    rng = random.Random(11)
    acked: list[int] = []
    per_add = ROWS_PER_MESSAGE * MESSAGES_PER_ADD
    next_add = 0
    for trial in range(4):
        store = StoreProcess(data)
        if trial == 0:
            store.stub.CreateTable(pb.CreateTableRequest(name="t", schema=pb.Schema(fields=[
                pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR,
                                                                       dimensions=DIMS)])))
        stop = threading.Event()

        def writer(first: int, stop: threading.Event = stop, store: StoreProcess = store) -> None:
            n = first
            while not stop.is_set():
                try:
                    store.stub.AddRows(add_messages(n * per_add), timeout=30)
                except grpc.RpcError:
                    return
                acked.append(n)  # the store answered: acknowledged
                n += 1

        thread = threading.Thread(target=writer, args=(next_add,))
        thread.start()
        time.sleep(rng.uniform(0.5, 1.5))
        store.kill()
        stop.set()
        thread.join(30)

        check = StoreProcess(data)
        reply = check.stub.ReadRows(pb.ReadRowsRequest(table="t", select=["id"], format=pb.ROW_FORMAT_ARROW))
        ids = pa.ipc.open_stream(pa.py_buffer(reply.rows.arrow_ipc)).read_all().column("id").to_numpy()
        adds, counts = np.unique(ids // per_add, return_counts=True)
        assert set(acked) <= set(adds.tolist()), "an acknowledged add was lost"
        assert (counts == per_add).all(), "an add is partly visible"
        assert len(np.unique(ids)) == len(ids)
        found = check.stub.Search(pb.SearchRequest(table="t", vector=pb.Vector(values=[0.0] * DIMS), limit=3))
        assert len(found.rows.json.rows) == min(3, len(ids))
        check.kill(signal.SIGTERM)
        next_add = int(adds.max()) + 1 if len(adds) else 0
    assert len(acked) >= 4


@pytest.fixture(scope="module")
def minilm_embed() -> Iterator[EmbedServer]:
    server = EmbedServer(EmbedConfig(port=0, metrics_port=-1, preload="sentence-transformers")).start()
    assert server.ready.wait(120), server.preload_error
    yield server
    server.stop(0.5)


FACTS = ["The Eiffel Tower is in Paris.", "Bananas are rich in potassium.", "The Pacific is the largest ocean.",
         "Python is a programming language.", "Mount Everest is the highest mountain."]


def test_minilm_table_reopened_by_a_new_process_searches_by_text(tmp_path, minilm_embed):
    data = tmp_path / "data"
    first = StoreProcess(data, minilm_embed.address)
    first.stub.CreateTable(pb.CreateTableRequest(
        name="facts", rows=json_rows([{"id": i, "text": t} for i, t in enumerate(FACTS)]),
        embedding_functions=[pb.EmbeddingFunctionConfig(name="sentence-transformers", source_column="text",
                                                        vector_column="vector")]))
    first.kill(signal.SIGTERM)
    second = StoreProcess(data, minilm_embed.address)
    try:
        for query, expected in [("tall peaks", 4), ("fruit nutrition", 1), ("coding", 3), ("sea", 2)]:
            reply = second.stub.Search(pb.SearchRequest(table="facts", text=query, limit=1, select=["id", "text"]))
            assert reply.rows.json.rows[0]["id"] == expected, (query, reply)
    finally:
        second.kill(signal.SIGTERM)


def readme_block(heading: str, language: str) -> str:
    """The first ```language code block after `heading` in the README."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    after = text[text.index(heading):]
    start = after.index(f"```{language}\n") + len(language) + 4
    return after[start:after.index("```", start)]


def json_values(text: str) -> list:
    """The JSON documents grpcurl printed one after another."""
    decoder, values, at = json.JSONDecoder(), [], 0
    while text[at:].strip():
        value, end = decoder.raw_decode(text, at + len(text[at:]) - len(text[at:].lstrip()))
        values.append(value)
        at = end
    return values


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is installed by `make install`")
def test_grpcurl_walkthrough(tmp_path, minilm_embed):
    """The README's grpcurl walkthrough, run by bash exactly as written (only the address differs: this
    store listens on a free port rather than 50051)."""
    store = StoreProcess(tmp_path / "data", minilm_embed.address)
    try:
        script = readme_block("### The same from grpcurl", "sh").replace("localhost:50051", store.target)
        done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=Path(__file__).resolve().parents[2],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        created, added, found, counted, versions, operation, found_after, indexed, by_words, hybrid = \
            json_values(done.stdout)
        assert created["table"]["schema"]["fields"][1]["dimensions"] == 384
        assert added == {"version": "2", "rows_added": "3"}
        assert found["rows"]["json"]["rows"][0]["text"] == "buy milk and eggs"
        assert counted == {"count": "3"}
        assert [v["version"] for v in versions["versions"]] == ["1", "2"]
        # The function change: one operation, done, every row re-embedded, switched in version 3.
        assert (operation["state"], operation["done"], operation["rows_done"], operation["rows_total"],
                operation["result_version"]) == ("OPERATION_STATE_SUCCEEDED", True, "3", "3", "3")
        assert found_after["rows"]["json"]["rows"][0]["text"] == "buy milk and eggs"
        assert found_after["version"] == "3"
        assert (indexed["index"]["index_type"], indexed["index"]["columns"]) == ("INDEX_TYPE_FTS", ["text"])
        assert [r["text"] for r in by_words["rows"]["json"]["rows"]] == ["call the dentist"]
        assert by_words["rows"]["json"]["rows"][0]["_score"] > 0
        fused = hybrid["rows"]["json"]["rows"]
        assert fused[0]["text"] == "book flights to Rome" and fused[0]["_relevance_score"] == pytest.approx(2 / 61)
        described = grpcurl(store.target, "vectorlane.store.v1.StorageService/GetTable", data={"name": "notes"})
        functions = json.loads(described.stdout)["table"]["embedding_functions"]
        assert [f["model"] for f in functions] == [{"normalize": False}]
        bad = grpcurl(store.target, "vectorlane.store.v1.StorageService/Search",
                      data={"table": "notes", "text": "x", "where": "text ="})
        assert bad.returncode != 0 and "INVALID_FILTER" in bad.stderr + bad.stdout
        # schema evolution from grpcurl: a computed column, a rename the function follows, a drop
        service = "vectorlane.store.v1.StorageService"
        for method, body in (("AddColumns", {"table": "notes", "expressions": [
                                 {"name": "shout", "expression": "upper(text)"}]}),
                             ("AlterColumns", {"table": "notes", "alterations": [{"path": "text", "rename": "note"}]}),
                             ("DropColumns", {"table": "notes", "columns": ["shout"]})):
            done = grpcurl(store.target, f"{service}/{method}", data=body)
            assert done.returncode == 0 and json.loads(done.stdout)["version"], done.stderr
        renamed = json.loads(grpcurl(store.target, f"{service}/GetTable", data={"name": "notes"}).stdout)["table"]
        assert [f["source_column"] for f in renamed["embedding_functions"]] == ["note"]
        refused = grpcurl(store.target, f"{service}/AddColumns", data={"table": "notes", "expressions": [
            {"name": "x", "expression": "repeat(note, 1000000000)"}]})
        assert refused.returncode != 0 and "FUNCTION_NOT_ALLOWED" in refused.stderr + refused.stdout
    finally:
        store.kill(signal.SIGTERM)


def test_client_walkthrough_with_minilm(tmp_path, minilm_embed):
    """The README's quickstart, run as written (only the address differs) against a store process and the
    MiniLM embed service; then what it printed there is checked."""
    store = StoreProcess(tmp_path / "data", minilm_embed.address)
    try:
        code = readme_block("## Quickstart", "python")
        assert "grpc://localhost:50051" in code
        namespace: dict = {}
        exec(compile(code.replace("grpc://localhost:50051", f"grpc://{store.target}"), "README.md", "exec",
                     dont_inherit=True),  # as a user runs it: without this module's `from __future__`
             namespace)
        table, func = namespace["table"], namespace["func"]
        result = table.search("greetings").limit(1).to_pandas()
        assert list(result.columns) == ["text", "vector", "_distance"] and result["text"][0] == "hello world"
        assert func.ndims() == 384
        assert json.loads(table.schema.metadata[b"embedding_functions"]) == [
            {"name": "sentence-transformers", "model": {}, "source_column": "text", "vector_column": "vector"}]
        namespace["db"].close()
    finally:
        store.kill(signal.SIGTERM)


def test_sigterm_during_load_drains_in_flight_calls_and_loses_nothing(tmp_path):
    """A rolling restart as Kubernetes does it: SIGTERM while a streamed add and searches are running.
    Health turns NOT_SERVING for watchers, the add in flight completes (acknowledged, so it is kept) within
    the grace period, calls after the signal are refused cleanly, and the process exits."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    data = tmp_path / "data"
    env_grace = {"VECTORLANE_GRACE_SECONDS": "10"}
    os.environ.update(env_grace)
    try:
        store = StoreProcess(data)
    finally:
        for key in env_grace:
            os.environ.pop(key)
    schema = pb.Schema(fields=[pb.Field(name="id", type=pb.DATA_TYPE_INT64),
                               pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR, dimensions=DIMS)])
    store.stub.CreateTable(pb.CreateTableRequest(name="t", schema=schema))
    statuses: list[int] = []
    watch = health_pb2_grpc.HealthStub(store.channel).Watch(health_pb2.HealthCheckRequest())

    def watcher() -> None:
        try:
            for reply in watch:
                statuses.append(reply.status)
        except grpc.RpcError:
            pass

    threading.Thread(target=watcher, daemon=True).start()
    give_up = time.monotonic() + 30
    while not statuses and time.monotonic() < give_up:  # the watch is established (its first answer is in)
        time.sleep(0.05)
    assert statuses == [health_pb2.HealthCheckResponse.SERVING], statuses
    signalled = threading.Event()

    def slow_add() -> Iterator[pb.AddRowsRequest]:
        for message in add_messages(0):
            yield message
            if not signalled.is_set():
                signalled.set()  # the first message is out: now the store is told to stop
                time.sleep(0.5)

    outcome: dict = {}

    def adder() -> None:
        try:
            outcome["reply"] = store.stub.AddRows(slow_add(), timeout=60)
        except grpc.RpcError as exc:
            outcome["error"] = exc.code()

    thread = threading.Thread(target=adder)
    thread.start()
    assert signalled.wait(30)
    store.process.send_signal(signal.SIGTERM)
    thread.join(60)
    assert store.process.wait(timeout=30) == 0  # exited by itself, well within the grace period
    assert health_pb2.HealthCheckResponse.NOT_SERVING in statuses[1:], statuses
    assert "reply" in outcome, outcome  # the add in flight was let finish and was acknowledged
    acknowledged = outcome["reply"].rows_added
    assert acknowledged == ROWS_PER_MESSAGE * MESSAGES_PER_ADD
    store.channel.close()

    again = StoreProcess(data)
    try:
        assert again.stub.CountRows(pb.CountRowsRequest(table="t")).count == acknowledged
    finally:
        again.kill(signal.SIGTERM)


def _free(port: int) -> bool:
    """Nothing listens on `port` (connections closed moments ago may linger in TIME_WAIT: allowed)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _freed(ports: tuple[int, ...], seconds: float = 30.0) -> bool:
    """All `ports` free within `seconds` (make exits on SIGTERM at once; its children finish stopping)."""
    deadline = time.monotonic() + seconds
    while not all(_free(p) for p in ports):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is installed by `make install`")
def test_readme_walkthroughs_run_as_written_against_make_run(tmp_path):
    """`make run` on its default ports, then the README's grpcurl walkthrough and Python quickstart exactly
    as written (localhost:50051), then SIGTERM stops both services."""
    ports = (50051, 50052, 9451, 9452)
    if not all(_free(p) for p in ports):
        pytest.skip(f"the default ports {ports} are in use on this machine")
    root = Path(__file__).resolve().parents[2]
    system = subprocess.Popen(["make", "--no-print-directory", "run"], cwd=root, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True,
                              env={**os.environ, "VECTORLANE_DATA_DIR": str(tmp_path / "data")})
    try:
        channel = grpc.insecure_channel("localhost:50051")
        grpc.channel_ready_future(channel).result(timeout=300)
        from grpc_health.v1 import health_pb2, health_pb2_grpc
        deadline = time.monotonic() + 120
        while health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest()).status != \
                health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        channel.close()

        done = subprocess.run(["bash", "-euo", "pipefail", "-c", readme_block("### The same from grpcurl", "sh")],
                              cwd=root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        found = json_values(done.stdout)[2]
        assert found["rows"]["json"]["rows"][0]["text"] == "buy milk and eggs"

        namespace: dict = {}
        exec(compile(readme_block("## Quickstart", "python"), "README.md", "exec", dont_inherit=True), namespace)
        assert namespace["table"].search("greetings").limit(1).to_list()[0]["text"] == "hello world"
        namespace["db"].close()
    finally:
        os.killpg(system.pid, signal.SIGTERM)
        try:
            output, _ = system.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(system.pid, signal.SIGKILL)
            output, _ = system.communicate()
            pytest.fail(f"`make run` did not stop within 60 s of SIGTERM:\n{output}")
    assert system.returncode in (0, 2, -15), output  # make reports the interrupted recipe; both children stopped
    assert _freed(ports[:2]), "a service outlived `make run`"
