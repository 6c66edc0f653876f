"""Round trips through the store's one conversion module: schemas and rows, JSON and Arrow IPC."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pyarrow as pa
import pytest

from store_service.edge import conversions
from store_service.errors import InvalidArgument
from store_service.schema import vector_type
from tests.store_service import conftest
from vectorlane.store.v1 import store_service_pb2 as pb

SCHEMA = pa.schema([pa.field("id", pa.int64(), nullable=False), ("name", pa.string()), ("score", pa.float64()),
                    ("raw", pa.binary()), ("at", pa.timestamp("us", tz="UTC")), ("ok", pa.bool_()),
                    ("vector", vector_type(3))])


def json_rows(*rows):
    return conftest.json_rows(list(rows))


def test_schema_round_trip_through_fields_and_arrow():
    message = conversions.schema_to_proto(SCHEMA)
    assert conversions.schema_from_proto(message) == SCHEMA
    fields_only = pb.Schema(fields=message.fields)
    assert conversions.schema_from_proto(fields_only) == SCHEMA
    assert message.fields[-1].type == pb.DATA_TYPE_VECTOR and message.fields[-1].dimensions == 3


def test_vector_dimensions_may_come_from_the_function():
    message = pb.Schema(fields=[pb.Field(name="v", type=pb.DATA_TYPE_VECTOR, nullable=True)])
    assert conversions.schema_from_proto(message, {"v": 384}).field("v").type == vector_type(384)
    with pytest.raises(InvalidArgument):
        conversions.schema_from_proto(message)


def test_json_rows_round_trip():
    rows = [{"id": 1, "name": "a", "score": 0.5, "raw": "AAE=", "at": "2024-01-02T03:04:05+00:00", "ok": True,
             "vector": [1.0, 2.0, 3.0]},
            {"id": 2, "name": None, "vector": [0.0, 0.0, 1.0]}]
    table = conversions.rows_to_arrow(json_rows(*rows), SCHEMA)
    assert table.column("id").type == pa.int64() and table.column("raw").to_pylist()[0] == b"\x00\x01"
    assert table.column("at").to_pylist()[0] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    back = conversions.arrow_to_rows(table, pb.ROW_FORMAT_JSON)
    again = conversions.rows_to_arrow(back, SCHEMA)
    assert again.equals(table)


def test_arrow_ipc_round_trip():
    table = pa.table({"id": [1, 2], "vector": pa.array([[1, 2, 3], [4, 5, 6]], vector_type(3))})
    message = conversions.arrow_to_rows(table, pb.ROW_FORMAT_ARROW)
    assert conversions.rows_to_arrow(message, None).equals(table)


def test_corrupt_arrow_ipc_is_invalid():
    with pytest.raises(InvalidArgument) as err:
        conversions.rows_to_arrow(pb.Rows(arrow_ipc=b"\xff\xff\xff\xff garbage"), SCHEMA)
    assert err.value.reason == "INVALID_ARROW_IPC"


@pytest.mark.parametrize("row, reason", [
    ({"id": 1.5}, "SCHEMA_MISMATCH"), ({"colour": "red"}, "UNKNOWN_COLUMN"),
    ({"raw": "not base64!"}, "SCHEMA_MISMATCH"),
    ({"at": "yesterday"}, "SCHEMA_MISMATCH"), ({"name": [1, 2]}, "SCHEMA_MISMATCH"),
])
def test_rows_that_do_not_fit(row, reason):
    with pytest.raises(InvalidArgument) as err:
        conversions.rows_to_arrow(json_rows(row), SCHEMA)
    assert err.value.reason == reason


def test_wrong_length_vectors_stay_visible_for_the_bad_vector_policy():
    table = conversions.rows_to_arrow(json_rows({"id": 1, "vector": [1.0, 2.0]}), SCHEMA)
    assert table.column("vector").to_pylist() == [[1.0, 2.0]]  # variable-length: the table layer decides


def test_schema_inference_from_first_rows():
    table = conversions.rows_to_arrow(json_rows({"id": 1, "text": "a", "vector": [0.1, 0.2]},
                                                {"id": 2, "text": "b", "vector": [0.3, 0.4]}), None)
    assert table.schema.field("vector").type == vector_type(2)
    assert table.schema.field("id").type == pa.int64() and table.schema.field("text").type == pa.string()
    np.testing.assert_allclose(table.column("vector").to_pylist(), [[0.1, 0.2], [0.3, 0.4]], rtol=1e-6)


def test_a_schema_with_an_unhashable_extension_type_converts():
    """Lance's own schemas may hold extension types that cannot be hashed (its blob type); describing such a
    schema must not fail (it once answered INTERNAL after the table was created)."""
    class Unhashable(pa.ExtensionType):
        def __init__(self) -> None:
            super().__init__(pa.large_binary(), "test.unhashable")

        def __arrow_ext_serialize__(self) -> bytes:
            return b""

        @classmethod
        def __arrow_ext_deserialize__(cls, storage_type, serialized):  # noqa: ANN001, ANN206
            return cls()

        __hash__ = None  # type: ignore[assignment]

    schema = pa.schema([pa.field("id", pa.int64()), pa.field("b", Unhashable())])
    message = conversions.schema_to_proto(schema)
    assert [f.type for f in message.fields] == [pb.DATA_TYPE_INT64, pb.DATA_TYPE_UNSPECIFIED]
