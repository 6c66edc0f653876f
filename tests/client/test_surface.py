"""The client's contract beyond the walkthrough: retries and deadlines, several vector columns, another
process, the same answers through the sync client, the async client and grpcurl, and the public surface."""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import subprocess
import sys
from concurrent import futures
from pathlib import Path

import grpc
import pytest

import vectorlane
from tests.helpers import GRPCURL, grpcurl
from vectorlane.embeddings import get_registry
from vectorlane.errors import DeadlineExceededError, UnavailableError
from vectorlane.pydantic import LanceModel, Vector
from vectorlane.store.v1 import store_service_pb2 as pb

ROWS = [{"id": 1, "title": "red apple", "body": "a story about whales"},
        {"id": 2, "title": "blue whale", "body": "a recipe with apples"},
        {"id": 3, "title": "green car", "body": "engines and wheels"}]


class Flaky:
    """A real gRPC server for StorageService that answers UNAVAILABLE to the first `failures` calls of each
    method, then a fixed reply; it counts attempts."""

    def __init__(self, failures: int, delay: float = 0.0) -> None:
        self.failures, self.delay, self.attempts = failures, delay, {}
        handlers = {"CountRows": grpc.unary_unary_rpc_method_handler(
                        self._answer("CountRows", pb.CountRowsResponse(count=7)),
                        request_deserializer=pb.CountRowsRequest.FromString,
                        response_serializer=pb.CountRowsResponse.SerializeToString),
                    "DeleteRows": grpc.unary_unary_rpc_method_handler(
                        self._answer("DeleteRows", pb.DeleteRowsResponse(version=2)),
                        request_deserializer=pb.DeleteRowsRequest.FromString,
                        response_serializer=pb.DeleteRowsResponse.SerializeToString),
                    "GetTable": grpc.unary_unary_rpc_method_handler(
                        lambda request, context: pb.GetTableResponse(table=pb.Table(
                            name=request.name, schema=pb.Schema(arrow_schema=b""))),
                        request_deserializer=pb.GetTableRequest.FromString,
                        response_serializer=pb.GetTableResponse.SerializeToString)}
        self.server = grpc.server(futures.ThreadPoolExecutor(4))
        self.server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "vectorlane.store.v1.StorageService", handlers),))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def _answer(self, method, reply):
        def handle(request, context):
            self.attempts[method] = self.attempts.get(method, 0) + 1
            if self.attempts[method] <= self.failures:
                context.abort(grpc.StatusCode.UNAVAILABLE, "warming up")
            if self.delay:
                import time
                time.sleep(self.delay)
            return reply
        return handle


def test_reads_are_retried_on_unavailable_and_writes_are_not():
    import pyarrow as pa

    flaky = Flaky(failures=2)
    try:
        db = vectorlane.connect(f"grpc://127.0.0.1:{flaky.port}")
        table = vectorlane.Table(db, pb.Table(name="t", schema=pb.Schema(
            arrow_schema=pa.schema([pa.field("id", pa.int64())]).serialize().to_pybytes())))
        assert table.count_rows() == 7 and flaky.attempts["CountRows"] == 3  # two retries, then the answer
        with pytest.raises(UnavailableError) as caught:
            table.delete("id = 1")
        assert flaky.attempts["DeleteRows"] == 1 and isinstance(caught.value, ConnectionError)
        db.close()
    finally:
        flaky.server.stop(None)


def test_every_call_has_a_deadline():
    import pyarrow as pa

    slow = Flaky(failures=0, delay=1.0)
    try:
        db = vectorlane.connect(f"grpc://127.0.0.1:{slow.port}", timeout=0.2)
        table = vectorlane.Table(db, pb.Table(name="t", schema=pb.Schema(
            arrow_schema=pa.schema([pa.field("id", pa.int64())]).serialize().to_pybytes())))
        with pytest.raises(DeadlineExceededError) as caught:
            table.count_rows()
        assert isinstance(caught.value, TimeoutError)
        assert vectorlane.connection.DEFAULT_TIMEOUT is not None
        db.close()
    finally:
        slow.server.stop(None)


def test_several_vector_columns_each_with_its_function_and_dimensions(db):
    by_title = get_registry().get("word-hash").create(dims=16)
    by_body = get_registry().get("word-hash").create(dims=24)

    class Article(LanceModel):
        id: int
        title: str = by_title.SourceField()
        body: str = by_body.SourceField()
        title_vector: Vector(16) = by_title.VectorField()
        body_vector: Vector(24) = by_body.VectorField()

    table = db.create_table("articles", schema=Article)
    table.add(ROWS)
    assert set(table.embedding_functions) == {"title_vector", "body_vector"}
    assert table.search("whale", vector_column_name="title_vector").limit(1).to_list()[0]["id"] == 2
    assert table.search("whales", vector_column_name="body_vector").limit(1).to_list()[0]["id"] == 1
    with pytest.raises(vectorlane.VectorlaneError) as ambiguous:
        table.search("whale").to_list()
    assert ambiguous.value.reason == "VECTOR_COLUMN_REQUIRED"


