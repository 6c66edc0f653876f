"""Sends every bad request of the catalogue (`tests/bad_inputs.py`) to a real store and embed service with
auth on: each gets its status and ErrorInfo reason, both services keep serving, no stored byte changes, and
the README's errors section is the catalogue."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import grpc
import pytest

from tests import bad_inputs
from tests.bad_inputs import CASES, CLIP, DOCS, PLAIN, Targets, serving
from tests.helpers import error_info
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.store.v1 import store_service_pb2 as pb

DOMAINS = {"store": "store.vectorlane.dev", "embed": "embed.vectorlane.dev"}


@pytest.fixture(scope="module")
def targets(tmp_path_factory, tiny_clip) -> Iterator[Targets]:
    with serving(tmp_path_factory.mktemp("catalogue"), tiny_clip) as found:
        yield found


def fingerprint(targets: Targets) -> tuple[str, ...]:
    root = targets.image_root.parent / "data"
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != ".store.lock"):
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
