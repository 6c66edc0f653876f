"""Faults around the store: the embed service hung, slow or killed during an add or a text search; an
OpenAI-compatible endpoint answering bursts of 429 and 500; a full disk. Each time the caller gets a clear
status within its deadline, the table is unchanged and readable, and the same request succeeds once the fault
is gone."""

from __future__ import annotations

import errno
import subprocess
import threading
import time
from typing import Any

import grpc
import numpy as np
import pyarrow as pa
import pytest

from embed_service.functions import get_registry
from store_service.storage import durable
from tests.helpers import error_info, spec, texts
from tests.openai_server import OpenAICompatibleServer
from tests.store_service.conftest import (WordHash, add, arrow_rows, create_docs, json_rows, start_store,  # noqa: F401
                                          table_files, word_hash_registered)
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.store.v1 import store_service_pb2 as pb

GATE = threading.Event()  # cleared: the slow-hash model hangs until it is set
DELAY = [0.0]             # seconds the slow-hash model takes per call
ROWS = [{"id": i, "text": f"row {i}", "category": "c"} for i in range(10)]
SLACK = 3.0               # seconds past the caller's deadline that still count as "within" it on a busy machine


class SlowHash(WordHash):
    """word-hash behind a model that can hang or be slow, as a stuck GPU or a remote endpoint would."""

    def embed_texts(self, texts: list[str], purpose: Any) -> np.ndarray:
        GATE.wait(120)
        time.sleep(DELAY[0])
        return super().embed_texts(texts, purpose)


@pytest.fixture
def slow_store(start_embed, start_store):  # noqa: F811
    get_registry().register("slow-hash")(SlowHash)
    GATE.set()
    DELAY[0] = 0.0
    embed = start_embed()
    store = start_store(embed)
    create_docs(store.stub, rows=ROWS)
    store.stub.CreateTable(pb.CreateTableRequest(name="slow", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="text", type=pb.DATA_TYPE_STRING),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR)]), embedding_functions=[pb.EmbeddingFunctionConfig(
            name="slow-hash", source_column="text", vector_column="vector")],
        rows=json_rows([{"id": r["id"], "text": r["text"]} for r in ROWS[:3]])))
    yield store
    GATE.set()
    get_registry().unregister("slow-hash")


def state(store, table: str) -> tuple[int, int, set[str]]:
    info = store.stub.GetTable(pb.GetTableRequest(name=table)).table
    return info.num_rows, info.version, table_files(store.data_dir, table)


def failing(call, code: grpc.StatusCode, deadline: float) -> grpc.RpcError:
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        call()
    assert caught.value.code() == code, caught.value.details()
    assert time.monotonic() - started < deadline + SLACK, "the caller waited past its deadline"
    return caught.value


def test_a_hung_embed_service_costs_the_caller_its_deadline_and_changes_nothing(slow_store):
    before = state(slow_store, "slow")
    GATE.clear()
    message = pb.AddRowsRequest(table="slow", rows=json_rows([{"id": 50, "text": "stuck"}]))
    failing(lambda: slow_store.stub.AddRows(iter([message]), timeout=1.0), grpc.StatusCode.DEADLINE_EXCEEDED, 1.0)
    failing(lambda: slow_store.stub.Search(pb.SearchRequest(table="slow", text="row 1"), timeout=1.0),
            grpc.StatusCode.DEADLINE_EXCEEDED, 1.0)
    assert slow_store.stub.Search(pb.SearchRequest(table="docs", text="row 1", limit=1)).rows.json.rows  # others fine
    GATE.set()  # the model comes back: the abandoned add must still not land
    time.sleep(1.0)
    assert state(slow_store, "slow") == before
    assert add(slow_store.stub, "slow", json_rows([{"id": 50, "text": "stuck"}]), ).rows_added == 1
    assert slow_store.stub.CountRows(pb.CountRowsRequest(table="slow")).count == before[0] + 1


def test_a_slow_embed_service_serves_callers_who_can_wait_and_fails_those_who_cannot(slow_store):
    DELAY[0] = 0.5
    before = state(slow_store, "slow")
    failing(lambda: slow_store.stub.Search(pb.SearchRequest(table="slow", text="row 1"), timeout=0.2),
            grpc.StatusCode.DEADLINE_EXCEEDED, 0.2)
    assert state(slow_store, "slow") == before
    found = slow_store.stub.Search(pb.SearchRequest(table="slow", text="row 1", limit=1), timeout=10)
    assert found.rows.json.rows[0].fields["id"].number_value == 1
    message = pb.AddRowsRequest(table="slow", rows=json_rows([{"id": 60, "text": "late"}]))
    assert slow_store.stub.AddRows(iter([message]), timeout=10).rows_added == 1


def test_a_killed_embed_service_is_unavailable_then_the_store_reconnects_when_it_is_back(start_embed,
                                                                                         start_store):  # noqa: F811
    embed = start_embed()
    store = start_store(embed)
    create_docs(store.stub, rows=ROWS)
    before = state(store, "docs")
    port = embed.server.port
    embed.server.stop(grace=0)
    message = pb.AddRowsRequest(table="docs", rows=json_rows([{"id": 70, "text": "while down"}]))
    failing(lambda: store.stub.AddRows(iter([message]), timeout=10), grpc.StatusCode.UNAVAILABLE, 10)
    failing(lambda: store.stub.Search(pb.SearchRequest(table="docs", text="row 1"), timeout=10),
            grpc.StatusCode.UNAVAILABLE, 10)
    assert state(store, "docs") == before
    start_embed(port=port)  # back on the same address; the store was not restarted
    assert eventually(lambda: store.stub.AddRows(iter([message]), timeout=30)).rows_added == 1
    assert store.stub.Search(pb.SearchRequest(table="docs", text="while down", limit=1),
                             timeout=30).rows.json.rows[0].fields["id"].number_value == 70


