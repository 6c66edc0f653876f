"""Bad input gets a precise status with an ErrorInfo reason, and the service keeps serving."""

from __future__ import annotations

import grpc
import pytest

from tests.helpers import error_info, png, spec, texts
from tests.openai_server import OpenAICompatibleServer
from vectorlane.embed.v1 import embed_service_pb2 as pb


def expect(call, code: grpc.StatusCode, reason: str, **metadata: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as err:
        call()
    assert err.value.code() == code, err.value.details()
    info = error_info(err.value)
    assert info.reason == reason, err.value.details()
    assert info.domain == "embed.vectorlane.dev"
    for key, value in metadata.items():
        assert info.metadata[key] == value
    return err.value


@pytest.fixture
def clip(tiny_clip):
    return spec("open-clip", tiny_clip.settings())


def test_unknown_function(embed):
    err = expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=spec("no-such"), inputs=texts("x"))),
                 grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_FUNCTION", function="no-such")
    assert "no-such" in err.details() and "open-clip" in err.details()


def test_unknown_setting(embed, tiny_clip):
    expect(lambda: embed.stub.DescribeFunction(pb.DescribeFunctionRequest(
        function=spec("open-clip", tiny_clip.settings(colour="blue")))),
        grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_SETTING", setting="colour", function="open-clip")


def test_malformed_setting(embed, tiny_clip):
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings(batch_size=-3)),
                                                    inputs=texts("x"))),
           grpc.StatusCode.INVALID_ARGUMENT, "INVALID_SETTING", setting="batch_size")


def test_missing_function_name(embed):
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(inputs=texts("x"))),
           grpc.StatusCode.INVALID_ARGUMENT, "MISSING_FUNCTION")


def test_undecodable_image_names_its_index(embed, clip):
    inputs = [pb.EmbedInput(text="fine"), pb.EmbedInput(image_bytes=png((1, 2, 3))),
              pb.EmbedInput(image_bytes=b"\x89PNG\r\n\x1a\nnot really")]
    err = expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=clip, inputs=inputs)),
                 grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IMAGE", index="2")
    assert "input 2" in err.details()


def test_truncated_image(embed, clip):
    truncated = png((9, 9, 9), size=64, pattern=True)[:-40]
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=clip, inputs=[pb.EmbedInput(image_bytes=truncated)])),
           grpc.StatusCode.INVALID_ARGUMENT, "INVALID_IMAGE", index="0")


def test_empty_input(embed, clip):
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=clip, inputs=[pb.EmbedInput(text="a"),
                                                                           pb.EmbedInput()])),
           grpc.StatusCode.INVALID_ARGUMENT, "MISSING_INPUT", index="1")


def test_image_to_a_text_only_function(embed):
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=spec("sentence-transformers"),
                                                    inputs=[pb.EmbedInput(image_bytes=png((0, 0, 0)))])),
           grpc.StatusCode.INVALID_ARGUMENT, "UNSUPPORTED_MODALITY", index="0")


def test_too_many_inputs(start_embed, clip):
    embed = start_embed(max_inputs_per_request=3)
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=clip, inputs=texts("a", "b", "c", "d"))),
           grpc.StatusCode.INVALID_ARGUMENT, "TOO_MANY_INPUTS")


def test_oversized_message_is_refused_by_the_transport(start_embed, clip):
    embed = start_embed(max_message_bytes=64 * 1024)
    with pytest.raises(grpc.RpcError) as err:
        embed.stub.Embed(pb.EmbedRequest(function=clip, inputs=texts("x" * 100_000)))
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert len(embed.stub.Embed(pb.EmbedRequest(function=clip, inputs=texts("ok"))).embeddings) == 1


def test_model_load_failure(embed, tiny_clip):
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", name="No-Such-Arch",
                                                                  pretrained=None, device="cpu"),
                                                    inputs=texts("x"))),
           grpc.StatusCode.FAILED_PRECONDITION, "MODEL_LOAD_FAILED")
    broken = tiny_clip.root / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(
        function=spec("open-clip", tiny_clip.settings(pretrained=str(broken))), inputs=texts("x"))),
        grpc.StatusCode.FAILED_PRECONDITION, "MODEL_LOAD_FAILED")


def test_missing_cuda_device_is_a_load_failure(embed, tiny_clip):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings(device="cuda")),
                                                    inputs=texts("x"))),
           grpc.StatusCode.FAILED_PRECONDITION, "MODEL_LOAD_FAILED", setting="device")


def test_model_files_outside_the_model_roots_are_refused(embed, tiny_clip, tmp_path):
    outside = tmp_path / "elsewhere.pt"
    outside.write_bytes(tiny_clip.checkpoint.read_bytes())
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(
        function=spec("open-clip", tiny_clip.settings(pretrained=str(outside))), inputs=texts("x"))),
        grpc.StatusCode.INVALID_ARGUMENT, "MODEL_PATH_NOT_ALLOWED", setting="pretrained")
    expect(lambda: embed.stub.Embed(pb.EmbedRequest(
        function=spec("sentence-transformers", name="/etc"), inputs=texts("x"))),
        grpc.StatusCode.INVALID_ARGUMENT, "MODEL_PATH_NOT_ALLOWED", setting="name")


def test_bad_page_token(embed):
    expect(lambda: embed.stub.ListFunctions(pb.ListFunctionsRequest(page_token="garbage!")),
           grpc.StatusCode.INVALID_ARGUMENT, "INVALID_PAGE_TOKEN")


def test_full_queue_is_resource_exhausted(start_embed, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    monkeypatch.setenv("VECTORLANE_SECRET_K", "k")
    embed = start_embed(max_queued_inputs=2, max_batch_size=1, batching=False,
                        secret_allowed_hosts=("http://127.0.0.1:*",))
    with OpenAICompatibleServer(dims=4, delay=0.5) as upstream:
        function = spec("openai", name="m", dim=4, base_url=upstream.base_url, api_key="$var:k")
        request = pb.EmbedRequest(function=function, inputs=texts("a"))
        embed.stub.Embed(request)  # loaded
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(embed.stub.Embed, pb.EmbedRequest(function=function, inputs=texts(f"a{i}")))
                       for i in range(6)]  # each its own text: a cached one would not queue
            outcomes = []
            for f in futures:
                try:
                    f.result()
                    outcomes.append("ok")
                except grpc.RpcError as e:
                    outcomes.append(error_info(e).reason if e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                                    else e.code().name)
    assert "QUEUE_FULL" in outcomes and "ok" in outcomes, outcomes


def test_the_service_keeps_serving_after_errors(embed, clip):
    for bad in (pb.EmbedRequest(function=spec("nope")), pb.EmbedRequest(function=clip, inputs=[pb.EmbedInput()]),
                pb.EmbedRequest(function=clip, inputs=[pb.EmbedInput(image_bytes=b"junk")])):
        with pytest.raises(grpc.RpcError):
            embed.stub.Embed(bad)
    assert len(embed.stub.Embed(pb.EmbedRequest(function=clip, inputs=texts("still here"))).embeddings) == 1
    failed = embed.server.metrics.value("vectorlane_embed_requests_total",
                                        {"method": "Embed", "code": "INVALID_ARGUMENT"})
    assert failed == 3
