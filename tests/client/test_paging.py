"""A table is read whole at any size: the store caps one ReadRows response (rows and bytes), the client pages
with `offset` at one pinned version. Found by the security review: the client never sent `offset`, so past
the 100,000-row cap a table could not be read out of the Python client at all."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import vectorlane
import vectorlane.errors
from vectorlane.store.v1 import store_service_pb2 as pb


def table_of(n: int, dims: int = 128) -> pa.Table:
    vectors = np.random.default_rng(0).standard_normal((n, dims)).astype(np.float32)
    return pa.table({"id": pa.array(np.arange(n), pa.int64()), "kind": [("even", "odd")[i % 2] for i in range(n)],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dims)})


def test_whole_tables_and_offsets_read_page_by_page(start_store):
    # pages of at most 700 rows and ~2 MiB (half of 4 MiB): 512-d rows are ~2 KiB, so ~1,000 fit by bytes
    store = start_store(max_read_rows=700, max_message_bytes=4 << 20)
    db = vectorlane.connect(f"grpc://{store.target}")
    data = table_of(5000, dims=512)
    table = db.create_table("t", data=data.slice(0, 1000))
    for start in range(1000, 5000, 1000):
        table.add(data.slice(start, 1000))
    read = table.to_arrow()
    assert read.num_rows == 5000 and read.column("id").to_pylist() == list(range(5000))
    np.testing.assert_array_equal(np.stack(read.column("vector").to_numpy(zero_copy_only=False)),
                                  np.stack(data.column("vector").to_numpy(zero_copy_only=False)))
    assert len(table.to_pandas()) == 5000
    odd = table.search().where("kind = 'odd'").offset(100).limit(1500).to_arrow()
    assert odd.column("id").to_pylist() == list(range(201, 201 + 3000, 2))
    assert table.search().offset(4990).limit(100).to_arrow().column("id").to_pylist() == list(range(4990, 5000))
    assert table.head(3).column("id").to_pylist() == [0, 1, 2]

    raw = store.stub.ReadRows(pb.ReadRowsRequest(table="t", format=pb.ROW_FORMAT_ARROW))  # what grpcurl sees
    assert raw.next_offset == 700
    last = store.stub.ReadRows(pb.ReadRowsRequest(table="t", offset=4900, version=raw.version))
    assert len(last.rows.json.rows) == 100 and last.next_offset == 0
    db.close()


def test_json_pages_are_bounded_by_bytes_too(start_store):
    store = start_store(max_message_bytes=4 << 20)
    db = vectorlane.connect(f"grpc://{store.target}")
    table = db.create_table("t", data=table_of(1000, dims=512))
    for _ in range(3):
        table.add(table_of(1000, dims=512))
    pages, offset = 0, 0
    while True:  # JSON spells each float out: ~4x the Arrow size, so pages are smaller
        reply = store.stub.ReadRows(pb.ReadRowsRequest(table="t", offset=offset))
        pages += 1
        if not reply.next_offset:
            break
        offset = reply.next_offset
    assert pages > 4 and len(table.to_arrow()) == 4000
    db.close()


def test_pages_read_one_version_while_rows_are_added(start_store):
    store = start_store(max_read_rows=500)
    db = vectorlane.connect(f"grpc://{store.target}")
    table = db.create_table("t", data=table_of(2000, dims=4))
    first = store.stub.ReadRows(pb.ReadRowsRequest(table="t", format=pb.ROW_FORMAT_ARROW))
    table.add(table_of(10, dims=4))  # a new version between pages
    rest = store.stub.ReadRows(pb.ReadRowsRequest(table="t", offset=first.next_offset, version=first.version))
    assert rest.version == first.version
    assert len(table.to_arrow()) == 2010
    db.close()


@pytest.mark.parametrize("pages", [["same", "same"], ["next", ""]])
def test_a_store_that_repeats_a_page_token_cannot_keep_the_client_asking(pages):
    """A store answering one page token forever (or empty pages with tokens) would have kept `table_names()`
    looping, holding more memory at every page. Found by the hostile pass (in the TypeScript client too)."""
    from concurrent import futures

    import grpc

    from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc

    class Looping(pb_grpc.StorageServiceServicer):
        def ListTables(self, request, context):  # noqa: N802
            return pb.ListTablesResponse(names=["t"] if pages[0] == "same" else [], next_page_token="again")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_StorageServiceServicer_to_server(Looping(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with pytest.raises(vectorlane.errors.VectorlaneError) as stopped:
            vectorlane.connect(f"grpc://127.0.0.1:{port}").table_names()
        assert stopped.value.reason == "BAD_PAGE_TOKEN"
    finally:
        server.stop(0)
