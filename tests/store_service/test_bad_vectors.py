"""on_bad_vectors: error / drop / fill / null for wrong length, NaN and missing vectors."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from store_service.ingest.bad_vectors import BadVectorPolicy, already_clean, clean_vectors
from store_service.schema import vector_type
from store_service.errors import InvalidArgument


def table():
    return pa.table({"id": [0, 1, 2, 3], "v": pa.array([[1.0, 2.0], [1.0], [math.nan, 0.0], None],
                                                      pa.list_(pa.float32()))})


def test_error_names_the_first_bad_row():
    with pytest.raises(InvalidArgument) as err:
        clean_vectors(table(), "v", 2, BadVectorPolicy.ERROR, missing_is_bad=False)
    assert err.value.reason == "BAD_VECTOR" and err.value.metadata["row"] == "1"
    assert "1 values, not 2" in err.value.message


def test_drop_fill_null():
    dropped = clean_vectors(table(), "v", 2, BadVectorPolicy.DROP, missing_is_bad=True)
    assert dropped.column("id").to_pylist() == [0]
    filled = clean_vectors(table(), "v", 2, BadVectorPolicy.FILL, 7.0, missing_is_bad=True)
    # LanceDB's fill: cut to the length, padded with the fill value, NaN replaced by it; a missing one all fill
    assert filled.column("v").to_pylist() == [[1.0, 2.0], [1.0, 7.0], [7.0, 0.0], [7.0, 7.0]]
    nulled = clean_vectors(table(), "v", 2, BadVectorPolicy.NULL, missing_is_bad=True)
    assert nulled.column("v").to_pylist() == [[1.0, 2.0], None, None, None]
    assert pa.types.is_fixed_size_list(nulled.column("v").type)


def test_a_mask_says_which_missing_vectors_are_bad():
    """In a nullable column, only rows whose function had a source to embed count a NULL as bad."""
    kept = clean_vectors(table(), "v", 2, BadVectorPolicy.FILL, 0.5, missing_is_bad=np.zeros(4, dtype=bool))
    assert kept.column("v").to_pylist()[3] is None
    absent = pa.table({"id": [0, 1]})
    filled = clean_vectors(absent, "v", 2, BadVectorPolicy.FILL, 0.5, missing_is_bad=np.array([True, False]))
    assert filled.column("v").to_pylist() == [[0.5, 0.5], None]


def test_missing_vectors_wait_for_the_embedder_when_there_is_one():
    kept = clean_vectors(table(), "v", 2, BadVectorPolicy.DROP, missing_is_bad=False)
    assert kept.column("id").to_pylist() == [0, 3] and kept.column("v").to_pylist()[1] is None


def test_a_column_left_out_entirely():
    rows = pa.table({"id": [1, 2]})
    with pytest.raises(InvalidArgument):
        clean_vectors(rows, "v", 2, BadVectorPolicy.ERROR, missing_is_bad=True)
    assert clean_vectors(rows, "v", 2, BadVectorPolicy.FILL, 1.0, missing_is_bad=True).column("v").to_pylist() == \
        [[1.0, 1.0], [1.0, 1.0]]
    assert clean_vectors(rows, "v", 2, BadVectorPolicy.ERROR, missing_is_bad=False).equals(rows)


def fixed(values, dims=2, chunks=1):
    array = pa.FixedSizeListArray.from_arrays(pa.array(np.asarray(values, np.float32).ravel()), dims)
    return pa.chunked_array([array] * chunks)


def test_clean_fixed_size_vectors_are_passed_through_and_only_those():
    clean = pa.table({"id": [0, 1], "v": fixed([[1, 2], [3, 4]], chunks=1)})
    assert already_clean(clean.column("v"), 2)
    assert clean_vectors(clean, "v", 2, BadVectorPolicy.ERROR, missing_is_bad=True) is clean  # nothing copied
    with_nan = fixed([[1, 2], [math.nan, 4], [5, 6]])
    assert not already_clean(with_nan, 2)
    assert already_clean(with_nan.slice(2), 2) and not already_clean(with_nan.slice(1, 1), 2)  # a slice's own
    assert not already_clean(pa.chunked_array([pa.array([[1, 2], None], vector_type(2))]), 2)  # a null vector
    inner_null = pa.FixedSizeListArray.from_arrays(pa.array([1.0, None, 3.0, 4.0], pa.float32()), 2)
    assert not already_clean(pa.chunked_array([inner_null]), 2)
    assert not already_clean(fixed([[1, 2, 3]], dims=3), 2)  # another length
    huge = fixed([[3e38, 3e38], [-3e38, -3e38]])  # sums past float32's range: still clean
    assert already_clean(huge, 2)
    with pytest.raises(InvalidArgument):
        clean_vectors(pa.table({"v": with_nan}), "v", 2, BadVectorPolicy.ERROR, missing_is_bad=True)
