"""What LanceDB's `test_table.py` promises about tables: creating them from rows, Arrow, pandas, polars and
schemas; adding (types, nullability, bad vectors); versions, restore and tags; delete, update and
merge_insert with their result objects; tables with embedding functions."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import lancedb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from vectorlane.embeddings import EmbeddingFunctionConfig, TextEmbeddingFunction, get_registry, register
from vectorlane.expr import col, lit
from vectorlane.pydantic import LanceModel, Vector

ITEMS = [{"vector": [3.1, 4.1], "item": "foo", "price": 10.0}, {"vector": [5.9, 26.5], "item": "bar", "price": 20.0}]
ITEMS_SCHEMA = pa.schema({"vector": pa.list_(pa.float32(), 2), "item": pa.string(), "price": pa.float64()})


class MockText(TextEmbeddingFunction):
    """LanceDB's MockTextEmbeddingFunction, in this suite's words: a fixed random vector per text."""

    def ndims(self) -> int:
        return 10

    def generate_embeddings(self, texts: list[str]) -> list[np.ndarray]:
        return [np.random.default_rng(sum(map(ord, t))).standard_normal(10) for t in texts]


def test_rows_infer_a_float32_vector_column(mem_db):
    table = mem_db.create_table("test", data=ITEMS)
    assert table.name == "test"
    assert table.schema == ITEMS_SCHEMA
    assert table.to_arrow() == pa.Table.from_pylist(ITEMS, schema=ITEMS_SCHEMA)


def test_search_keeps_nulls_of_a_sliced_arrow_table(mem_db):
    data = pa.table({"id": [0, 1, 2, 3, 4], "score_cn": [None, 22, None, 5, 8], "score_mt": [None, 42, None, 5, 8],
                     "vector": [[20, 19, -1, -1], [41, 38, 22, 42], [10, 10, -1, -1], [5, 5, 5, 5],
                                [8, 8, 8, 8]]}).slice(1)
    table = mem_db.create_table("sliced_nullable", data=data)
    result = table.search([41, 38, 22, 42]).limit(1).to_arrow()
    assert (result["id"].to_pylist(), result["score_cn"].to_pylist(), result["score_mt"].to_pylist()) == \
        ([1], [22], [42])


def test_create_from_rows_arrow_and_pandas_with_a_schema(mem_db):
    expected = pa.table({"vector": [[3.1, 4.1], [5.9, 26.5]], "item": ["foo", "bar"], "price": [10.0, 20.0]},
                        schema=ITEMS_SCHEMA)
    for name, data in [("Rows", ITEMS), ("pa_Table", pa.Table.from_pylist(ITEMS, schema=ITEMS_SCHEMA)),
                       ("pd_DataFrame", pd.DataFrame(ITEMS))]:
        assert mem_db.create_table(name, data=data, schema=ITEMS_SCHEMA).to_arrow() == expected


def test_a_single_dictionary_is_refused(mem_db):
    message = "Cannot create or add rows from a single dictionary. Use a list of dictionaries instead."
    with pytest.raises(ValueError) as refused:
        mem_db.create_table("test", data=ITEMS[0])
    assert str(refused.value) == message
    table = mem_db.create_table("test2", schema=ITEMS_SCHEMA)
    with pytest.raises(ValueError) as refused:
        table.add(data=ITEMS[0])
    assert str(refused.value) == message


def test_add_to_tables_made_from_rows_or_from_a_schema(mem_db):
    def check(table):  # noqa: ANN001
        assert len(table) == 2
        table.add([{"vector": [6.3, 100.5], "item": "new", "price": 30.0}])
        assert len(table) == 3
        assert table.to_arrow() == pa.table({"vector": [[3.1, 4.1], [5.9, 26.5], [6.3, 100.5]],
                                             "item": ["foo", "bar", "new"], "price": [10.0, 20.0, 30.0]},
                                            schema=ITEMS_SCHEMA)

    check(mem_db.create_table("test", data=ITEMS))
    empty = mem_db.create_table("test2", schema=ITEMS_SCHEMA)
    empty.add(data=ITEMS)
    check(empty)


def test_structs_missing_a_field_add_nulls(mem_db):
    schema = pa.schema([("stuff", pa.struct([("b", pa.int64()), ("a", pa.int64())]))])
    table = mem_db.create_table("test", schema=schema)
    table.add([{"stuff": {"b": 1, "a": 2}}])
    table.add([{"stuff": {"b": 4}}])
    assert table.to_arrow() == pa.table({"stuff": [{"b": 1, "a": 2}, {"b": 4, "a": None}]}, schema=schema)


def test_add_a_subset_of_the_columns(mem_db):
    schema = pa.schema([pa.field("vector", pa.list_(pa.float32(), 2), nullable=True),
                        pa.field("item", pa.string(), nullable=True),
                        pa.field("price", pa.float64(), nullable=False)])
    table = mem_db.create_table("test", schema=schema)
    table.add([{"price": 10.0, "item": "foo"}])
    table.add(pa.Table.from_pydict({"price": [2.0], "vector": [[3.1, 4.1]]}))
    table.add([{"price": 3.0, "vector": [5.9, 26.5], "item": "bar"}])
    assert table.to_arrow() == pa.table({"vector": [None, [3.1, 4.1], [5.9, 26.5]], "item": ["foo", None, "bar"],
                                         "price": [10.0, 2.0, 3.0]}, schema=schema)
    with pytest.raises(ValueError):  # a required column cannot be left out
        table.add([{"item": "foo"}])
    table.alter_columns(dict(path="price", nullable=True))
    table.add([{"item": "foo"}])
    assert table.to_arrow()["price"].to_pylist() == [10.0, 2.0, 3.0, None]


def test_nulls_in_a_required_column_are_refused_until_it_is_nullable(mem_db):
    schema = pa.schema([pa.field("vector", pa.list_(pa.float32(), 2), nullable=False),
                        pa.field("id", pa.string(), nullable=False)])
    table = mem_db.create_table("test", schema=schema)
    assert table.schema.field("vector").nullable is False
    nullable = pa.schema([pa.field("vector", pa.list_(pa.float32(), 2)), pa.field("id", pa.string())])
    data = pa.table({"vector": [[3.1, 4.1], [5.9, 26.5]], "id": ["foo", "bar"]}, schema=nullable)
    table.add(data)
    assert table.to_arrow() == data.cast(schema)
    with pytest.raises(ValueError):
        table.add(pa.table({"vector": [None], "id": ["baz"]}, schema=nullable))
    table.alter_columns(dict(path="vector", nullable=True))
    table.add(pa.table({"vector": [None], "id": ["baz"]}, schema=nullable))
    assert table.to_arrow()["vector"].to_pylist()[2] is None


def test_add_returns_the_new_version(mem_db):
    table = mem_db.create_table("test", data=ITEMS)
    assert table.count_rows() == 2
    assert table.add(data=[{"vector": [10.0, 11.0], "item": "baz", "price": 30.0}]).version == 2
    assert table.count_rows() == 3


def test_overwrite_keeps_the_vector_column_a_vector(mem_db):
    table = mem_db.create_table("test_overwrite_vec", data=[{"vector": [1.0, 2.0, 3.0, 4.0], "item": "foo"},
                                                            {"vector": [5.0, 6.0, 7.0, 8.0], "item": "bar"}])
    assert pa.types.is_fixed_size_list(table.schema.field("vector").type)
    table.add([{"vector": [10.0, 20.0, 30.0, 40.0], "item": "baz"}], mode="overwrite")
    assert pa.types.is_fixed_size_list(table.schema.field("vector").type) and len(table) == 1


def test_polars_in_and_out(mem_db):
    data = {"vector": [[3.1, 4.1], [5.9, 26.5]], "item": ["foo", "bar"], "price": [10.0, 20.0]}
    table = mem_db.create_table("test", data=pl.DataFrame(data))
    assert len(table) == 2
    result = table.to_arrow()
    assert np.allclose(result["vector"].to_pylist(), data["vector"]) and result["item"].to_pylist() == data["item"]
    assert table.schema == pa.schema([pa.field("vector", pa.list_(pa.float32(), 2)),
                                      pa.field("item", pa.large_string()), pa.field("price", pa.float64())])
    found = table.search([3.1, 4.1]).limit(1).to_polars()
    assert np.allclose(found["vector"][0], [3.1, 4.1]) and found["item"][0] == "foo"
    lazy = table.to_polars()
    assert isinstance(lazy, pl.LazyFrame)
    assert len(lazy.filter(pl.col("item").is_in(["foo", "bar"])).collect()) == 2


def test_versions_and_checkout(mem_db):
    table = mem_db.create_table("test", data=ITEMS)
    assert len(table.list_versions()) == 1 and table.version == 1
    table.add([{"vector": [6.3, 100.5], "item": "new", "price": 30.0}])
    assert len(table.list_versions()) == 2 and table.version == 2 and len(table) == 3
    table.checkout(1)
    assert table.version == 1 and len(table) == 2


def test_open_table_at_a_version(mem_db):
    table = mem_db.create_table("test", data=ITEMS)
    table.add([{"vector": [6.3, 100.5], "item": "new", "price": 30.0}])
    old = mem_db.open_table("test", version=1)
    assert old.version == 1 and old.count_rows() == 2 and mem_db.open_table("test").count_rows() == 3


BAD_ROWS = [{"vector": [np.nan], "item": "bar", "price": 20.0}, {"vector": [5], "item": "bar", "price": 20.0},
            {"vector": [np.nan, np.nan], "item": "bar", "price": 20.0},
            {"vector": [np.nan, 5.0], "item": "bar", "price": 20.0}]


def test_bad_vectors_on_create(mem_db):
    good = {"vector": [3.1, 4.1], "item": "foo", "price": 10.0}
    for row in BAD_ROWS:
        with pytest.raises(ValueError):
            mem_db.create_table("error_test", data=[good, row])
    assert len(mem_db.create_table("drop_test", data=[good, *BAD_ROWS[:3]], on_bad_vectors="drop")) == 1
    table = mem_db.create_table("fill_test", fill_value=0.0, on_bad_vectors="fill", data=[
        good, {"vector": [2.1, 4.1], "item": "foo", "price": 9.0}, {"vector": [np.nan], "item": "bar", "price": 20.0},
        {"vector": [np.nan, 5.0], "item": "bar", "price": 21.0}, {"vector": [5], "item": "bar", "price": 22.0}])
    assert len(table) == 5
    filled = {r["price"]: r["vector"] for r in table.search().where("item == 'bar'").to_arrow().to_pylist()}
    assert np.allclose(filled[20.0], [0.0, 0.0]) and np.allclose(filled[21.0], [0.0, 5.0])
    assert np.allclose(filled[22.0], [5.0, 0.0])  # padded with the fill value, as LanceDB fills


def test_bad_vectors_on_add(mem_db):
    schema = pa.schema([pa.field("vector", pa.list_(pa.float32(), 2), nullable=True),
                        pa.field("item", pa.string(), nullable=True), pa.field("price", pa.float64(), nullable=False)])
    table = mem_db.create_table("test", schema=schema)
    for row in BAD_ROWS:
        with pytest.raises(ValueError):
            table.add(data=[row])
    table.add([{"vector": [3.1, 4.1], "item": "foo", "price": 10.0},
               {"vector": [2.1, 4.1], "item": "foo", "price": 9.0}, *BAD_ROWS[:3]], on_bad_vectors="drop")
    assert len(table) == 2
    table.delete("true")
    table.add([{"vector": [3.1, 4.1], "item": "foo", "price": 10.0},
               {"vector": [np.nan], "item": "bar", "price": 20.0},
               {"vector": [np.nan, 5.0], "item": "bar", "price": 21.0},
               {"vector": [5], "item": "bar", "price": 22.0}], on_bad_vectors="fill", fill_value=0.0)
    assert len(table) == 4
    filled = {r["price"]: r["vector"] for r in table.search().where("item == 'bar'").to_arrow().to_pylist()}
    assert np.allclose(filled[20.0], [0.0, 0.0]) and np.allclose(filled[21.0], [0.0, 5.0])
    assert np.allclose(filled[22.0], [5.0, 0.0])  # padded with the fill value, as LanceDB fills


def test_an_empty_vector_is_dropped(mem_db):
    class Schema(LanceModel):
        text: str
        embedding: Vector(16)

    table = mem_db.create_table("test_empty_embeddings", schema=Schema)
    table.add([{"text": "hello", "embedding": []}, {"text": "bar", "embedding": [0.1] * 16}], on_bad_vectors="drop")
    data = table.to_arrow()
    assert data["text"].to_pylist() == ["bar"] and np.allclose(data["embedding"].to_pylist()[0], [0.1] * 16)


def test_a_null_vector_in_a_nullable_column_is_stored_as_null(mem_db):
    table = mem_db.create_table("t", schema=pa.schema([pa.field("id", pa.string()),
                                                       pa.field("feature", pa.list_(pa.float32(), 256)),
                                                       pa.field("tags", pa.list_(pa.string()))]))
    table.add([{"id": "1", "feature": None, "tags": ["tag1", "tag2"]}])
    assert table.to_arrow().to_pylist() == [{"id": "1", "feature": None, "tags": ["tag1", "tag2"]}]


def test_a_null_struct_in_a_nullable_column(mem_db):
    table = mem_db.create_table("t", schema=pa.schema([pa.field("id", pa.string()),
                                                       pa.field("data", pa.struct([pa.field("x", pa.float32())]))]))
    table.add([{"id": "1", "data": {"x": 1.0}}])
    table.add([{"id": "2", "data": None}])
    assert table.to_arrow().column("data").to_pylist() == [{"x": 1.0}, None]


def test_integer_vectors_are_cast(mem_db):
    class Schema(LanceModel):
        text: str
        embedding: Vector(4)

    table = mem_db.create_table("t", schema=Schema)
    table.add([{"text": "foo", "embedding": [1, 2, 3, 4]}], on_bad_vectors="drop")
    assert table.to_arrow()["embedding"].to_pylist() == [[1.0, 2.0, 3.0, 4.0]]


def test_restore_makes_a_new_version(mem_db):
    table = mem_db.create_table("my_table", data=[{"vector": [1.1, 0.9], "type": "vector"}])
    table.add([{"vector": [0.5, 0.2], "type": "vector"}])
    table.restore(1)
    assert len(table.list_versions()) == 3 and len(table) == 1
    expected = table.to_arrow()
    table.checkout(1)
    table.restore()
    assert len(table.list_versions()) == 4 and table.to_arrow() == expected
    table.restore(4)
    assert len(table.list_versions()) == 5
    for missing in (6, 0):
        with pytest.raises(ValueError):
            table.restore(missing)


def test_restore_a_tag(mem_db):
    table = mem_db.create_table("my_table", data=[{"vector": [1.1, 0.9], "type": "vector"}])
    table.tags.create("tag1", 1)
    table.add([{"vector": [0.5, 0.2], "type": "vector"}])
    table.restore("tag1")
    assert len(table.list_versions()) == 3 and len(table) == 1
    expected = table.to_arrow()
    table.add([{"vector": [0.3, 0.3], "type": "vector"}])
    table.checkout("tag1")
    table.restore()
    assert len(table.list_versions()) == 5 and table.to_arrow() == expected
    with pytest.raises(ValueError):
        table.restore("tag_unknown")


def test_delete_returns_the_version(mem_db):
    table = mem_db.create_table("my_table", data=[{"vector": [1.1, 0.9], "id": 0}, {"vector": [1.2, 1.9], "id": 1}])
    assert len(table) == 2 and len(table.list_versions()) == 1
    assert table.delete("id=0").version == 2
    assert len(table.list_versions()) == 2 and table.version == 2 and len(table) == 1
    assert table.to_arrow()["id"].to_pylist() == [1]


def test_expressions_built_in_python_filter_as_sql_does(mem_db):
    table = mem_db.create_table("my_table", data=[{"vector": [1.1, 0.9], "id": 0}, {"vector": [1.2, 1.9], "id": 1},
                                                  {"vector": [1.3, 2.9], "id": 2}])
    assert table.delete(col("id") == lit(0)).version == 2
    assert sorted(table.to_arrow()["id"].to_pylist()) == [1, 2]
    assert table.count_rows((col("id") * 2 > lit(2)) & ~col("id").isin([5])) == 1
    assert [r["id"] for r in table.search().where(col("id") >= 1).to_list()] == [1, 2]
    other = mem_db.create_table("merge", data=pa.table({"a": [1, 2, 3], "b": ["a", "b", "c"]}))
    merged = (other.merge_insert("a").when_matched_update_all().when_not_matched_insert_all()
              .when_not_matched_by_source_delete(col("a") > lit(2)).execute(pa.table({"a": [2, 4], "b": ["x", "z"]})))
    assert (merged.num_inserted_rows, merged.num_updated_rows, merged.num_deleted_rows) == (1, 1, 1)
    assert other.to_arrow().sort_by("a") == pa.table({"a": [1, 2, 4], "b": ["a", "x", "z"]})
    assert lit("it's").to_sql() == "'it''s'" and col("my col").to_sql() == "`my col`"


def test_concurrent_deletes_each_get_their_version(mem_db):
    workers = 8
    table = mem_db.create_table("my_table", data=[{"id": i} for i in range(workers)])
    barrier = threading.Barrier(workers)

    def delete(row_id: int):  # noqa: ANN202
        barrier.wait()
        return table.delete(f"id = {row_id}")

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(delete, range(workers)))
    assert all(r.num_deleted_rows == 1 for r in results)
    assert sorted(r.version for r in results) == list(range(2, workers + 2)) and table.count_rows() == 0


def test_update_returns_rows_updated(mem_db):
    table = mem_db.create_table("my_table", data=[{"vector": [1.1, 0.9], "id": 0}, {"vector": [1.2, 1.9], "id": 1}])
    result = table.update(where="id=0", values={"vector": [1.1, 1.1]})
    assert (result.version, result.rows_updated) == (2, 1)
    assert len(table.list_versions()) == 2 and table.version == 2 and len(table) == 2
    vectors = table.to_arrow()["vector"].combine_chunks().values.to_numpy().reshape(2, 2)
    assert np.allclose(vectors, [[1.2, 1.9], [1.1, 1.1]])


def test_update_with_an_arrow_scalar(mem_db):
    table = mem_db.create_table("my_table", schema=pa.schema({"id": pa.int64(), "vector": pa.list_(pa.float32(), 4)}))
    table.add([{"id": 1, "vector": [1.0, 2.0, 3.0, 4.0]}])
    value = table.search().select(["vector"]).limit(1).to_arrow()["vector"][0]
    assert isinstance(value, pa.FixedSizeListScalar)
    assert table.update(where="id == 1", values={"vector": value}).rows_updated == 1
    assert table.to_arrow()["vector"].to_pylist() == [[1.0, 2.0, 3.0, 4.0]]


def test_update_every_type_by_sql_and_by_value(mem_db):
    table = mem_db.create_table("my_table", data=[{
        "id": 0, "str": "foo", "float": 1.1, "timestamp": datetime(2021, 1, 1), "date": date(2021, 1, 1),
        "vector1": [1.0, 0.0], "vector2": [1.0, 1.0], "binary": b"abc"}])
    table.update(values_sql=dict(id="1", str="'bar'", float="2.2", timestamp="TIMESTAMP '2021-01-02 00:00:00'",
                                 date="DATE '2021-01-02'", vector1="[2.0, 2.0]", vector2="[3.0, 3.0]",
                                 binary="X'646566'"))
    assert table.to_arrow().to_pylist()[0] == dict(
        id=1, str="bar", float=2.2, timestamp=datetime(2021, 1, 2), date=date(2021, 1, 2), vector1=[2.0, 2.0],
        vector2=[3.0, 3.0], binary=b"def")
    table.update(values=dict(id=2, str="baz", float=3.3, timestamp=datetime(2021, 1, 3), date=date(2021, 1, 3),
                             vector1=[3.0, 3.0], vector2=np.array([4.0, 4.0]), binary=b"def"))
    assert table.to_arrow().to_pylist()[0] == dict(
        id=2, str="baz", float=3.3, timestamp=datetime(2021, 1, 3), date=date(2021, 1, 3), vector1=[3.0, 3.0],
        vector2=[4.0, 4.0], binary=b"def")


def test_update_by_sql_computes_from_each_rows_values(mem_db):
    table = mem_db.create_table("t", data=[{"id": i, "price": float(i)} for i in range(4)])
    assert table.update(where="id >= 2", values_sql={"price": "price * 10"}).rows_updated == 2
    assert sorted(table.to_arrow()["price"].to_pylist()) == [0.0, 1.0, 20.0, 30.0]


def test_merge_insert_every_form(mem_db):
    table = mem_db.create_table("my_table", data=pa.table({"a": [1, 2, 3], "b": ["a", "b", "c"]}))
    version = table.version
    new_data = pa.table({"a": [2, 3, 4], "b": ["x", "y", "z"]})

    def counts(result):  # noqa: ANN001
        return result.version, result.num_inserted_rows, result.num_updated_rows, result.num_deleted_rows

    upsert = (table.merge_insert("a").when_matched_update_all().when_not_matched_insert_all()
              .execute(new_data, timeout=timedelta(seconds=10)))
    assert counts(upsert) == (2, 1, 2, 0)
    assert table.to_arrow().sort_by("a") == pa.table({"a": [1, 2, 3, 4], "b": ["a", "x", "y", "z"]})
    table.restore(version)
    conditional = table.merge_insert("a").when_matched_update_all(where="target.b = 'b'").execute(new_data)
    assert counts(conditional) == (4, 0, 1, 0)
    assert table.to_arrow().sort_by("a") == pa.table({"a": [1, 2, 3], "b": ["a", "x", "c"]})
    table.restore(version)
    insert_only = table.merge_insert("a").when_not_matched_insert_all().execute(new_data)
    assert counts(insert_only) == (6, 1, 0, 0)
    assert table.to_arrow().sort_by("a") == pa.table({"a": [1, 2, 3, 4], "b": ["a", "b", "c", "z"]})
    table.restore(version)
    new_data = pa.table({"a": [2, 4], "b": ["x", "z"]})
    replace_range = (table.merge_insert("a").when_matched_update_all().when_not_matched_insert_all()
                     .when_not_matched_by_source_delete("a > 2").execute(new_data))
    assert counts(replace_range) == (8, 1, 1, 1)
    assert table.to_arrow().sort_by("a") == pa.table({"a": [1, 2, 4], "b": ["a", "x", "z"]})
    table.restore(version)
    replace_all = (table.merge_insert("a").when_matched_update_all().when_not_matched_insert_all()
                   .when_not_matched_by_source_delete().execute(new_data))
    assert counts(replace_all) == (10, 1, 1, 2)
    assert table.to_arrow().sort_by("a") == pa.table({"a": [2, 4], "b": ["x", "z"]})
    with pytest.raises(TimeoutError, match="merge insert timed out"):
        table.merge_insert("a").when_matched_update_all().execute(new_data, timeout=timedelta(0))


def test_merge_joins_new_columns_by_key(mem_db):
    table = mem_db.create_table("my_table", schema=pa.schema({"vector": pa.list_(pa.float32(), 2),
                                                              "id": pa.int64()}))
    table.add([{"vector": [1.1, 0.9], "id": 0}, {"vector": [1.2, 1.9], "id": 1}])
    table.merge(pa.table({"document": ["foo", "bar"], "id": [0, 1]}), left_on="id")
    assert len(table.list_versions()) == 3
    assert table.to_arrow() == pa.table({"vector": [[1.1, 0.9], [1.2, 1.9]], "id": [0, 1],
                                         "document": ["foo", "bar"]}, schema=table.schema)
    table.restore(1)
    table.merge(pd.DataFrame({"key": [1], "n": [5]}), left_on="id", right_on="key")
    assert table.to_arrow().column_names == ["vector", "id", "n"] and table.count_rows() == 0


def test_merge_insert_condition_on_the_new_rows(mem_db):
    table = mem_db.create_table("t", data=pa.table({"a": [1, 2], "n": [10, 20]}))
    merged = table.merge_insert("a").when_matched_update_all(where="source.n > target.n").execute(
        pa.table({"a": [1, 2], "n": [5, 25]}))
    assert (merged.num_updated_rows, merged.num_inserted_rows) == (1, 0)
    assert table.to_arrow().sort_by("a")["n"].to_pylist() == [10, 25]


def test_a_model_schema_with_a_function_config_searches_by_text(mem_db):
    class MyTable(LanceModel):
        text: str
        vector: Vector(10)

    func = register("test")(MockText).create()  # LanceDB's conftest registers its mock as "test"
    texts = ["hello world", "goodbye world", "foo bar baz fizz buzz"]
    conf = EmbeddingFunctionConfig(source_column="text", vector_column="vector", function=func)
    table = mem_db.create_table("my_table", schema=MyTable, embedding_functions=[conf])
    table.add(pa.table({"text": texts, "vector": func.compute_source_embeddings(texts)}))
    query_vector = func.compute_query_embeddings("hi how are you?")[0]
    assert table.search("hi how are you?").limit(2).to_arrow() == table.search(query_vector).limit(2).to_arrow()


def test_rows_added_without_vectors_are_embedded(mem_db):
    emb = register("test")(MockText).create()

    class MyTable(LanceModel):
        text: str = emb.SourceField()
        vector: Vector(emb.ndims()) = emb.VectorField()

    table = mem_db.create_table("my_table", schema=MyTable)
    table.add(pa.table({"text": ["hello world", "goodbye world", "foo bar baz fizz buzz"]}))
    table.add([{"text": t} for t in ["the quick brown fox", "jumped over the lazy dog"]])
    query_vector = emb.compute_query_embeddings("hi how are you?")[0]
    assert table.search("hi how are you?").limit(2).to_arrow() == table.search(query_vector).limit(2).to_arrow()


def test_two_vector_columns_are_searched_by_name(mem_db):
    class MyTable(LanceModel):
        text: str
        vector1: Vector(10)
        vector2: Vector(10)

    table = mem_db.create_table("my_table", schema=MyTable)
    v1, v2 = np.random.randn(10), np.random.randn(10)
    table.add(pa.Table.from_pylist([{"vector1": v1, "vector2": v2, "text": "foo"},
                                    {"vector1": v2, "vector2": v1, "text": "bar"}]))
    q = np.random.randn(10)
    first = table.search(q, vector_column_name="vector1").limit(1).to_arrow()
    second = table.search(q, vector_column_name="vector2").limit(1).to_arrow()
    assert first["text"][0] != second["text"][0]
    with pytest.raises(ValueError):
        table.search(q).limit(1).to_arrow()


def test_the_one_vector_column_is_found_whatever_its_name(mem_db):
    class MyTable(LanceModel):
        text: str
        vector_col: Vector(10)

    table = mem_db.create_table("my_table", schema=MyTable)
    table.add(pa.Table.from_pylist([{"vector_col": np.random.randn(10), "text": "foo"},
                                    {"vector_col": np.random.randn(10), "text": "bar"}]))
    q = np.random.randn(10)
    assert table.search(q, vector_column_name="vector_col").limit(1).to_arrow()["text"][0].as_py() == \
        table.search(q).limit(1).to_arrow()["text"][0].as_py()


def test_plain_queries_return_every_row_unless_limited(mem_db):
    table = mem_db.create_table("my_table", data=[{"text": "foo", "id": 0}, {"text": "bar", "id": 1}])
    assert table.search().select(["id"]).where("text='bar'").limit(1).to_arrow()["id"][0].as_py() == 1
    table = mem_db.create_table("my_table2", data=[{"id": i} for i in range(100)])
    assert table.search().select(["id"]).to_arrow().num_rows == 100
    assert table.search().select(["id"]).limit(None).to_arrow().num_rows == 100
    assert table.search().select(["id"]).limit(-1).to_arrow().num_rows == 100
    assert table.search().select(["id"]).limit(42).to_arrow().num_rows == 42


def test_len_and_count_rows(mem_db):
    table = mem_db.create_table("my_table", data=[{"text": "foo", "id": 0}, {"text": "bar", "id": 1}])
    assert len(table) == 2 and table.count_rows() == 2 and table.count_rows(filter="text='bar'") == 1


def test_columns_added_altered_and_dropped_return_versions(mem_db):
    table = mem_db.create_table("my_table", data=pa.table({"id": [0, 1], "category": ["a", "b"]}))
    assert table.add_columns({"new_col": "id + 2"}).version == 2
    assert table.to_arrow()["new_col"].to_pylist() == [2, 3]
    assert table.add_columns({"null_int": "cast(null as bigint)"}).version == 3
    assert table.schema.field("null_int").type == pa.int64()
    assert table.alter_columns({"path": "id", "rename": "new_id"}).version == 4
    assert table.drop_columns(["category"]).version == 5
    assert table.to_arrow().column_names == ["new_id", "new_col", "null_int"]


def test_stats_count_rows_and_fragments(mem_db):
    table = mem_db.create_table("my_table", data=[{"text": "foo", "id": 0}, {"text": "bar", "id": 1}])
    stats = table.stats()
    assert (stats["num_rows"], stats["num_indices"], stats["fragment_stats"]["num_fragments"]) == (2, 0, 1)
    assert stats["total_bytes"] > 0 and stats["fragment_stats"]["lengths"]["p50"] == 2


def test_an_empty_list_with_a_schema_makes_an_empty_table(mem_db):
    schema = pa.schema([pa.field("vector", pa.list_(pa.float32(), 2)), pa.field("id", pa.int64())])
    table = mem_db.create_table("test_empty_list", data=[], schema=schema)
    assert table.count_rows() == 0 and table.schema == schema
    with pytest.raises(ValueError):
        mem_db.create_table("test_empty_no_schema", data=[])


def test_a_model_schema_without_rows(mem_db):
    class MySchema(LanceModel):
        text: str
        embedding: Vector(16)

    table = mem_db.create_table("test", schema=MySchema)
    assert table.count_rows() == 0 and table.schema == MySchema.to_arrow_schema()
    table.add([{"text": "bar", "embedding": [0.1] * 16}], on_bad_vectors="drop")
    assert table.count_rows() == 1


@pytest.mark.skip(reason="a vectorlane table lives in the store, not at a path the client sees: its uri is "
                         "the store's address and the table's name")
def test_table_uri_is_a_local_path():
    """LanceDB's test_table_uri compares table.uri with tmp_path / 'my_table.lance'."""


