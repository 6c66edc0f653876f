"""Dynamic batching: concurrent callers share model calls and each gets its own vectors in its order."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from embed_service.batching import BatchQueue
from embed_service.errors import Cancelled, InvalidInput, QueueFull
from tests.helpers import spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb


def test_concurrent_callers_are_served_in_fewer_model_calls(start_embed, tiny_clip):
    embed = start_embed(max_batch_wait_ms=50.0)
    function = spec("open-clip", tiny_clip.settings())
    embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("warm up")))
    calls_before = embed.server.metrics.value("vectorlane_embed_batch_size_count", {"queue": "open-clip/source"})
    words = [[f"caller {i} first", f"caller {i} second"] for i in range(16)]
    barrier = threading.Barrier(16)

    def call(pair):
        barrier.wait()
        return vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts(*pair))))

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, words))
    calls = embed.server.metrics.value("vectorlane_embed_batch_size_count", {"queue": "open-clip/source"}) \
        - calls_before
    assert calls < 16, f"{calls} model calls for 16 requests"
    flat = [w for pair in words for w in pair]
    alone = vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts(*flat))))
    np.testing.assert_allclose(np.concatenate(results), alone, atol=1e-5)


def test_batching_off_runs_one_model_call_per_request(start_embed, tiny_clip):
    embed = start_embed(batching=False)
    function = spec("open-clip", tiny_clip.settings())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts(f"t{i}"))),
                      range(8)))
    assert embed.server.metrics.value("vectorlane_embed_batch_size_count", {"queue": "open-clip/source"}) == 8


class RecordingModel:
    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[list[int]] = []
        self.delay = delay

    def __call__(self, items):
        self.batches.append(list(items))
        time.sleep(self.delay)
        return np.asarray([[float(i), float(i) * 2] for i in items], dtype=np.float32)


def test_batches_close_at_max_size_and_split_large_requests():
    model = RecordingModel()
    queue = BatchQueue("q", model, max_batch_size=4, max_wait_s=0.2)
    try:
        result = queue.submit(list(range(10))).result(timeout=5)
    finally:
        queue.close()
    np.testing.assert_array_equal(result[:, 0], np.arange(10))
    assert [len(b) for b in model.batches] == [4, 4, 2]


def test_a_batch_closes_once_inputs_stop_arriving_not_at_the_end_of_the_window():
    model = RecordingModel()
    queue = BatchQueue("q", model, max_batch_size=64, max_wait_s=30.0, quiet_s=0.3)
    try:
        burst = [queue.submit([i]) for i in range(4)]  # back to back: well inside the quiet gap
        for future in burst:
            future.result(timeout=10)  # a 30 s window would time out here; the quiet gap closes the batch
        lone = queue.submit([9])
        assert lone.result(timeout=10)[0, 0] == 9
    finally:
        queue.close()
    assert model.batches == [[0, 1, 2, 3], [9]]


def test_requests_whose_caller_has_gone_are_dropped():
    model = RecordingModel(delay=0.2)
    queue = BatchQueue("q", model, max_batch_size=1, max_wait_s=0.0)
    try:
        first = queue.submit([1])
        time.sleep(0.05)  # the worker is busy with `first`
        gone = queue.submit([2], is_active=lambda: False)
        third = queue.submit([3])
        assert first.result(timeout=5)[0, 0] == 1 and third.result(timeout=5)[0, 0] == 3
        with pytest.raises(Cancelled):
            gone.result(timeout=5)
    finally:
        queue.close()
    assert [b for b in model.batches] == [[1], [3]]


def test_a_full_queue_refuses_more_inputs():
    release = threading.Event()

    def blocked(items):
        release.wait(5)
        return np.zeros((len(items), 2), dtype=np.float32)

    queue = BatchQueue("q", blocked, max_batch_size=2, max_wait_s=0.0, max_queued=4)
    try:
        running = queue.submit([1, 2])
        time.sleep(0.05)  # taken by the worker: the queue is empty again
        waiting = queue.submit([3, 4, 5, 6])
        with pytest.raises(QueueFull):
            queue.submit([7])
        release.set()
        assert running.result(timeout=5).shape == (2, 2) and waiting.result(timeout=5).shape == (4, 2)
    finally:
        release.set()
        queue.close()


def test_a_failing_batch_fails_its_callers_and_the_queue_goes_on():
    calls = []

    def flaky(items):
        calls.append(items)
        if len(calls) == 1:
            raise RuntimeError("model blew up")
        return np.ones((len(items), 2), dtype=np.float32)

    queue = BatchQueue("q", flaky, max_batch_size=8, max_wait_s=0.0)
    try:
        with pytest.raises(RuntimeError, match="blew up"):
            queue.submit([1]).result(timeout=5)
        assert queue.submit([2]).result(timeout=5).shape == (1, 2)
    finally:
        queue.close()


def test_an_input_the_model_refuses_fails_only_its_own_request():
    batches = []

    def picky(items):
        batches.append(list(items))
        if "bad" in items:
            raise InvalidInput("an input is bad", index=items.index("bad"))
        return np.asarray([[float(len(i)), 0.0] for i in items], dtype=np.float32)

    queue = BatchQueue("q", picky, max_batch_size=16, max_wait_s=1.0, quiet_s=0.2)
    try:
        first = queue.submit(["a", "bb"])
        second = queue.submit(["ccc", "bad", "dddd"])
        third = queue.submit(["eeeee"])
        np.testing.assert_array_equal(first.result(timeout=5)[:, 0], [1, 2])
        np.testing.assert_array_equal(third.result(timeout=5)[:, 0], [5])
        with pytest.raises(InvalidInput) as refused:
            second.result(timeout=5)
    finally:
        queue.close()
    assert refused.value.metadata["index"] == "1"  # its place in its own request, not in the shared batch
    assert batches == [["a", "bb", "ccc", "bad", "dddd", "eeeee"], ["a", "bb", "eeeee"]]
