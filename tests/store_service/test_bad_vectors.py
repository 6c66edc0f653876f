"""on_bad_vectors: error / drop / fill / null for wrong length, NaN and missing vectors."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from store_service.ingest.bad_vectors import BadVectorPolicy, clean_vectors
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