def test_functions_in_an_arrow_schemas_metadata_are_honoured(mem_db):
    func = register("mock-text")(MockText).create()
    config = EmbeddingFunctionConfig(source_column="text", vector_column="vector", function=func)
    schema = pa.schema([pa.field("text", pa.string()), pa.field("vector", pa.list_(pa.float32(), 10))],
                       metadata=get_registry().get_table_metadata([config]))
    table = mem_db.create_table("t", schema=schema)
    table.add([{"text": "hello"}, {"text": "world"}])
    assert table.to_arrow()["vector"].null_count == 0
    assert table.search("hello").limit(1).to_list()[0]["text"] == "hello"


def test_a_lancedb_table_read_out_with_to_arrow_keeps_its_function(mem_db, tmp_path):
    register("mock-text")(MockText)
    import lancedb.embeddings as lance_embeddings

    @lance_embeddings.register("mock-text")
    class LanceMock(lance_embeddings.TextEmbeddingFunction):
        def ndims(self) -> int:
            return 10

        def generate_embeddings(self, texts):  # noqa: ANN001
            return MockText().generate_embeddings(list(texts))

    lance_func = lance_embeddings.get_registry().get("mock-text").create()

    class Words(lancedb.pydantic.LanceModel):
        text: str = lance_func.SourceField()
        vector: lancedb.pydantic.Vector(10) = lance_func.VectorField()

    source = lancedb.connect(tmp_path).create_table("words", schema=Words)
    source.add([{"text": "hello"}, {"text": "world"}])
    table = mem_db.create_table("words", data=source.to_arrow())
    assert table.embedding_functions["vector"].function.function_name == "mock-text"
    table.add([{"text": "more"}])
    assert table.to_arrow()["vector"].null_count == 0
    assert table.search("world").limit(1).to_list()[0]["text"] == "world"


