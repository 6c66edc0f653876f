"""kill -9 the store in the middle of a re-embedding operation: after the restart it resumes by itself and
finishes, the chunks committed before the kill are never embedded again (every text is counted as the embed
service's model sees it, with the embedding cache off so nothing hides a repeat), and every row ends up with
the new function's vector."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from embed_service.functions import get_registry
from embed_service.server import EmbedServer
from store_service.functions.operations import OperationLog
from store_service.storage import fragments
from tests.conftest import BASE_CONFIG
from tests.reliability.crash_trials import StoreProcess
from tests.store_service.conftest import WordHash, add, arrow_rows, function, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb

pytestmark = pytest.mark.slow
ROWS = 10_000
SEEN: Counter[str] = Counter()
SEEN_LOCK = threading.Lock()


class CountedHash(WordHash):
    """word-hash that counts every text it embeds and takes a little time per model call."""

    def embed_texts(self, texts: list[str], purpose: Any) -> np.ndarray:
        with SEEN_LOCK:
            SEEN.update(texts)
        time.sleep(0.02)
        return super().embed_texts(texts, purpose)


@pytest.fixture
def embed_address():
    get_registry().register("word-hash")(WordHash)
    get_registry().register("counted-hash")(CountedHash)
    server = EmbedServer(replace(BASE_CONFIG, metrics_port=-1, cache_mib=0)).start()
    yield f"127.0.0.1:{server.port}"
    server.stop(0.2)
    get_registry().unregister("counted-hash")
    get_registry().unregister("word-hash")


def test_a_backfill_killed_mid_way_resumes_without_embedding_finished_chunks_again(tmp_path, embed_address):
    SEEN.clear()
    data = tmp_path / "data"
    store = StoreProcess(data, embed_address)
    store.stub.CreateTable(pb.CreateTableRequest(name="docs", schema=pb.Schema(fields=[
        pb.Field(name="id", type=pb.DATA_TYPE_INT64), pb.Field(name="text", type=pb.DATA_TYPE_STRING),
        pb.Field(name="vector", type=pb.DATA_TYPE_VECTOR)]),
        embedding_functions=[function("word-hash", "text", "vector")]))
    texts = [f"river stone {i} maple {i % 97}" for i in range(ROWS)]
    add(store.stub, "docs", arrow_rows(pa.table({"id": np.arange(ROWS), "text": texts})))
    operation = store.stub.AlterEmbeddingFunction(pb.AlterEmbeddingFunctionRequest(
        table="docs", function=function("counted-hash", "text", "vector", dims=16)))
    deadline = time.monotonic() + 120
    while operation.rows_done < 2048:  # at least one chunk committed
        assert time.monotonic() < deadline and not operation.done, operation
        time.sleep(0.02)
        operation = store.stub.GetOperation(pb.GetOperationRequest(name=operation.name))
    store.stop(signal.SIGKILL)

    table_dir = data / "docs.lance"
    record = OperationLog(table_dir).load(operation.name.rsplit("/", 1)[1], table="docs")
    committed = np.concatenate([fragments.read(table_dir, ref, table="docs").column("_rowid").to_numpy()
                                for ref in record.chunks])
    assert 0 < len(committed) < ROWS and record.state == "RUNNING"

    restarted = StoreProcess(data, embed_address)
    deadline = time.monotonic() + 120
    operation = restarted.stub.GetOperation(pb.GetOperationRequest(name=operation.name))
    while not operation.done:
        assert time.monotonic() < deadline, operation
        time.sleep(0.05)
        operation = restarted.stub.GetOperation(pb.GetOperationRequest(name=operation.name))
    assert operation.state == pb.OPERATION_STATE_SUCCEEDED, operation.error
    assert operation.rows_done == operation.rows_total == ROWS
    # Row ids are 0..ROWS-1 in the order added, so row id i holds texts[i].
    assert all(SEEN[texts[i]] == 1 for i in committed), "a chunk committed before the kill was embedded again"
    assert all(SEEN[t] >= 1 for t in texts)
    reply = restarted.stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW))
    rows = rows_of(reply.rows).sort_by("id")
    np.testing.assert_allclose(np.asarray(rows.column("vector").to_pylist(), dtype=np.float32),
                               WordHash(dims=16).embed_texts(rows.column("text").to_pylist(), None), atol=1e-5)
    table = restarted.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert table.embedding_functions[0].name == "counted-hash" and table.version == operation.result_version
    restarted.stop(signal.SIGTERM)
