"""An add streamed in several messages: written as the messages arrive into one set of fragments (not one
per message), receiving running ahead of the writing; a bad or broken message leaves nothing staged."""

from __future__ import annotations

import threading

import numpy as np
import pyarrow as pa
import pytest

from store_service.core import StoreCore
from store_service.embedder import Embedder
from store_service.errors import InvalidArgument
from store_service.ingest.rows import Batch
from store_service.schema import vector_type

DIMS = 8


def rows(start: int, count: int) -> pa.Table:
    vectors = np.random.default_rng(start).normal(size=(count, DIMS)).astype(np.float32)
    return pa.table({"id": pa.array(np.arange(start, start + count)),
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), DIMS)})


@pytest.fixture
def core(tmp_path):
    store = StoreCore(tmp_path / "data", Embedder(""))
    store.create_table("t", pa.schema([("id", pa.int64()), ("vector", vector_type(DIMS))]), [], rows(0, 10))
    yield store
    store.close()


def data_files(core: StoreCore) -> set[str]:
    return {p.name for p in (core.owner("t").table.directory / "data").iterdir()}


def test_an_add_of_many_messages_is_one_fragment_holding_every_row(core):
    before = len(core.owner("t").table.manifest().fragments)
    change = core.add("t", [Batch(rows(100 + 50 * i, 50)) for i in range(6)])
    latest = core.owner("t").table.manifest()
    assert change.inserted == 300 and len(latest.fragments) == before + 1
    assert sorted(core.read("t", select=("id",), limit=1000)[0].column("id").to_pylist()) == \
        list(range(10)) + list(range(100, 400))


def test_receiving_runs_ahead_of_the_writing(core):
    """The next messages are taken (and prepared) while earlier ones are being written: the stream is asked
    for message 3 before the writer has finished taking message 1."""
    asked: list[int] = []
    taken = threading.Event()

    def messages():
        for i in range(4):
            asked.append(i)
            yield Batch(rows(100 + 10 * i, 10))

    real_stage = core.owner("t").table.stage_stream

    def stage_stream(tables, schema):
        def watched():
            for i, table in enumerate(tables):
                if i == 0:  # the writer holds message 0: the receiver may already be asking for more
                    for _ in range(200):
                        if len(asked) >= 3:
                            break
                        threading.Event().wait(0.01)
                    taken.set()
                yield table
        return real_stage(watched(), schema)

    core.owner("t").table.stage_stream = stage_stream
    core.add("t", messages())
    assert taken.is_set() and len(asked) == 4
    assert core.count("t") == 50


def test_a_bad_message_late_in_the_stream_leaves_nothing_staged_and_says_what_was_wrong(core):
    files, version = data_files(core), core.owner("t").table.latest_version()
    with pytest.raises(InvalidArgument) as refused:
        core.add("t", [Batch(rows(100, 20)), Batch(rows(120, 20)), Batch(pa.table({"nope": [1]}))])
    assert refused.value.reason == "UNKNOWN_COLUMN"
    assert data_files(core) == files and core.owner("t").table.latest_version() == version


def test_a_stream_that_breaks_off_leaves_nothing_staged(core):
    files, version = data_files(core), core.owner("t").table.latest_version()

    class Gone(Exception):
        pass

    def messages():
        yield Batch(rows(100, 20))
        yield Batch(rows(120, 20))
        raise Gone("the caller went away")

    with pytest.raises(Gone):
        core.add("t", messages())
    assert data_files(core) == files and core.owner("t").table.latest_version() == version
    assert core.count("t") == 10
