"""The embedding cache: the same inputs twice cost one model call, settings never share entries, duplicates in a
request are embedded once, queries are not cached unless asked, the size bound holds, hits and misses are
counted."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from embed_service.cache import ENTRY_OVERHEAD, EmbeddingCache, content_digest
from embed_service.functions.base import Purpose
from embed_service.inputs import ImageBytes, ImageUri, TextInput
from tests.helpers import error_info, spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb

QUEUE = {"queue": "open-clip/source"}


def model_calls(embed) -> float:
    return embed.server.metrics.value("vectorlane_embed_batch_size_count", QUEUE)


def model_inputs(embed) -> float:
    return embed.server.metrics.value("vectorlane_embed_batch_size_sum", QUEUE)


def embed_texts(embed, function, *values, purpose=pb.INPUT_PURPOSE_SOURCE) -> np.ndarray:
    return vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts(*values), purpose=purpose)))


def test_the_same_inputs_twice_cost_one_model_call(start_embed, tiny_clip):
    embed = start_embed()
    function = spec("open-clip", tiny_clip.settings())
    first = embed_texts(embed, function, "a red fox", "a blue whale", "a green frog")
    calls = model_calls(embed)
    again = embed_texts(embed, function, "a green frog", "a red fox", "a blue whale")
    assert model_calls(embed) == calls
    np.testing.assert_array_equal(again, first[[2, 0, 1]])
    hits = embed.server.metrics.value("vectorlane_embed_cache_hits_total", {"function": "open-clip"})
    misses = embed.server.metrics.value("vectorlane_embed_cache_misses_total", {"function": "open-clip"})
    assert (hits, misses) == (3, 3)
    assert embed.server.metrics.value("vectorlane_embed_cache_entries") == 3
    # Half cached: only the new text reaches the model, and the answer is in request order.
    mixed = embed_texts(embed, function, "a red fox", "a grey owl", "a blue whale")
    assert model_inputs(embed) == 4
    np.testing.assert_array_equal(mixed[[0, 2]], first[[0, 1]])
    np.testing.assert_allclose(mixed[1], embed_texts(embed, spec("open-clip", tiny_clip.settings(batch_size=7)),
                                                     "a grey owl")[0], atol=1e-5)


def test_settings_never_share_an_entry(start_embed, tiny_clip):
    embed = start_embed()
    normalized = embed_texts(embed, spec("open-clip", tiny_clip.settings()), "a red fox")
    raw = embed_texts(embed, spec("open-clip", tiny_clip.settings(normalize=False)), "a red fox")
    assert model_calls(embed) == 2
    assert np.isclose(np.linalg.norm(normalized), 1.0) and not np.isclose(np.linalg.norm(raw), 1.0)


def test_duplicates_in_one_request_are_embedded_once(start_embed, tiny_clip):
    embed = start_embed()
    got = embed_texts(embed, spec("open-clip", tiny_clip.settings()), "same", "other", "same", "same")
    assert model_inputs(embed) == 2
    np.testing.assert_array_equal(got[0], got[2])
    np.testing.assert_array_equal(got[0], got[3])
    assert not np.array_equal(got[0], got[1])


def test_queries_are_not_cached_unless_asked_and_the_cache_can_be_off(start_embed, tiny_clip):
    function = spec("open-clip", tiny_clip.settings())
    for overrides, calls in (({}, 2), ({"cache_queries": True}, 1)):
        embed = start_embed(**overrides)
        for _ in range(2):
            embed_texts(embed, function, "a query", purpose=pb.INPUT_PURPOSE_QUERY)
        queue = {"queue": "open-clip/query"}
        assert embed.server.metrics.value("vectorlane_embed_batch_size_count", queue) == calls
    off = start_embed(cache_mib=0)
    embed_texts(off, function, "a text")
    embed_texts(off, function, "a text")
    assert model_calls(off) == 2


def test_an_input_error_names_its_place_in_the_request_when_others_are_cached(start_embed, tiny_clip):
    embed = start_embed()
    function = spec("open-clip", tiny_clip.settings())
    embed_texts(embed, function, "cached")
    with pytest.raises(grpc.RpcError) as failed:
        embed.stub.Embed(pb.EmbedRequest(function=function, inputs=[*texts("cached", "new"), pb.EmbedInput()]))
    assert failed.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    info = error_info(failed.value)
    assert info.reason == "MISSING_INPUT" and info.metadata["index"] == "2"


def test_the_size_bound_holds_and_the_least_recently_used_leave_first():
    vector = np.ones(8, dtype=np.float32)
    cost = vector.nbytes + ENTRY_OVERHEAD
    cache = EmbeddingCache(10 * cost)
    digests = [content_digest(TextInput(f"text {i}")) for i in range(30)]
    for i, digest in enumerate(digests[:10]):
        cache.store("f {}", Purpose.SOURCE, [digest], vector[None] * i)
    assert cache.size() == (10, 10 * cost)
    cache.lookup("f {}", Purpose.SOURCE, [digests[0]])  # the oldest is used again: it stays
    cache.store("f {}", Purpose.SOURCE, digests[10:15], np.ones((5, 8), dtype=np.float32))
    entries, size = cache.size()
    assert entries == 10 and size <= 10 * cost
    found = cache.lookup("f {}", Purpose.SOURCE, digests[:15])
    assert [v is not None for v in found] == [True] + [False] * 5 + [True] * 9
    cache.store("f {}", Purpose.SOURCE, digests[15:30], np.ones((15, 8), dtype=np.float32))
    assert cache.size() == (10, 10 * cost)
    assert cache.lookup("other {}", Purpose.SOURCE, [digests[0]]) == [None]
    assert cache.lookup("f {}", Purpose.QUERY, [digests[0]]) == [None]


def test_what_is_cached_by_content():
    assert content_digest(TextInput("a")) == content_digest(TextInput("a"))
    assert content_digest(TextInput("a")) != content_digest(ImageBytes(b"a"))
    assert content_digest(ImageUri("file:///x.png")) is None and content_digest(None) is None
