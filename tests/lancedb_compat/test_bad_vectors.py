"""What LanceDB's `on_bad_vectors` covers, beyond the basics in `test_table.py`: which columns count as
vectors (a function's, `vector`, a fixed `embedding`, or fixed-size float lists of 10 values or more as
given), variable-length `list<float>` vector columns whose length an add finds from its first batch holding
a vector, and the batches of a RecordBatchReader kept apart on the way."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from vectorlane.embeddings import EmbeddingFunctionConfig, EmbeddingFunctionRegistry, TextEmbeddingFunction, register

NAN = float("nan")


class TenDims(TextEmbeddingFunction):
    def ndims(self) -> int:
        return 10

    def generate_embeddings(self, texts: list[str]) -> list[np.ndarray]:
        return [np.full(10, float(len(t))) for t in texts]


def lists(name: str = "vector") -> pa.Schema:
    return pa.schema([pa.field(name, pa.list_(pa.float32()))])


def test_a_fixed_size_list_that_is_not_a_vector_keeps_its_type_rule(mem_db):
    table = mem_db.create_table("boxes", schema=pa.schema([pa.field("vector", pa.list_(pa.float32(), 4)),
                                                           pa.field("bbox", pa.list_(pa.float32(), 4))]))
    with pytest.raises(RuntimeError, match="FixedSizeListType"):
        table.add([{"vector": [1.0, 2.0, 3.0, 4.0], "bbox": [0.0, 1.0]}], on_bad_vectors="drop")
    with pytest.raises(ValueError):  # the same error is a ValueError too
        table.add([{"vector": [1.0, 2.0, 3.0, 4.0], "bbox": [0.0]}], on_bad_vectors="drop")
    assert len(table) == 0


def test_a_custom_named_fixed_column_given_as_python_lists_is_not_a_vector(mem_db):
    table = mem_db.create_table("features", schema=pa.schema([pa.field("features", pa.list_(pa.float32(), 16))]))
    with pytest.raises(RuntimeError, match="FixedSizeListType"):
        table.add([{"features": []}, {"features": [0.1] * 16}], on_bad_vectors="drop")


def test_a_list_vector_column_takes_the_commonest_length(mem_db):
    table = mem_db.create_table("lists", schema=lists())
    table.add([{"vector": [1.0, 2.0]}, {"vector": [3.0]}, {"vector": [4.0, 5.0]}], on_bad_vectors="drop")
    assert table.to_arrow()["vector"].to_pylist() == [[1.0, 2.0], [4.0, 5.0]]
    assert table.schema.field("vector").type == pa.list_(pa.float32())
    with pytest.raises(ValueError, match="has 1 values, not 2"):
        table.add([{"vector": [1.0, 2.0]}, {"vector": [3.0]}, {"vector": [4.0, 5.0]}])


def test_fixed_vectors_of_ten_values_or_more_are_vectors_whatever_the_name(mem_db):
    table = mem_db.create_table("vec", schema=lists("vec"))
    given = pa.table({"vec": pa.array([[NAN] * 16, [1.0] * 16], type=pa.list_(pa.float32(), 16))})
    table.add(given, on_bad_vectors="drop")
    assert table.to_arrow()["vec"].to_pylist() == [[1.0] * 16]


def test_short_fixed_vectors_under_another_name_are_stored_as_given(mem_db):
    table = mem_db.create_table("short", schema=lists("coords"))
    table.add(pa.table({"coords": pa.array([[NAN, 1.0]], type=pa.list_(pa.float32(), 2))}), on_bad_vectors="drop")
    assert math.isnan(table.to_arrow()["coords"].to_pylist()[0][0])


def test_fill_keeps_a_list_column_a_list(mem_db):
    table = mem_db.create_table("filled", schema=lists())
    table.add(pa.table({"vector": pa.array([[1.0, 2.0], [NAN, 3.0]], type=pa.list_(pa.float32(), 2))}),
              on_bad_vectors="fill", fill_value=0.0)
    stored = table.to_arrow()["vector"]
    assert stored.type == pa.list_(pa.float32())
    assert stored.to_pylist() == [[1.0, 2.0], [0.0, 3.0]]


@pytest.mark.parametrize(("first", "expected"), [
    ([[], []], [[], [], [1.0, 2.0], [3.0, 4.0]]),              # no vector yet: stored as they are
    ([[NAN] * 3, [NAN] * 3], [[1.0, 2.0], [3.0, 4.0]]),     # every vector dropped: the length is not held
])
def test_a_batch_without_a_surviving_vector_does_not_fix_the_length(mem_db, first, expected):
    table = mem_db.create_table("prefix", schema=lists())
    head = pa.record_batch({"vector": first})
    tail = pa.record_batch({"vector": [[1.0, 2.0], [3.0, 4.0]]})
    reader = pa.RecordBatchReader.from_batches(head.schema, [head, tail])
    table.add(reader, on_bad_vectors="drop")
    assert table.to_arrow()["vector"].to_pylist() == expected


def test_the_length_found_first_holds_for_the_rest_of_the_add(mem_db):
    table = mem_db.create_table("held", schema=lists())
    head = pa.record_batch({"vector": [[1.0, 2.0], [3.0, 4.0]]})
    tail = pa.record_batch({"vector": [[5.0, 6.0, 7.0], [8.0, 9.0, 10.0], [11.0, 12.0]]})
    table.add(pa.RecordBatchReader.from_batches(head.schema, [head, tail]), on_bad_vectors="drop")
    assert table.to_arrow()["vector"].to_pylist() == [[1.0, 2.0], [3.0, 4.0], [11.0, 12.0]]


def test_functions_without_their_source_column_are_recorded_and_their_columns_cleaned(mem_db):
    func = register("ten-dims")(TenDims).create()
    metadata = EmbeddingFunctionRegistry.get_instance().get_table_metadata([
        EmbeddingFunctionConfig(source_column="text1", vector_column="vec1", function=func),
        EmbeddingFunctionConfig(source_column="text2", vector_column="vec2", function=func)])
    schema = pa.schema([pa.field("vec1", pa.list_(pa.float32())), pa.field("vec2", pa.list_(pa.float32()))],
                       metadata=metadata)
    table = mem_db.create_table("recorded", schema=schema)
    assert [c.vector_column for c in table.embedding_functions.values()] == ["vec1", "vec2"]
    head = pa.record_batch({"vec1": [[1.0, 2.0, 3.0], [10.0, 11.0]], "vec2": [[NAN, 0.0], [5.0, 6.0]]})
    tail = pa.record_batch({"vec1": [[20.0, 21.0], [30.0, 31.0]], "vec2": [[7.0, 8.0], [9.0, 10.0]]})
    table.add(pa.RecordBatchReader.from_batches(head.schema, [head, tail]), on_bad_vectors="drop")
    data = table.to_arrow()
    assert data["vec1"].to_pylist() == [[10.0, 11.0], [20.0, 21.0], [30.0, 31.0]]
    assert data["vec2"].to_pylist() == [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]]