def test_create_index_with_a_config_or_the_legacy_arguments(mem_db):
    """LanceDB's unified `create_index(column, config=...)` and its legacy form build the same kinds."""
    from vectorlane.index import BTree, HnswFlat, HnswSq, IvfFlat, IvfPq

    rows = [{"id": i, "vector": [float(i), float(i % 7), 1.0, 2.0]} for i in range(300)]
    table = mem_db.create_table("indexed", data=rows)
    built = table.create_index("vector", config=IvfPq(distance_type="cosine", num_partitions=2, num_sub_vectors=2))
    assert (built.index_type, built.distance_type, built.parameters["num_partitions"]) == ("IVF_PQ", "cosine", 2)
    assert table.create_index("vector", config=IvfFlat(num_partitions=4)).index_type == "IVF_FLAT"
    assert table.create_index("vector", config=HnswFlat(m=12)).index_type == "HNSW"
    created = table.create_index("l2", vector_column_name="vector", index_type="IVF_FLAT", num_partitions=2)
    assert created.index_type == "IVF_FLAT" and created.columns == ["vector"]
    assert created == table.list_indices()[0]  # the client's own type, as list_indices gives it
    with pytest.raises(ValueError, match="HnswFlat"):
        table.create_index("vector", config=HnswSq())
    with pytest.raises(ValueError, match="scalar"):
        table.create_index("id", config=BTree())
    with pytest.raises(ValueError, match="8 bits"):
        table.create_index("vector", config=IvfPq(num_bits=4))
    with pytest.warns(UserWarning, match="max_iterations"):
        table.create_index("vector", config=IvfFlat(num_partitions=2, max_iterations=10))
    assert table.search([1.0, 1.0, 1.0, 2.0]).limit(3).to_arrow().num_rows == 3


