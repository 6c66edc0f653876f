"""LanceDB's `table.merge(other, left_on, right_on)` through the store (MergeColumns): a left join adding the
other table's columns, one new version, with what the store keeps about the table (indexes, functions)."""

from __future__ import annotations

import lance
import lancedb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

import vectorlane
from tests.helpers import error_info
from vectorlane.errors import InvalidArgumentError
from vectorlane.index import IvfPq
from vectorlane.store.v1 import store_service_pb2 as pb


def small(db, name="t"):
    table = db.create_table(name, schema=pa.schema({"vector": pa.list_(pa.float32(), 2), "id": pa.int64()}))
    table.add([{"vector": [1.1, 0.9], "id": 0}, {"vector": [1.2, 1.9], "id": 1}, {"vector": [0.0, 0.5], "id": 7}])
    return table


def test_merge_adds_the_other_tables_columns_by_key_as_lancedb_does(db, tmp_path):
    table = small(db)
    table.merge(pa.table({"document": ["foo", "bar"], "id": [0, 1], "score": [0.5, 1.5]}), left_on="id")
    assert len(table.list_versions()) == 3
    assert table.to_arrow().select(["id", "document", "score"]).to_pylist() == [
        {"id": 0, "document": "foo", "score": 0.5}, {"id": 1, "document": "bar", "score": 1.5},
        {"id": 7, "document": None, "score": None}]  # no row of the other has 7
    assert table.schema.field("document").nullable
    # the same as LanceDB's own merge of the same data
    theirs = lancedb.connect(str(tmp_path / "lancedb")).create_table(
        "t", pa.table({"vector": pa.array([[1.1, 0.9], [1.2, 1.9], [0.0, 0.5]], pa.list_(pa.float32(), 2)),
                       "id": [0, 1, 7]}))
    theirs.merge(pa.table({"document": ["foo", "bar"], "id": [0, 1], "score": [0.5, 1.5]}), left_on="id")
    assert theirs.to_arrow().sort_by("id").to_pylist() == table.to_arrow().sort_by("id").to_pylist()
    # rows added later hold null unless they give a value
    table.add([{"vector": [3.0, 3.0], "id": 9}, {"vector": [4.0, 4.0], "id": 10, "document": "late"}])
    assert table.search().where("id >= 9").select(["id", "document"]).to_arrow().sort_by("id").to_pylist() == [
        {"id": 9, "document": None}, {"id": 10, "document": "late"}]
    assert table.search().where("document = 'bar'").select(["id"]).to_list() == [{"id": 1}]
    # LanceDB opens the merged table and reads the same
    assert lancedb.connect(str(db.store.data_dir)).open_table("t").to_arrow().sort_by("id").to_pylist() == \
        table.to_arrow().sort_by("id").to_pylist()


def test_merge_takes_lancedbs_kinds_of_other_table(db, tmp_path):
    table = small(db)
    table.merge(pd.DataFrame({"key": [7, 0], "pandas": ["seven", "zero"]}), left_on="id", right_on="key")
    table.merge(lance.write_dataset(pa.table({"id": [1], "lance": [True]}), tmp_path / "other.lance"), left_on="id")
    other = db.create_table("other", data=[{"id": 0, "from_table": "a vectorlane table"}])
    table.merge(other, left_on="id")
    table.merge([{"id": 7, "typed": 3}], left_on="id", schema=pa.schema({"id": pa.int64(), "typed": pa.int16()}))
    rows = {r["id"]: r for r in table.to_arrow().to_pylist()}
    assert (rows[0]["pandas"], rows[7]["pandas"], rows[1]["lance"], rows[0]["from_table"], rows[7]["typed"]) == \
        ("zero", "seven", True, "a vectorlane table", 3)
    assert "key" not in table.schema.names and table.schema.field("typed").type == pa.int16()


def test_search_after_merge_with_an_ivf_pq_index(db):
    """LanceDB's test_search_after_merge: an IVF-PQ index built before the merge still serves the search."""
    rng = np.random.default_rng(42)
    vectors = rng.standard_normal((512, 8)).astype(np.float32)
    table = db.create_table("s", data=pd.DataFrame({"id": [str(i) for i in range(512)], "vector": list(vectors)}))
    table.create_index("vector", config=IvfPq(num_partitions=1, num_sub_vectors=2))
    table.merge(pd.DataFrame({"id": [str(i) for i in range(256)], "link": [f"https://example.com/{i}"
                                                                         for i in range(256)]}), left_on="id")
    query = table.search(vectors[-1]).refine_factor(50).limit(10)
    assert "FaissSearch" in query.explain_plan(verbose=True)
    result = query.to_arrow()
    links = dict(zip(result["id"].to_pylist(), result["link"].to_pylist()))
    assert result["id"][0].as_py() == "511" and links["511"] is None
    assert all(links[i] == f"https://example.com/{i}" for i in links if int(i) < 256)


