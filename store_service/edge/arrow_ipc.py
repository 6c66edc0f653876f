"""Arrow IPC streams a caller sends: read without copying, and checked whole before anything else looks at
them, so no byte pattern can reach storage or crash a read later.

- Every batch is validated in full (`validate(full=True)`: buffer sizes *and* offsets, UTF-8, nested
  lengths). Found by the security review: a stream whose string offsets were out of order was stored, and
  later reads of the table answered INTERNAL or crashed the store; 76 of 300 randomly corrupted streams
  were accepted.
- Compressed bodies (LZ4/ZSTD) are refused: the IPC format lets 12 KB of ZSTD declare 400 MB of zeros
  (measured), and Arrow allocates what a buffer declares, so a 64 MiB message could ask for terabytes.
  Clients send uncompressed IPC (gRPC may compress the transport instead).
- A stream holds at most MAX_BATCHES record batches (each costs fixed overhead in every later step).
- An empty buffer in the stream reads as a buffer at address 0, and pyarrow 26 dereferences it in some
  kernels: casting a list column whose rows are all NULL (values buffer empty) to a fixed-size list killed
  the store with SIGSEGV. A column holding such a buffer is copied into buffers Arrow allocates (only those
  columns, and they hold empty buffers, so the copy is small in the cases that matter).

The compression flag sits in the message's flatbuffer metadata (Message.header -> RecordBatch.compression,
field 3; a DictionaryBatch wraps a RecordBatch as its field 1); pyarrow does not expose it, so the few fields
needed are read here from the verified metadata bytes.
"""

from __future__ import annotations

import functools
import struct

import pyarrow as pa

from store_service.errors import InvalidArgument

MAX_BATCHES = 1024
_READ = pa.ipc.IpcReadOptions(ensure_alignment=pa.ipc.Alignment.DataTypeSpecific)
_RECORD_BATCH, _DICTIONARY_BATCH = 3, 2  # flatbuffer MessageHeader union tags
_COMPRESSION_FIELD, _DICTIONARY_DATA_FIELD = 3, 1
_END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # a continuation marker and a zero length


def write_stream(table: pa.Table) -> bytes:
    """`table` as the bytes of an Arrow IPC stream. Without dictionaries a stream is its schema's message,
    each batch's and the end marker, joined here directly (a search's answer: 2 µs, where a stream writer
    costs 10); with them, through the stream writer (which writes the dictionaries)."""
    if any(_has_dictionary(f.type) for f in table.schema):
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue().to_pybytes()
    return b"".join([table.schema.serialize().to_pybytes(),
                     *(batch.serialize().to_pybytes() for batch in table.to_batches()), _END_OF_STREAM])


@functools.lru_cache(maxsize=1024)
def _has_dictionary(kind: pa.DataType) -> bool:
    if pa.types.is_dictionary(kind):
        return True
    return any(_has_dictionary(kind.field(i).type) for i in range(kind.num_fields))


def refused(what: str) -> InvalidArgument:
    return InvalidArgument(f"rows are not a valid Arrow IPC stream: {what}", reason="INVALID_ARROW_IPC")


def read_stream(data: bytes | memoryview) -> pa.Table:
    """The rows of an Arrow IPC stream, over `data` without copying it (unless a buffer sits misaligned)."""
    buffer = pa.py_buffer(data)
    try:
        _check_messages(buffer)
        table = pa.ipc.open_stream(buffer, options=_READ).read_all()
        table.validate(full=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowIndexError, OSError) as exc:
        raise refused(str(exc)[:300]) from None
    return _without_null_addresses(table)


def _without_null_addresses(table: pa.Table) -> pa.Table:
    for index, column in enumerate(table.columns):
        if any(_holds_null_address(chunk) for chunk in column.chunks):
            copied = pa.chunked_array([pa.concat_arrays([chunk]) for chunk in column.chunks], type=column.type)
            table = table.set_column(index, table.field(index), copied)
    return table


def _holds_null_address(array: pa.Array) -> bool:
    if any(b is not None and b.address == 0 for b in array.buffers()):
        return True
    return pa.types.is_dictionary(array.type) and _holds_null_address(array.dictionary)


def _check_messages(buffer: pa.Buffer) -> None:
    reader = pa.ipc.MessageReader.open_stream(buffer)
    batches = 0
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            return
        if message.type in ("record batch", "dictionary batch"):
            batches += 1
            if batches > MAX_BATCHES:
                raise refused(f"more than {MAX_BATCHES} record batches in one message; send fewer, larger ones")
            if _compressed(message.metadata.to_pybytes()):
                raise refused("compressed IPC bodies are not accepted; send uncompressed Arrow IPC")


def _compressed(meta: bytes) -> bool:
    """Whether a batch message's flatbuffer metadata declares body compression."""
    try:
        root = _u32(meta, 0)
        header_type = _scalar(meta, root, 1, "<B", 0)
        header = _table(meta, root, 2)
        if header is None:
            return False
        if header_type == _DICTIONARY_BATCH:
            header = _table(meta, header, _DICTIONARY_DATA_FIELD)
        elif header_type != _RECORD_BATCH:
            return False
        return header is not None and _field(meta, header, _COMPRESSION_FIELD) != 0
    except struct.error:
        raise refused("its message metadata is truncated") from None


def _u32(buf: bytes, at: int) -> int:
    return struct.unpack_from("<I", buf, at)[0]


def _field(buf: bytes, table: int, index: int) -> int:
    """The offset of field `index` within a flatbuffer table (0: absent)."""
    vtable = table - struct.unpack_from("<i", buf, table)[0]
    size = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * index
    return struct.unpack_from("<H", buf, vtable + slot)[0] if slot + 2 <= size else 0


def _scalar(buf: bytes, table: int, index: int, fmt: str, default: int) -> int:
    offset = _field(buf, table, index)
    return struct.unpack_from(fmt, buf, table + offset)[0] if offset else default


def _table(buf: bytes, table: int, index: int) -> int | None:
    offset = _field(buf, table, index)
    if not offset:
        return None
    at = table + offset
    return at + _u32(buf, at)
