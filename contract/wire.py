"""Arrow IPC payloads in protobuf messages without copying them through protobuf.

`Rows.arrow_ipc` carries bulk rows: tens or hundreds of megabytes per message. Through the protobuf runtime
such a payload is copied four times (into the message, serializing, parsing, reading the field back out), and
on a small machine each copy costs about as much as the whole loopback transfer. The two functions here write
and read the very same wire bytes as protobuf does — grpcurl, other languages and the generated classes see
ordinary messages — with one copy to encode and none to decode:

    data = encode(pb.AddRowsRequest(table="t"), "rows", ipc_bytes)        # client side
    message, payload = decode(data, pb.AddRowsRequest, "rows")            # server side; payload: memoryview

Protobuf wire format: a field is a varint key (number << 3 | wire type) then its value; length-delimited
values (wire type 2: bytes, strings, sub-messages) are a varint length then that many bytes. Repeated
occurrences of a singular message field merge, and within a oneof the last member on the wire wins.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple, TypeVar

from google.protobuf.message import DecodeError, Message

from vectorlane_contract.store.v1 import store_service_pb2 as store_pb

_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5
_ARROW_IPC = store_pb.Rows.DESCRIPTOR.fields_by_name["arrow_ipc"].number
_FORMAT_FIELDS = frozenset(f.number for f in store_pb.Rows.DESCRIPTOR.oneofs_by_name["format"].fields)

M = TypeVar("M", bound=Message)


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _key(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def encode(message: Message, rows_field: str, arrow_ipc: bytes | memoryview) -> bytes:
    """The wire bytes of `message` with its `rows_field` (a `Rows`) holding `arrow_ipc`; exactly what
    `message.SerializeToString()` would give after setting `message.<rows_field>.arrow_ipc = arrow_ipc`
    (up to field order, which protobuf does not fix). `message` itself must not carry rows."""
    number = message.DESCRIPTOR.fields_by_name[rows_field].number
    payload_size = memoryview(arrow_ipc).nbytes
    inner_head = _key(_ARROW_IPC, _LEN) + _varint(payload_size)
    return b"".join((message.SerializeToString(), _key(number, _LEN), _varint(len(inner_head) + payload_size),
                     inner_head, arrow_ipc))


class Decoded(NamedTuple):
    """A request whose Arrow IPC rows were left in place: `message` without them, `arrow_ipc` a view of
    the received bytes (None when the message's rows are JSON or absent)."""

    message: Message
    arrow_ipc: memoryview | None


class _Field(NamedTuple):
    number: int
    wire_type: int
    start: int  # first byte of the key
    value_start: int  # first byte of the value (after the length for wire type 2)
    end: int


def _read_varint(view: memoryview, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(view: memoryview, pos: int, end: int) -> Iterator[_Field]:
    while pos < end:
        start = pos
        key, pos = _read_varint(view, pos, end)
        number, wire_type = key >> 3, key & 7
        if wire_type == _VARINT:
            _, pos = _read_varint(view, pos, end)
            value_start = pos
        elif wire_type == _LEN:
            size, pos = _read_varint(view, pos, end)
            value_start = pos
            pos += size
        elif wire_type in (_I64, _I32):
            value_start = pos
            pos += 8 if wire_type == _I64 else 4
        else:  # groups (3, 4) are not used by these messages; anything else is malformed
            raise DecodeError(f"unsupported wire type {wire_type}")
        if number == 0 or pos > end:
            raise DecodeError("truncated message")
        yield _Field(number, wire_type, start, value_start, pos)


def decode(data: bytes, message_class: type[M], rows_field: str) -> Decoded:
    """Parses `data` as `message_class`, leaving the Arrow IPC payload of `rows_field` in `data` (no copy).
    Malformed input raises `DecodeError`, as `message_class.FromString` would."""
    number = message_class.DESCRIPTOR.fields_by_name[rows_field].number
    view = memoryview(data)
    rest: list[memoryview | bytes] = []  # everything but the payload, re-parsed by protobuf (small)
    payload: memoryview | None = None
    for field in _fields(view, 0, len(view)):
        if field.number != number or field.wire_type != _LEN:
            rest.append(view[field.start:field.end])
            continue
        kept: list[memoryview] = []
        for inner in _fields(view, field.value_start, field.end):
            if inner.number == _ARROW_IPC and inner.wire_type == _LEN:
                payload = view[inner.value_start:inner.end]
                continue
            if inner.number in _FORMAT_FIELDS:
                payload = None  # a later member of the oneof replaces the Arrow rows
            kept.append(view[inner.start:inner.end])
        if kept:
            body = b"".join(kept)
            rest.append(_key(number, _LEN) + _varint(len(body)) + body)
    message = message_class.FromString(b"".join(rest))
    if payload is not None and message.HasField(rows_field):  # Arrow came last: JSON before it is replaced
        getattr(message, rows_field).ClearField("format")
    return Decoded(message, payload)


__all__ = ["Decoded", "decode", "encode"]
