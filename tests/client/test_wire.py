"""vectorlane.wire writes and reads the same bytes protobuf does, leaving the Arrow payload uncopied."""

from __future__ import annotations

import os

import pytest
from google.protobuf.message import DecodeError

from vectorlane import wire
from vectorlane.store.v1 import store_service_pb2 as pb

PAYLOAD = os.urandom(200_003)


def with_rows(message: pb.AddRowsRequest, **rows: object) -> pb.AddRowsRequest:
    full = pb.AddRowsRequest()
    full.CopyFrom(message)
    full.rows.CopyFrom(pb.Rows(**rows))
    return full


def json_request() -> pb.AddRowsRequest:
    message = pb.AddRowsRequest(table="t")
    message.rows.json.rows.add().update({"a": 1})
    return message


def test_encode_is_what_protobuf_parses_as_the_full_message():
    head = pb.AddRowsRequest(table="docs", mode=pb.ADD_MODE_OVERWRITE, on_bad_vectors=pb.BAD_VECTOR_POLICY_FILL,
                             fill_value=0.5)
    data = wire.encode(head, "rows", PAYLOAD)
    assert pb.AddRowsRequest.FromString(data) == with_rows(head, arrow_ipc=PAYLOAD)
    assert len(data) == with_rows(head, arrow_ipc=PAYLOAD).ByteSize()


def test_encode_takes_any_buffer_and_an_empty_payload():
    head = pb.MergeInsertRequest(table="t", on=["id"])
    assert pb.MergeInsertRequest.FromString(wire.encode(head, "rows", memoryview(PAYLOAD))).rows.arrow_ipc == PAYLOAD
    empty = pb.MergeInsertRequest.FromString(wire.encode(head, "rows", b""))
    assert empty.rows.WhichOneof("format") == "arrow_ipc" and empty.rows.arrow_ipc == b""


def test_decode_leaves_the_payload_in_the_received_bytes():
    head = pb.AddRowsRequest(table="docs", fill_value=2.0)
    data = with_rows(head, arrow_ipc=PAYLOAD).SerializeToString()
    decoded = wire.decode(data, pb.AddRowsRequest, "rows")
    assert decoded.message == head and not decoded.message.HasField("rows")
    assert decoded.arrow_ipc is not None and decoded.arrow_ipc.obj is data  # a view, not a copy
    assert bytes(decoded.arrow_ipc) == PAYLOAD


def test_decode_passes_json_rows_and_messages_without_rows_through():
    message = json_request()
    assert wire.decode(message.SerializeToString(), pb.AddRowsRequest, "rows") == (message, None)
    bare = pb.CreateTableRequest(name="t")
    assert wire.decode(bare.SerializeToString(), pb.CreateTableRequest, "rows") == (bare, None)


def test_decode_follows_protobuf_when_the_oneof_is_set_twice():
    arrow = wire.encode(pb.AddRowsRequest(table="t"), "rows", PAYLOAD)
    json_after = arrow + json_request().SerializeToString()  # JSON last: JSON wins
    decoded = wire.decode(json_after, pb.AddRowsRequest, "rows")
    assert decoded.arrow_ipc is None and decoded.message == pb.AddRowsRequest.FromString(json_after)
    arrow_after = json_request().SerializeToString() + arrow  # Arrow last: Arrow wins
    decoded = wire.decode(arrow_after, pb.AddRowsRequest, "rows")
    assert pb.AddRowsRequest.FromString(arrow_after).rows.WhichOneof("format") == "arrow_ipc"
    assert bytes(decoded.arrow_ipc) == PAYLOAD and decoded.message.rows.WhichOneof("format") is None


@pytest.mark.parametrize("data", [b"\xff", b"\x0a\x05ab", b"\x22\x80", b"\x0b", b"\x00\x01"],
                         ids=["overlong varint", "truncated field", "truncated length", "group", "field 0"])
def test_decode_refuses_malformed_bytes(data):
    with pytest.raises(DecodeError):
        wire.decode(data, pb.AddRowsRequest, "rows")


def test_wide_rows_are_sent_in_smaller_messages():
    import numpy as np
    import pyarrow as pa

    from vectorlane import rows as rowlib

    wide = pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(3072 * 1000, np.float32)), 3072)})
    parts = list(rowlib.chunks(wide, 10_000, 1 << 20))  # 12 KB rows, 1 MiB messages
    assert sum(p.num_rows for p in parts) == 1000 and all(p.nbytes <= 1 << 20 for p in parts)
    assert len(parts) == 12
    assert [p.num_rows for p in rowlib.chunks(wide, 300)] == [300, 300, 300, 100]
