"""Sends every bad request of the catalogue (`tests/bad_inputs.py`) to a real store and embed service with
auth on: each gets its status and ErrorInfo reason, both services keep serving, no stored byte changes, and
the README's errors section is the catalogue."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import grpc
import pytest

from tests import bad_inputs
from tests.bad_inputs import CASES, CLIP, DOCS, EMBED_TOKEN, PLAIN, STORE_TOKEN, Targets, embed_fn
from tests.helpers import error_info
from tests.store_service.conftest import create_docs, fields, function
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.embed.v1 import embed_service_pb2_grpc as epb_grpc
from vectorlane.store.v1 import store_service_pb2 as pb
from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

DOMAINS = {"store": "store.vectorlane.dev", "embed": "embed.vectorlane.dev"}


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.StreamUnaryClientInterceptor,
              grpc.UnaryStreamClientInterceptor, grpc.StreamStreamClientInterceptor):
    """Adds `authorization: Bearer <token>` to every call, as the client library does."""

    def __init__(self, token: str) -> None:
        self._header = ("authorization", f"Bearer {token}")

    def _with_token(self, details: Any) -> Any:
        return details._replace(metadata=tuple(details.metadata or ()) + (self._header,))

    def intercept_unary_unary(self, continuation: Callable, details: Any, request: Any) -> Any:
        return continuation(self._with_token(details), request)

    intercept_stream_unary = intercept_unary_stream = intercept_stream_stream = intercept_unary_unary


@pytest.fixture(scope="module")
def targets(tmp_path_factory, tiny_clip) -> Iterator[Targets]:
    from embed_service.functions import get_registry
    from embed_service.server import EmbedServer
    from store_service.server import StoreServer
    from tests.conftest import BASE_CONFIG
    from tests.store_service.conftest import BASE, WordHash

    get_registry().register("word-hash")(WordHash)
    root = tmp_path_factory.mktemp("catalogue")
    (root / "images").mkdir()
    embed = EmbedServer(replace(BASE_CONFIG, model_roots=(tiny_clip.root,), auth_tokens=(EMBED_TOKEN,),
                                image_roots=(root / "images",), image_max_bytes=bad_inputs.IMAGE_MAX_BYTES,
                                max_inputs_per_request=bad_inputs.MAX_INPUTS,
                                max_message_bytes=bad_inputs.EMBED_MAX_MESSAGE)).start()
    store = StoreServer(replace(BASE, data_dir=root / "data", embed_address=f"127.0.0.1:{embed.port}",
                                auth_tokens=(STORE_TOKEN,), embed_auth_token=EMBED_TOKEN)).start()
    big = [("grpc.max_send_message_length", 128 * 1024 * 1024)]
    store_channel = grpc.insecure_channel(f"127.0.0.1:{store.port}", options=big)
    embed_channel = grpc.insecure_channel(f"127.0.0.1:{embed.port}", options=big)
    found = Targets(
        store=pb_grpc.StorageServiceStub(grpc.intercept_channel(store_channel, _Bearer(STORE_TOKEN))),
        embed=epb_grpc.EmbeddingServiceStub(grpc.intercept_channel(embed_channel, _Bearer(EMBED_TOKEN))),
        store_channel=store_channel, embed_channel=embed_channel, image_root=root / "images",
        clip=embed_fn("open-clip", **tiny_clip.settings()))
    create_docs(found.store, rows=[{"id": i, "text": f"row {i}", "category": "c"} for i in range(20)])
    found.store.CreateTable(pb.CreateTableRequest(name=PLAIN, schema=fields(
        ("id", pb.DATA_TYPE_INT64, 0), ("vector", pb.DATA_TYPE_VECTOR, 4)),
        rows=bad_inputs.json_rows(*({"id": i, "vector": [float(i), 0.0, 1.0, 0.5]} for i in range(5)))))
    found.store.CreateTable(pb.CreateTableRequest(name=CLIP, schema=fields(
        ("id", pb.DATA_TYPE_INT64, 0), ("text", pb.DATA_TYPE_STRING, 0), ("vector", pb.DATA_TYPE_VECTOR, 0)),
        embedding_functions=[function("open-clip", "text", "vector", **tiny_clip.settings())]))
    yield found
    store_channel.close()
    embed_channel.close()
    store.stop(0.2)
    embed.stop(0.2)
    get_registry().unregister("word-hash")


def fingerprint(targets: Targets) -> tuple[str, ...]:
    root = targets.image_root.parent / "data" / "tables"
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".lock"):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    counts = [targets.store.CountRows(pb.CountRowsRequest(table=t)).count for t in (DOCS, PLAIN, CLIP)]
    return digest.hexdigest(), *counts


def still_serving(targets: Targets) -> None:
    assert targets.store.Search(pb.SearchRequest(table=DOCS, text="row 3", limit=1)).rows.json.rows
    reply = targets.embed.Embed(epb.EmbedRequest(function=targets.clip, inputs=[epb.EmbedInput(text="still")]))
    assert len(reply.embeddings) == 1


@pytest.mark.parametrize("key", sorted(CASES))
def test_bad_request_gets_its_status_and_changes_nothing(targets, key):
    case = CASES[key]
    before = fingerprint(targets)
    with pytest.raises(grpc.RpcError) as caught:
        case.call(targets)
    assert caught.value.code() == case.code, caught.value.details()
    if case.reason is not None:
        info = error_info(caught.value)
        assert (info.reason, info.domain) == (case.reason, DOMAINS[case.service]), caught.value.details()
    assert fingerprint(targets) == before
    still_serving(targets)


def test_the_catalogue_covers_every_rpc_of_both_services():
    services = {"store": pb.DESCRIPTOR.services_by_name["StorageService"],
                "embed": epb.DESCRIPTOR.services_by_name["EmbeddingService"]}
    for name, service in services.items():
        covered = {case.rpc for case in CASES.values() if case.service == name}
        assert covered == {m.name for m in service.methods}, name
    assert len(CASES) >= 50


def test_the_readme_errors_section_is_the_catalogue():
    section = bad_inputs.readme_section(bad_inputs.README.read_text())
    assert section == bad_inputs.markdown(), "run `python -m tests.bad_inputs` to rewrite README's errors section"
