"""Rows an attacker shapes: malformed or compressed Arrow IPC never reaches storage, column types are served
end to end or refused at create, and reserved or unprintable names are refused (findings of the security
review, and a property-based pass over corrupted IPC streams)."""

from __future__ import annotations

import datetime as dt
import decimal
import random

import grpc
import numpy as np
import pyarrow as pa
import pytest
from google.protobuf import json_format

from tests.helpers import error_info
from tests.store_service.conftest import add, arrow_rows, json_rows, rows_of, table_files
from vectorlane.store.v1 import store_service_pb2 as pb

SCHEMA = pa.schema([("id", pa.int64()), ("text", pa.string()),
                    ("vector", pa.list_(pa.field("item", pa.float32()), 4))])


def create(store, name="t", schema=SCHEMA, rows=None) -> pb.Table:
    request = pb.CreateTableRequest(name=name, schema=pb.Schema(arrow_schema=schema.serialize().to_pybytes()))
    if rows is not None:
        request.rows.CopyFrom(rows)
    return store.stub.CreateTable(request).table


def ipc(table: pa.Table, **options) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=pa.ipc.IpcWriteOptions(**options)) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def good_rows(n: int = 3, start: int = 0) -> pa.Table:
    return pa.table({"id": pa.array(range(start, start + n), pa.int64()),
                     "text": [f"row {i}" for i in range(start, start + n)],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ones(4 * n, np.float32)), 4)})