def test_vectors_inside_structs_are_searched_by_path(mem_db):
    """LanceDB finds a vector inside a struct (`image.embedding`) as the table's vector column."""
    schema = pa.schema([pa.field("id", pa.int32()),
                        pa.field("image", pa.struct([pa.field("embedding", pa.list_(pa.float32(), 2))]))])
    rows = [{"id": i, "image": {"embedding": [float(i), float(i) + 1.0]}} for i in range(50)]
    table = mem_db.create_table("nested", data=pa.Table.from_pylist(rows, schema=schema))
    assert table.search([0.0, 1.0]).limit(1).to_list()[0]["id"] == 0
    assert table.search([10.0, 11.0], vector_column_name="image.embedding").limit(1).to_list()[0]["id"] == 10
    table.create_index(vector_column_name="image.embedding", index_type="IVF_FLAT", num_partitions=2)
    assert table.search([20.0, 21.0]).where("id > 5").limit(1).to_list()[0]["id"] == 20
    two = mem_db.create_table("two", data=pa.Table.from_pylist(
        [{"a": {"v": [0.0, 1.0]}, "b": {"v": [2.0, 3.0]}}],
        schema=pa.schema([pa.field("a", pa.struct([pa.field("v", pa.list_(pa.float32(), 2))])),
                          pa.field("b", pa.struct([pa.field("v", pa.list_(pa.float32(), 2))]))])))
    with pytest.raises(ValueError, match="a.v.*b.v"):
        two.search([0.0, 1.0]).to_arrow()