def eventually(call, within: float = 10.0) -> Any:
    """`call`'s result once it stops failing with UNAVAILABLE (a channel reconnecting, backoff at most 2 s)."""
    give_up = time.monotonic() + within
    while True:
        try:
            return call()
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > give_up:
                raise
            time.sleep(0.2)


@pytest.mark.parametrize("max_retries,outcome,requests", [(7, "ok", 6), (3, "UNAVAILABLE", 4), (0, "UNAVAILABLE", 1)])
def test_bursts_of_429_and_500_succeed_within_max_retries(start_embed, monkeypatch, max_retries, outcome, requests):
    monkeypatch.setenv("VECTORLANE_SECRET_BURST_KEY", "sk-burst")
    embed = start_embed(secret_allowed_hosts=("http://127.0.0.1:*",))
    with OpenAICompatibleServer(dims=8) as upstream:
        for status, times in ((429, 2), (500, 1), (429, 1), (503, 1)):  # five failures, then it answers
            upstream.fail_next(status, times)
        request = epb.EmbedRequest(function=spec("openai", name="m", dim=8, base_url=upstream.base_url,
                                                 api_key="$var:burst_key", max_retries=max_retries),
                                   inputs=texts("alpha"))
        if outcome == "ok":
            assert len(embed.stub.Embed(request, timeout=30).embeddings) == 1
        else:
            with pytest.raises(grpc.RpcError) as caught:
                embed.stub.Embed(request, timeout=30)
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(caught.value).reason == "UPSTREAM_UNAVAILABLE"
        assert len(upstream.requests) == requests


# ----- a full disk -------------------------------------------------------------------------------------------
def vector_rows(first: int, count: int) -> pb.Rows:
    vectors = np.random.default_rng(first).standard_normal((count, 8)).astype(np.float32)
    return arrow_rows(pa.table({"id": pa.array(range(first, first + count), pa.int64()),
                                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 8)}))


def make_vector_table(store) -> None:
    store.stub.CreateTable(pb.CreateTableRequest(name="v", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR,
                                                               dimensions=8)]), rows=vector_rows(0, 100)))


def assert_readable_as_before(store, before: tuple[int, int, set[str]]) -> None:
    assert state(store, "v") == before  # same rows, same version, no leftover files
    assert store.stub.Search(pb.SearchRequest(table="v", vector=pb.Vector(values=[0.0] * 8), limit=3)).rows.json.rows
    assert store.stub.ReadRows(pb.ReadRowsRequest(table="v", version=before[1], limit=1000)).rows.json.rows


def test_a_full_disk_fails_the_add_clearly_and_the_table_stays_at_its_version(start_store, monkeypatch):  # noqa: F811
    """The disk reports itself full when the store makes a staged fragment durable (fsync answers ENOSPC on
    filesystems that allocate late); the real full filesystem is the test below."""
    store = start_store(None)
    make_vector_table(store)
    before = state(store, "v")
    full = [True]
    real_fsync = durable.fsync_file

    def fsync_file(path):
        if full[0]:
            with durable.storage_errors(path):
                raise OSError(errno.ENOSPC, "No space left on device")
        real_fsync(path)

    monkeypatch.setattr(durable, "fsync_file", fsync_file)
    caught = failing(lambda: add(store.stub, "v", vector_rows(100, 500)), grpc.StatusCode.RESOURCE_EXHAUSTED, 30)
    assert error_info(caught).reason == "STORAGE_FULL" and "nothing was committed" in caught.details()
    assert str(store.data_dir) not in caught.details()
    assert_readable_as_before(store, before)
    full[0] = False  # space freed
    assert add(store.stub, "v", vector_rows(100, 500)).rows_added == 500
    assert state(store, "v")[0] == 600


def _mount_tmpfs(path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_a_real_full_filesystem_fails_adds_clearly_and_keeps_the_table(start_store, tmp_path):  # noqa: F811
    mount = tmp_path / "small"
    if not _mount_tmpfs(mount, "1m"):
        pytest.skip("cannot mount a small tmpfs here (needs CAP_SYS_ADMIN); the injected-error test covers it")
    try:
        store = start_store(None, data_dir=mount / "data")
        make_vector_table(store)
        first = 100
        with pytest.raises(grpc.RpcError) as caught:
            for _ in range(200):  # ~5 KiB per add until the 1 MiB filesystem is full
                before = state(store, "v")
                add(store.stub, "v", vector_rows(first, 100))
                first += 100
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, caught.value.details()
        assert error_info(caught.value).reason == "STORAGE_FULL"
        assert_readable_as_before(store, before)
        subprocess.run(["mount", "-o", "remount,size=8m", str(mount)], check=True)
        assert add(store.stub, "v", vector_rows(first, 100)).rows_added == 100
        store.server.stop(grace=0.2)
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