def refused(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        call()
    return caught.value


def out_of_order_offsets() -> bytes:
    """An IPC stream whose string offsets run backwards: structurally plausible, invalid in full."""
    table = good_rows(2)
    data = bytearray(ipc(table))
    offsets = np.array([0, 5, 10], dtype=np.int32).tobytes()
    at = data.find(offsets)
    assert at > 0, "this is a bug in the test: the offsets buffer was not found"
    data[at:at + 12] = np.array([0, 9, 3], dtype=np.int32).tobytes()
    return bytes(data)


def test_malformed_arrow_is_refused_before_anything_is_staged(store):
    create(store, rows=arrow_rows(good_rows()))
    before = table_files(store.data_dir, "t")
    error = refused(lambda: add(store.stub, "t", pb.Rows(arrow_ipc=out_of_order_offsets())))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error_info(error).reason == "INVALID_ARROW_IPC"
    assert table_files(store.data_dir, "t") == before
    for fmt in (pb.ROW_FORMAT_JSON, pb.ROW_FORMAT_ARROW):  # the table still reads, in both formats
        reply = store.stub.ReadRows(pb.ReadRowsRequest(table="t", format=fmt))
        assert rows_of(reply.rows).num_rows == 3
    search = store.stub.Search(pb.SearchRequest(table="t", vector=pb.Vector(values=[1, 1, 1, 1]), limit=5))
    assert len(search.rows.json.rows) == 3


@pytest.mark.parametrize("compression", ["zstd", "lz4"])
def test_compressed_arrow_is_refused_a_decompression_bomb_cannot_reach_memory(store, compression):
    """12 KB of ZSTD declared 400 MB of zeros (measured); Arrow allocates what a buffer declares."""
    create(store)
    bomb = pa.table({"id": pa.array(np.zeros(20_000_000, dtype=np.int64))})
    data = ipc(bomb, compression=compression)
    assert len(data) < 1_000_000
    error = refused(lambda: add(store.stub, "t", pb.Rows(arrow_ipc=data)))
    assert error_info(error).reason == "INVALID_ARROW_IPC" and "compressed" in error.details()


def test_randomly_corrupted_streams_are_refused_or_stored_valid(store):
    """None of 300 corrupted streams may be stored unless it is valid in full; the table reads after each."""
    create(store, rows=arrow_rows(good_rows()))
    rng = random.Random(7)
    base = ipc(good_rows(5, start=100))
    stored = 0
    for trial in range(300):
        data = bytearray(base)
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
        try:
            add(store.stub, "t", pb.Rows(arrow_ipc=bytes(data)))
            stored += 1
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (trial, exc.details())
    reply = store.stub.ReadRows(pb.ReadRowsRequest(table="t", format=pb.ROW_FORMAT_JSON))
    assert len(reply.rows.json.rows) == 3 + 5 * stored  # everything stored reads back, as JSON too
    rows_of(store.stub.ReadRows(pb.ReadRowsRequest(table="t", format=pb.ROW_FORMAT_ARROW)).rows).validate(full=True)
    store.stub.Search(pb.SearchRequest(table="t", vector=pb.Vector(values=[1, 1, 1, 1]), limit=50))


def test_a_damaged_fragment_without_a_checksum_is_data_loss_not_a_crash(start_store, embed):
    """A table written by other means (no checksum line, as LanceDB writes them) with a damaged data file is
    refused when read, never served as garbage or a crash; Lance refuses invalid Arrow on write itself."""
    store = start_store(embed)
    create(store, rows=arrow_rows(good_rows()))
    directory = store.data_dir / "t.lance"
    store.server.stop(0.2)
    (directory / "_vectorlane" / "checksums.jsonl").unlink()
    path = next((directory / "data").iterdir())
    path.write_bytes(path.read_bytes()[:-64])
    fresh = start_store(embed, data_dir=store.data_dir)
    error = refused(lambda: fresh.stub.ReadRows(pb.ReadRowsRequest(table="t")))
    assert error.code() == grpc.StatusCode.DATA_LOSS and error_info(error).reason == "FRAGMENT_CORRUPT"
    assert fresh.stub.ListTables(pb.ListTablesRequest()).names == ["t"]  # still serving


def test_every_supported_column_type_is_served_end_to_end(store):
    """Decimal, duration, map, time64 and float16 columns were created fine and then answered INTERNAL."""
    schema = pa.schema([("id", pa.int64()), ("price", pa.decimal128(10, 2)), ("took", pa.duration("us")),
                        ("tags", pa.map_(pa.string(), pa.int64())), ("at", pa.time64("us")),
                        ("half", pa.float16()), ("day", pa.date32()), ("big", pa.int64()),
                        ("vector", pa.list_(pa.field("item", pa.float32()), 2))])
    rows = pa.table({"id": [1, 2], "price": pa.array([decimal.Decimal("1.25"), decimal.Decimal("9.50")],
                                                      pa.decimal128(10, 2)),
                     "took": pa.array([dt.timedelta(seconds=1.5), dt.timedelta(seconds=30)], pa.duration("us")),
                     "tags": pa.array([[("a", 1)], []], pa.map_(pa.string(), pa.int64())),
                     "at": pa.array([dt.time(8, 30), dt.time(17, 0)], pa.time64("us")),
                     "half": pa.array(np.array([0.5, 2.0], np.float16), pa.float16()),
                     "day": pa.array([dt.date(2024, 1, 1), dt.date(2024, 6, 1)]), "big": [2 ** 60 + 1, 7],
                     "vector": pa.FixedSizeListArray.from_arrays(pa.array([1, 0, 0, 1], pa.float32()), 2)},
                    schema=schema)
    create(store, schema=schema, rows=arrow_rows(rows))
    add(store.stub, "t", json_rows([{"id": 3, "price": "2.75", "took": 0.25, "tags": {"b": 2}, "at": "12:00:00",
                                     "half": 1.0, "day": "2024-03-01", "big": 3, "vector": [0.5, 0.5]}]))
    reply = store.stub.ReadRows(pb.ReadRowsRequest(table="t", format=pb.ROW_FORMAT_JSON))
    by_id = {int(r["id"]): r for r in (json_format.MessageToDict(m) for m in reply.rows.json.rows)}
    assert by_id[1]["price"] == "1.25" and by_id[1]["took"] == 1.5 and by_id[1]["at"] == "08:30:00"
    assert by_id[1]["tags"] == [{"key": "a", "value": 1}] and by_id[1]["half"] == 0.5
    assert by_id[1]["big"] == str(2 ** 60 + 1)  # past 2^53 a JSON number would change the value
    assert by_id[3]["price"] == "2.75" and by_id[3]["day"] == "2024-03-01" and by_id[3]["tags"] == [
        {"key": "b", "value": 2}]
    for where, expected in [("price < 2", [1]), ("price > 2.5", [2, 3]), ("took > 1", [1, 2]), ("half >= 1", [2, 3]),
                            ("at < '12:00:00'", [1]), ("day >= '2024-02-01'", [2, 3]), ("tags IS NULL", []),
                            ("price IN (1.25, 2.75)", [1, 3])]:
        reply = store.stub.ReadRows(pb.ReadRowsRequest(table="t", where=where, format=pb.ROW_FORMAT_ARROW))
        assert sorted(rows_of(reply.rows).column("id").to_pylist()) == expected, where
    found = store.stub.Search(pb.SearchRequest(table="t", vector=pb.Vector(values=[1, 0]), where="price < 5",
                                               limit=5))
    assert [int(r.fields["id"].number_value) for r in found.rows.json.rows] == [1, 3]
    store.stub.UpdateRows(pb.UpdateRowsRequest(table="t", where="id = 2", values=json_rows([{"price": "3.00"}])
                                               .json.rows[0]))
    assert store.stub.CountRows(pb.CountRowsRequest(table="t", where="price < 4")).count == 3
    error = refused(lambda: store.stub.CountRows(pb.CountRowsRequest(table="t", where="tags = 1")))
    assert error_info(error).reason == "INVALID_FILTER"


def test_json_columns_round_trip_and_filter_with_json_functions(store):
    """Arrow's JSON type (LanceDB encodes dicts as it): stored by Lance (compact), read back as text in both
    formats, filtered with Lance's json_* functions, added as JSON rows too."""
    schema = pa.schema([("id", pa.int64()), ("j", pa.json_())])
    values = pa.ExtensionArray.from_storage(pa.json_(), pa.array(['{"k": 1, "tags": ["a"]}', '{"k": 9}']))
    create(store, "docs_json", schema=schema, rows=arrow_rows(pa.Table.from_arrays([pa.array([1, 2]), values],
                                                                                   schema=schema)))
    add(store.stub, "docs_json", json_rows([{"id": 3, "j": '{"k": 3}'}]))
    read = rows_of(store.stub.ReadRows(pb.ReadRowsRequest(table="docs_json", format=pb.ROW_FORMAT_ARROW)).rows)
    assert read.column("j").to_pylist() == ['{"k":1,"tags":["a"]}', '{"k":9}', '{"k":3}']
    as_json = store.stub.ReadRows(pb.ReadRowsRequest(table="docs_json", where="id = 2", format=pb.ROW_FORMAT_JSON))
    assert json_format.MessageToDict(as_json.rows.json.rows[0])["j"] == '{"k":9}'
    for where, expected in [("json_extract(j, '$.k') = '9'", [2]), ("json_get_int(j, 'k') > 1", [2, 3]),
                            ("json_array_contains(j, '$.tags', 'a')", [1])]:
        reply = store.stub.ReadRows(pb.ReadRowsRequest(table="docs_json", where=where, format=pb.ROW_FORMAT_ARROW))
        assert sorted(rows_of(reply.rows).column("id").to_pylist()) == expected, where


@pytest.mark.parametrize("type_", [pa.dictionary(pa.int32(), pa.int64()), pa.null(),
                                   pa.month_day_nano_interval(), pa.string_view(),
                                   pa.run_end_encoded(pa.int32(), pa.string()),
                                   pa.dense_union([pa.field("a", pa.int32())]),
                                   pa.list_(pa.field("item", pa.float32()), 1 << 20)])
def test_types_the_store_cannot_serve_are_refused_at_create(store, type_):
    schema = pa.schema([("id", pa.int64()), ("odd", type_)])
    error = refused(lambda: create(store, schema=schema))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error_info(error).reason == "UNSUPPORTED_TYPE"
    assert store.stub.ListTables(pb.ListTablesRequest()).names == []


@pytest.mark.parametrize("name,reason", [("_rowid", "RESERVED_COLUMN"), ("_distance", "RESERVED_COLUMN"),
                                         ("a\nb", "INVALID_SCHEMA"), ("x" * 300, "INVALID_SCHEMA")])
def test_reserved_and_unprintable_column_names_are_refused(store, name, reason):
    """A column named `_rowid` was created, then every read answered INTERNAL."""
    schema = pa.schema([("id", pa.int64()), (name, pa.int64())])
    assert error_info(refused(lambda: create(store, schema=schema))).reason == reason
    inferred = refused(lambda: store.stub.CreateTable(pb.CreateTableRequest(name="t", rows=json_rows(
        [{"id": 1, name: 2}]))))
    assert error_info(inferred).reason == reason


def test_all_null_vectors_sent_as_arrow_ipc_do_not_crash_the_store(store):
    """An all-NULL list column arrives with an empty values buffer at address 0; casting it to the table's
    fixed-size list type killed the store with SIGSEGV (pyarrow 26). Now the rows are stored as NULL."""
    schema = pa.schema([("id", pa.int64()), ("feature", pa.list_(pa.float32(), 256))])
    create(store, "nulls", schema)
    rows = pa.table({"id": pa.array([1, 2], pa.int64()),
                     "feature": pa.array([None, None], pa.list_(pa.float32()))})
    add(store.stub, "nulls", pb.Rows(arrow_ipc=ipc(rows)))
    stored = store.stub.ReadRows(pb.ReadRowsRequest(table="nulls", format=pb.ROW_FORMAT_ARROW))
    assert rows_of(stored.rows).column("feature").to_pylist() == [None, None]
    assert store.stub.ListTables(pb.ListTablesRequest()).names  # still serving


def test_text_that_is_not_json_is_refused_for_a_json_column(store):
    schema = pa.schema([("id", pa.int64()), ("j", pa.json_())])
    create(store, "bad_json", schema=schema)
    for rows in (json_rows([{"id": 1, "j": "{not json"}]),
                 arrow_rows(pa.Table.from_arrays([pa.array([1]), pa.ExtensionArray.from_storage(
                     pa.json_(), pa.array(["[1, 2"]))], schema=schema))):
        error = refused(lambda rows=rows: add(store.stub, "bad_json", rows))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error_info(error).reason == "INVALID_JSON"
    assert store.stub.CountRows(pb.CountRowsRequest(table="bad_json")).count == 0
