"""Embedding-function metadata in LanceDB's layout; secrets refused; vector columns resolved."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from store_service.errors import InvalidArgument
from store_service.schema import (FunctionConfig, computes, functions_of, pick_vector_column, vector_type,
                                  with_functions)

SCHEMA = pa.schema([("text", pa.string()), ("image", pa.binary()), ("text_vec", vector_type(4)),
                    ("image_vec", vector_type(8)), ("n", pa.int64())])


def test_lancedb_layout_round_trips():
    configs = [FunctionConfig("sentence-transformers", {"name": "all-MiniLM-L6-v2"}, "text", "text_vec"),
               FunctionConfig("open-clip", {}, "image", "image_vec")]
    schema = with_functions(SCHEMA, configs)
    stored = json.loads(schema.metadata[b"embedding_functions"])
    assert stored[0] == {"name": "sentence-transformers", "model": {"name": "all-MiniLM-L6-v2"},
                         "source_column": "text", "vector_column": "text_vec"}
    assert functions_of(pa.ipc.read_schema(pa.py_buffer(schema.serialize()))) == configs


@pytest.mark.parametrize("model, secret", [
    ({"api_key": "sk-123"}, ()), ({"openai_api_key": "sk-123"}, ()), ({"token": "abc"}, ()),
    ({"custom": "abc"}, ("custom",)),
])
def test_literal_secrets_are_refused(model, secret):
    with pytest.raises(InvalidArgument) as err:
        with_functions(SCHEMA, [FunctionConfig("openai", model, "text", "text_vec")], {"openai": secret})
    assert err.value.reason == "LITERAL_SECRET" and "sk-123" not in err.value.message


def test_references_are_kept():
    schema = with_functions(SCHEMA, [FunctionConfig("openai", {"api_key": "$var:openai_key"}, "text", "text_vec")])
    assert functions_of(schema)[0].model == {"api_key": "$var:openai_key"}


@pytest.mark.parametrize("config, reason", [
    (FunctionConfig("x", {}, "text", "nope"), "UNKNOWN_COLUMN"),
    (FunctionConfig("x", {}, "n", "text_vec"), "INVALID_EMBEDDING_FUNCTION"),
    (FunctionConfig("x", {}, "text", "n"), "INVALID_EMBEDDING_FUNCTION"),
    (FunctionConfig("", {}, "text", "text_vec"), "INVALID_EMBEDDING_FUNCTION"),
])
def test_functions_must_fit_the_schema(config, reason):
    with pytest.raises(InvalidArgument) as err:
        with_functions(SCHEMA, [config])
    assert err.value.reason == reason


def test_a_function_without_its_source_column_is_recorded_and_computes_nothing():
    """LanceDB records such a function (the rows then carry their vectors); its tables must open here."""
    config = FunctionConfig("x", {}, "absent", "text_vec")
    assert functions_of(with_functions(SCHEMA, [config])) == [config]
    assert not computes(SCHEMA, config) and computes(SCHEMA, FunctionConfig("x", {}, "text", "text_vec"))


def test_vector_column_resolution():
    assert pick_vector_column(SCHEMA, "image_vec") == "image_vec"
    with pytest.raises(InvalidArgument) as err:
        pick_vector_column(SCHEMA)
    assert err.value.reason == "VECTOR_COLUMN_REQUIRED"
    assert pick_vector_column(pa.schema([("v", vector_type(2))])) == "v"
    with pytest.raises(InvalidArgument):
        pick_vector_column(SCHEMA, "text")


def test_a_search_without_a_column_takes_the_one_of_the_querys_length():
    """LanceDB's rule: several vector columns, one of them of the query vector's length."""
    schema = pa.schema([("a", vector_type(2)), ("b", vector_type(3)),
                        ("s", pa.struct([("v", vector_type(3))]))])
    assert pick_vector_column(schema, dims=2) == "a"
    with pytest.raises(InvalidArgument) as err:
        pick_vector_column(schema, dims=3)  # b and s.v
    assert err.value.reason == "VECTOR_COLUMN_REQUIRED" and "s.v" in err.value.message
