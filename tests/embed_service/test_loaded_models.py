"""Loaded models are shared by settings that do not change the weights, and bounded in number: a caller who
varies `batch_size`, `max_retries` or `normalize`, or asks for many models, cannot grow the service without
end (before: +46 MiB and two threads per distinct `batch_size`, never freed)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest

from tests.helpers import error_info, spec, texts, vectors
from tests.openai_server import OpenAICompatibleServer
from vectorlane.embed.v1 import embed_service_pb2 as pb


def loads(embed, function: str = "open-clip") -> float:
    return embed.server.metrics.value("vectorlane_embed_model_loads_total", {"function": function, "outcome": "ok"})


def test_settings_that_do_not_change_the_weights_share_one_model(start_embed, tiny_clip):
    embed = start_embed(max_function_variants=8)
    first = vectors(embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()),
                                                     inputs=texts("a red square"))))
    threads = threading.active_count()
    for size in range(1, 30):
        variant = tiny_clip.settings(batch_size=size, max_retries=size % 3)
        same = vectors(embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", variant),
                                                        inputs=texts("a red square"))))
        np.testing.assert_allclose(same, first, atol=1e-5)
    raw = vectors(embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings(normalize=False)),
                                                   inputs=texts("a red square"))))
    assert loads(embed) == 1  # 31 variants, one model
    assert not np.isclose(np.linalg.norm(raw), 1.0)  # the variant's own setting still applies
    np.testing.assert_allclose(raw / np.linalg.norm(raw), first, atol=1e-5)
    models, variants = embed.server.core.loaded_counts()
    assert (models, variants) == (1, 8)  # the least recently used idle variants went
    assert threading.active_count() <= threads + 2 * 8  # each variant has at most two queue threads


def test_distinct_models_are_bounded_and_the_least_recently_used_is_evicted(start_embed, tiny_clip):
    embed = start_embed(max_loaded_models=2)
    models = [tiny_clip.settings(), tiny_clip.settings(pretrained=None), tiny_clip.settings(precision="bf16")]
    for settings in models:
        embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", settings), inputs=texts("x")))
        assert embed.server.core.loaded_counts()[0] <= 2
    assert loads(embed) == 3
    embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", models[2]), inputs=texts("x")))
    assert loads(embed) == 3  # still loaded
    embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", models[0]), inputs=texts("x")))
    assert loads(embed) == 4  # the first was evicted for the third, so it loads again


def test_a_preloaded_model_is_never_evicted(start_embed, tiny_clip):
    import json

    embed = start_embed(max_loaded_models=1,
                        preload=json.dumps([{"name": "open-clip", "settings": tiny_clip.settings()}]))
    assert embed.server.ready.wait(60) and embed.server.preload_error is None
    with pytest.raises(grpc.RpcError) as refused:  # the only slot is pinned, so another model cannot load
        embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings(pretrained=None)),
                                         inputs=texts("x")))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_info(refused.value).reason == "MODEL_CACHE_FULL"
    embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()), inputs=texts("x")))
    assert loads(embed) == 1


def test_a_busy_model_is_not_evicted_and_a_new_one_is_refused_meanwhile(start_embed, monkeypatch):
    embed = start_embed(max_loaded_models=1, secret_allowed_hosts=("http://127.0.0.1:*",))
    with OpenAICompatibleServer(dims=4, delay=1.5) as upstream:
        slow = spec("openai", name="m1", dim=4, base_url=upstream.base_url)
        other = spec("openai", name="m2", dim=4, base_url=upstream.base_url)
        with ThreadPoolExecutor(1) as pool:
            busy = pool.submit(embed.stub.Embed, pb.EmbedRequest(function=slow, inputs=texts("busy")))
            while not upstream.requests:  # the first call reached the model
                threading.Event().wait(0.01)
            with pytest.raises(grpc.RpcError) as refused:
                embed.stub.Embed(pb.EmbedRequest(function=other, inputs=texts("other")))
            assert error_info(refused.value).reason == "MODEL_CACHE_FULL"
            assert len(busy.result().embeddings) == 1  # the busy one finished undisturbed
        assert len(embed.stub.Embed(pb.EmbedRequest(function=other, inputs=texts("now"))).embeddings) == 1


def test_a_rerank_model_runs_on_its_own_thread_which_stops_when_it_is_evicted(start_embed, tiny_clip,
                                                                               tiny_cross_encoder):
    import time

    from google.protobuf import struct_pb2

    settings = struct_pb2.Struct()
    settings.update({"name": tiny_cross_encoder.name, "device": "cpu"})
    embed = start_embed(max_loaded_models=1)
    request = pb.RerankRequest(function=pb.FunctionSpec(name="cross-encoder", settings=settings), query="red",
                               documents=["red apple", "blue whale"])
    first = embed.stub.Rerank(request).scores
    assert [t for t in threading.enumerate() if t.name.startswith("rerank-cross-encoder")]
    assert list(embed.stub.Rerank(request).scores) == list(first)  # the same thread, the same scores
    embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()), inputs=texts("x")))
    deadline = time.monotonic() + 10  # the cross-encoder was evicted for open-clip: its thread ends
    while [t for t in threading.enumerate() if t.name.startswith("rerank-cross-encoder")] and \
            time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name.startswith("rerank-cross-encoder")]
    assert list(embed.stub.Rerank(request).scores) == list(first)  # loaded again, with a thread of its own