def test_another_process_searches_by_text_without_the_function(db, services):
    func = get_registry().get("word-hash").create(dims=16)

    class Doc(LanceModel):
        id: int
        title: str = func.SourceField()
        vector: Vector(16) = func.VectorField()

    db.create_table("docs", schema=Doc).add([{"id": r["id"], "title": r["title"]} for r in ROWS])
    script = ("import json, sys, vectorlane\n"
              "db = vectorlane.connect(sys.argv[1])\n"
              "rows = db.open_table('docs').search('blue whale').limit(2).select(['id']).to_list()\n"
              "print(json.dumps([r['id'] for r in rows]))\n")
    out = subprocess.run([sys.executable, "-c", script, f"grpc://{services.target}"], capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout)[0] == 2


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is installed by `make install`")
def test_sync_async_and_grpcurl_give_the_same_rows(db, services):
    func = get_registry().get("word-hash").create(dims=16)

    class Doc(LanceModel):
        id: int
        title: str = func.SourceField()
        vector: Vector(16) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    table.add([{"id": r["id"], "title": r["title"]} for r in ROWS])
    query = table.search("red whale").where("id > 0").select(["id", "title"]).limit(3)
    sync_rows = [(r["id"], round(r["_distance"], 5)) for r in query.to_list()]

    async def async_rows():
        adb = await vectorlane.connect_async(f"grpc://{services.target}")
        atable = await adb.open_table("docs")
        rows = await atable.search("red whale").where("id > 0").select(["id", "title"]).limit(3).to_list()
        await adb.close()
        return [(r["id"], round(r["_distance"], 5)) for r in rows]

    request = {"table": "docs", "text": "red whale", "where": "id > 0", "select": ["id", "title"], "limit": 3}
    done = grpcurl(services.target, "vectorlane.store.v1.StorageService/Search", data=request)
    assert done.returncode == 0, done.stderr
    grpcurl_rows = [(int(r["id"]), round(r["_distance"], 5)) for r in json.loads(done.stdout)["rows"]["json"]["rows"]]
    assert sync_rows == asyncio.run(async_rows()) == grpcurl_rows
    assert len(sync_rows) == 3


@pytest.mark.parametrize("module", ["vectorlane", "vectorlane.embeddings", "vectorlane.pydantic",
                                    "vectorlane.errors", "vectorlane.wire", "vectorlane.connection",
                                    "vectorlane.table", "vectorlane.query", "vectorlane.index",
                                    "vectorlane.dependencies", "vectorlane.tags"])
def test_public_modules_export_what_they_define(module):
    """`__all__` names only what the module has, and every public class or function it defines."""
    loaded = importlib.import_module(module)
    exported = set(loaded.__all__)
    assert exported and all(hasattr(loaded, name) for name in exported), module
    defined = {name for name, value in vars(loaded).items()
               if not name.startswith("_") and getattr(value, "__module__", None) == module
               and (isinstance(value, type) or callable(value))}
    assert defined <= exported, f"{module} defines {sorted(defined - exported)} without exporting them"


def test_the_package_is_typed():
    assert (Path(vectorlane.__file__).parent / "py.typed").is_file()


def test_the_client_type_checks_clean(tmp_path):
    """mypy over the package as users import it (`vectorlane`, which lives in client/)."""
    pytest.importorskip("mypy")
    (tmp_path / "vectorlane").symlink_to(Path(vectorlane.__file__).parent, target_is_directory=True)
    done = subprocess.run([sys.executable, "-m", "mypy", "-p", "vectorlane", "--ignore-missing-imports",
                           "--cache-dir", str(tmp_path / ".mypy_cache")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "MYPYPATH": str(tmp_path)})
    assert done.returncode == 0, done.stdout + done.stderr


def test_server_function_settings_are_checked_by_the_embed_service(db):
    from vectorlane.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError):
        get_registry().get("word-hash").create(dims=1).ndims()  # out of the function's range
    with pytest.raises(InvalidArgumentError) as literal:
        get_registry().get("openai").create(api_key="sk-live-abc").ndims()
    assert literal.value.reason == "LITERAL_SECRET" and "sk-live-abc" not in str(literal.value)
    func = get_registry().get("word-hash").create(dims=8, max_retries=0)
    assert func.ndims() == 8

    class Doc(LanceModel):
        text: str = func.SourceField()
        vector: Vector(8) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    assert table.embedding_functions["vector"].function.settings() == {"dims": 8, "max_retries": 0}
    assert json.loads(table.schema.metadata[b"embedding_functions"])[0]["model"] == {"dims": 8, "max_retries": 0}


def test_search_options_reach_the_store(db):
    import numpy as np

    func = get_registry().get("word-hash").create(dims=4)

    class Doc(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(4) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    vectors = np.eye(4, dtype=np.float32) * np.array([[1], [2], [3], [4]], dtype=np.float32)
    table.add([{"id": i, "text": str(i), "vector": v} for i, v in enumerate(vectors)])
    query = [1.0, 0.0, 0.0, 0.0]
    assert [r["id"] for r in table.search(query).limit(4).to_list()] == [0, 1, 2, 3]
    assert [r["id"] for r in table.search(query).limit(2).offset(1).to_list()] == [1, 2]
    assert [r["id"] for r in table.search(query).metric("dot").limit(1).to_list()] == [0]
    assert [r["id"] for r in table.search(query).distance_range(4.5, 10.5).to_list()] == [1, 2]
    table.create_index(index_type="IVF_FLAT", num_partitions=1)
    assert table.search(query).nprobes(1).refine_factor(2).limit(1).to_list()[0]["id"] == 0
    assert table.search().where("id >= 2").to_arrow().num_rows == 2  # no query: a filtered read
