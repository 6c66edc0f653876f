"""Filters mean what they mean in LanceDB: every `where` below gives the same rows through the store as
through Lance's own engine (which LanceDB hands its filters to) on the same dataset. The store evaluates its
grammar with Arrow over the fragments it holds, and hands Lance what lies outside it (functions,
arithmetic, nested fields, typed literals, list functions), fragment by fragment, once the expression gate
(`store_service.expressions`) has judged it."""

from __future__ import annotations

import datetime as dt

import grpc
import lance
import pyarrow as pa
import pytest

from tests.helpers import error_info
from tests.store_service.conftest import arrow_rows
from vectorlane.store.v1 import store_service_pb2 as pb

N = 60
ROWS = pa.table({
    "id": pa.array(range(N), pa.int64()),
    "price": pa.array([None if i % 7 == 0 else round(1.25 * i, 2) for i in range(N)], pa.float64()),
    "category": pa.array([None if i % 11 == 0 else "abc"[i % 3] for i in range(N)]),
    "title": [f"{'Red' if i % 4 == 0 else 'blue'} item {i}" for i in range(N)],
    "tags": pa.array([["x", "y"] if i % 2 else ["z"] for i in range(N)], pa.list_(pa.string())),
    "meta": pa.array([{"lang": "en" if i % 3 else "fr", "score": i % 5} for i in range(N)]),
    "added": pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(hours=6 * i) for i in range(N)], pa.timestamp("us")),
    "in_stock": pa.array([None if i % 13 == 0 else i % 2 == 0 for i in range(N)]),
    "vector": pa.FixedSizeListArray.from_arrays(pa.array([float(i % 5) for i in range(N) for _ in range(4)],
                                                         pa.float32()), 4),
})

SAME_AS_LANCE = [
    # the store's own grammar, evaluated with Arrow
    "id = 3", "id != 3", "price < 10", "price >= 20 AND category = 'a'", "category = 'b' OR id = 5",
    "NOT category = 'a'", "category IN ('a', 'c')", "category NOT IN ('a', 'c')", "title LIKE 'Red%'",
    "title NOT LIKE '%item 1%'", "price IS NULL", "category IS NOT NULL", "price BETWEEN 10 AND 20",
    "price NOT BETWEEN 10 AND 20", "in_stock", "NOT in_stock", "in_stock = false", "`id` < 4",
    "(id < 10 OR id > 50) AND category = 'a'", "category IN ('b', NULL)",
    # outside it: handed to Lance
    "price * 2 > 50", "id % 4 = 1", "lower(title) = 'red item 8'", "upper(category) = 'A'",
    "meta.lang = 'fr'", "meta.score >= 3 AND meta.lang = 'en'", "array_has_any(tags, ['x'])",
    "array_contains(tags, 'z')", "array_length(tags) = 2", "added > timestamp '2024-01-08 00:00:00'",
    "added < date '2024-01-03'", "CAST(id AS STRING) = '42'", "regexp_like(title, 'item [0-9]$')",
    "title ILIKE 'red%'", "in_stock IS TRUE", "in_stock IS NOT FALSE", "coalesce(price, 0) = 0",
    "length(title) > 11", "starts_with(title, 'blue')", "id + 1 IN (5, 6, 7)", "_rowid < 5",
    "price > 10 AND meta.lang = 'en' AND NOT array_has_any(tags, ['z'])",
]


@pytest.fixture
def table(store):
    store.stub.CreateTable(pb.CreateTableRequest(name="things", rows=arrow_rows(ROWS)))
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="things", where="id IN (2, 31, 59)"))  # deletion files
    return store


def ids_through_store(store, where: str) -> list[int]:
    reply = store.stub.ReadRows(pb.ReadRowsRequest(table="things", where=where, select=["id"],
                                                   format=pb.ROW_FORMAT_ARROW))
    from tests.store_service.conftest import rows_of

    return sorted(rows_of(reply.rows).column("id").to_pylist())


@pytest.mark.parametrize("where", SAME_AS_LANCE)
def test_the_store_and_lance_select_the_same_rows(table, where):
    dataset = lance.dataset(str(table.data_dir / "things.lance"))
    expected = sorted(dataset.to_table(columns=["id"], filter=where).column("id").to_pylist())
    assert ids_through_store(table, where) == expected
    count = table.stub.CountRows(pb.CountRowsRequest(table="things", where=where)).count
    assert count == len(expected)


def test_lance_filters_serve_search_delete_and_update(table):
    where = "meta.lang = 'fr' AND price * 2 > 40"
    dataset = lance.dataset(str(table.data_dir / "things.lance"))
    expected = set(dataset.to_table(columns=["id"], filter=where).column("id").to_pylist())
    found = table.stub.Search(pb.SearchRequest(table="things", vector=pb.Vector(values=[1, 1, 1, 1]), where=where,
                                               limit=50)).rows.json.rows
    assert {int(r["id"]) for r in found} == expected
    table.stub.UpdateRows(pb.UpdateRowsRequest(table="things", where=where, values={"category": "q"}))
    assert set(ids_through_store(table, "category = 'q'")) == expected
    deleted = table.stub.DeleteRows(pb.DeleteRowsRequest(table="things", where="upper(category) = 'Q'"))
    assert deleted.rows_deleted == len(expected)


def test_a_date_string_compared_with_a_timestamp_is_read_as_a_timestamp_here(table):
    """Lance refuses `added >= '2024-01-05'` (a string is not a timestamp literal); the store reads the string
    as the timestamp it names, so both spellings work here and mean the same."""
    dataset = lance.dataset(str(table.data_dir / "things.lance"))
    with pytest.raises(ValueError):
        dataset.to_table(columns=["id"], filter="added >= '2024-01-05'")
    expected = sorted(dataset.to_table(columns=["id"], filter="added >= timestamp '2024-01-05 00:00:00'")
                      .column("id").to_pylist())
    assert ids_through_store(table, "added >= '2024-01-05'") == expected
    assert ids_through_store(table, "added >= timestamp '2024-01-05 00:00:00'") == expected


@pytest.mark.parametrize("where, says, reason", [
    ("repeat(title, 2000000000) = 'x'", "repeat", "FUNCTION_NOT_ALLOWED"),
    ("id = 1; DROP TABLE t", "statement", "INVALID_FILTER"),
    ("id IN (SELECT id FROM t)", "InSubquery", "INVALID_FILTER"),
    ("__import__('os') = 1", "__import__", "FUNCTION_NOT_ALLOWED"),
    ("price <", "ends too early", "INVALID_FILTER"),
    ("nope(id) = 1", "nope", "FUNCTION_NOT_ALLOWED"),
    ("meta.nope = 1", "Lance's SQL", "INVALID_FILTER"),
])
def test_what_neither_takes_is_refused_and_the_store_stays_up(table, where, says, reason):
    with pytest.raises(grpc.RpcError) as refused:
        table.stub.CountRows(pb.CountRowsRequest(table="things", where=where))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(refused.value).reason == reason
    assert says in refused.value.details()
    assert table.stub.CountRows(pb.CountRowsRequest(table="things")).count == N - 3