def reason(excinfo: pytest.ExceptionInfo) -> str:
    return excinfo.value.reason


@pytest.mark.parametrize(("other", "left_on", "right_on", "expected"), [
    (pa.table({"id": [0, 0], "x": ["a", "b"]}), "id", None, "DUPLICATE_KEY"),
    (pa.table({"id": pa.array([0, None], pa.int64()), "x": ["a", "b"]}), "id", None, "NULL_KEY"),
    (pa.table({"id": ["0"], "x": ["a"]}), "id", None, "KEY_TYPE_MISMATCH"),
    (pa.table({"id": [0.5], "x": ["a"]}), "id", None, "KEY_TYPE_MISMATCH"),
    (pa.table({"id": [0], "vector": pa.array([[0.0, 1.0]], pa.list_(pa.float32(), 2))}), "id", None,
     "COLUMN_EXISTS"),
    (pa.table({"id": [0], "x": ["a"]}), "nope", None, "UNKNOWN_COLUMN"),
    (pa.table({"id": [0], "x": ["a"]}), "id", "nope", "UNKNOWN_COLUMN"),
    (pa.table({"id": [0]}), "id", None, "MISSING_COLUMNS"),
    (pa.table({"id": [0], **{f"c{i}": [i] for i in range(65)}}), "id", None, "TOO_MANY_COLUMNS"),
    (pa.table({"id": [0], "_rowid": [1]}), "id", None, "RESERVED_COLUMN"),
    (pa.table({"vector": [0], "x": ["a"]}), "vector", None, "KEY_TYPE_MISMATCH"),  # a vector is no key
    # each row of the other may be copied to every row with its key: 2 MiB would be 2 TiB over a 1M-row table
    (pa.table({"id": [0], "blob": [b"x" * (2 << 20)]}), "id", None, "MERGE_ROW_TOO_LARGE"),
])
def test_a_merge_that_cannot_be_done_is_refused_precisely_and_changes_nothing(db, other, left_on, right_on,
                                                                               expected):
    table = small(db)
    before = (table.version, table.schema, table.to_arrow())
    with pytest.raises(InvalidArgumentError) as caught:
        table.merge(other, left_on=left_on, right_on=right_on)
    assert reason(caught) == expected, caught.value
    assert (table.version, table.schema, table.to_arrow()) == before


def test_hostile_merge_requests_are_refused_over_the_wire(db):
    small(db)
    stub = db.store.stub
    for request, expected in [
        (pb.MergeColumnsRequest(table="t", left_on="id"), "MISSING_ROWS"),
        (pb.MergeColumnsRequest(table="t", arrow_ipc=b"\xff\xff\xff\xff" + b"\x00" * 64, left_on="id"), None),
        (pb.MergeColumnsRequest(table="t", arrow_ipc=vectorlane.rows.ipc(pa.table({"id": [0], "x": [1]}))
                                .to_pybytes()), "MISSING_KEY"),
        (pb.MergeColumnsRequest(table="missing", arrow_ipc=vectorlane.rows.ipc(pa.table({"id": [0], "x": [1]}))
                                .to_pybytes(), left_on="id"), "TABLE_NOT_FOUND"),
    ]:
        with pytest.raises(Exception) as caught:
            stub.MergeColumns(request, timeout=30)
        info = error_info(caught.value)
        assert info is not None and (expected is None or info.reason == expected), (request.left_on, info)
    assert db.open_table("t").count_rows() == 3


def test_a_large_value_shared_by_many_rows_is_copied_to_each_of_them(db):
    table = db.create_table("shared", data=[{"id": i % 2, "n": i} for i in range(40)])
    value = b"v" * (512 << 10)
    table.merge(pa.table({"id": [0], "blob": [value]}), left_on="id")
    blobs = table.search().select(["n", "blob"]).to_arrow()
    assert all((b == value) == (n % 2 == 0) and (b is None) == (n % 2 == 1)
               for n, b in zip(blobs["n"].to_pylist(), blobs["blob"].to_pylist()))