def test_field_metadata_is_updated_merged_and_replaced(mem_db):
    table = mem_db.create_table("meta", data=pa.table({"id": [0, 1], "category": ["a", "b"]}))
    result = table.update_field_metadata({"path": "category", "metadata": {"unit": "label", "pii": "false"}})
    assert result.version == 2
    assert table.schema.field("category").metadata == {b"unit": b"label", b"pii": b"false"}
    table.update_field_metadata({"path": "category", "metadata": {"source": "import", "pii": None}})
    assert table.schema.field("category").metadata == {b"unit": b"label", b"source": b"import"}
    table.replace_field_metadata("id", {"foo": "bar"})
    assert table.schema.field("id").metadata == {b"foo": b"bar"}
    assert table.to_arrow()["category"].to_pylist() == ["a", "b"] and len(table.list_versions()) == 4
    with pytest.raises(ValueError, match="Lance's own"):
        table.update_field_metadata({"path": "id", "metadata": {"lance-encoding:blob": "true"}})


def test_drop_all_tables_and_rename_as_lancedbs_local_databases(mem_db):
    mem_db.create_table("one", data=[{"id": 1}])
    mem_db.create_table("two", data=[{"id": 2}])
    with pytest.raises(NotImplementedError, match="rename_table not implemented"):
        mem_db.rename_table("one", "uno")
    assert mem_db.table_names() == ["one", "two"]
    mem_db.drop_all_tables()
    assert mem_db.table_names() == []
