"""Hypothesis strategies for fuzzing: any request message of the contract, built from its descriptor, and
filter strings that are mostly near-misses of the filter grammar.

Values lean towards what the services look at (the catalogue's table, column and function names, vector
lengths a column may have, enum values one past the defined ones, NaN and infinities, path-like and unicode
names, filters) so that fuzzing reaches past the first validation, with some arbitrary values mixed in.
"""

from __future__ import annotations

import os
from typing import Any

from google.protobuf import struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

from tests.bad_inputs import CLIP, DOCS, PLAIN

EXAMPLES = int(os.environ.get("VECTORLANE_FUZZ_EXAMPLES", "40"))  # per RPC; `make stress` raises it

NAMES = [DOCS, PLAIN, CLIP, "id", "text", "vector", "category", "nope", "", "../docs", "a/b", "表", "v",
         "word-hash", "open-clip", "sentence-transformers", "openai", "$var:key", "file:///etc/passwd",
         "http://127.0.0.1:1/x.png", "x" * 300, "\x00", "name", "batch_size", "device", "dim", "cpu"]
COLUMNS = ["id", "text", "category", "vector", "`id`", "`weird name`", "nope", "_rowid"]
LITERALS = ["1", "-3", "2.5", "1e309", "'a'", "'it''s'", "''", "NULL", "TRUE", "false", "'%x_'", "9999999999999999999"]
KEYWORDS = ["AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "BETWEEN", "(", ")", ",", "=", "==", "!=", "<>", "<",
            "<=", ">", ">=", "'", "`", ";", "--"]
TABLES = [DOCS, PLAIN, CLIP]
FUNCTIONS = ["word-hash", "open-clip", "openai", "no-such", ""]
# Fields whose values are drawn mostly from what exists, so most requests get past the first lookup.
HINTS: dict[str, st.SearchStrategy[Any]] = {
    "table": st.one_of(st.sampled_from(TABLES), st.sampled_from(TABLES), st.sampled_from(NAMES)),
    "vector_column": st.sampled_from(["", "vector", "v", "text", "nope"]),
    "source_column": st.sampled_from(["text", "category", "id", "nope"]),
    "select": st.sampled_from(["id", "text", "category", "vector", "_distance", "nope"]),
    "on": st.sampled_from(["id", "text", "category", "vector", "nope"]),
    "text": st.one_of(st.sampled_from(["row 3", "a red square", "poison", ""]), st.text(max_size=30)),
    "limit": st.one_of(st.integers(-2, 30), st.integers(-2 ** 31, 2 ** 31 - 1)),
    "version": st.integers(-1, 6),
}
# Per message field (`Message.field`), where the name alone says too little.
MESSAGE_HINTS: dict[str, st.SearchStrategy[Any]] = {
    "CreateTableRequest.name": st.one_of(st.sampled_from(["t1", "t2", DOCS]), st.sampled_from(NAMES)),
    "DropTableRequest.name": st.sampled_from(["t1", "t2", "nope", "../docs"]),  # keeps the catalogue's tables
    "GetTableRequest.name": st.one_of(st.sampled_from(TABLES), st.sampled_from(NAMES)),
    "FunctionSpec.name": st.one_of(st.sampled_from(FUNCTIONS), st.text(max_size=10)),
    "EmbeddingFunctionConfig.name": st.one_of(st.sampled_from(FUNCTIONS), st.text(max_size=10)),
    "DropIndexRequest.name": st.sampled_from(["vector_idx", "nope", ""]),
}
INT_BOUNDS = {FieldDescriptor.TYPE_INT32: (-2 ** 31, 2 ** 31 - 1), FieldDescriptor.TYPE_INT64: (-2 ** 63, 2 ** 63 - 1),
              FieldDescriptor.TYPE_UINT32: (0, 2 ** 32 - 1), FieldDescriptor.TYPE_UINT64: (0, 2 ** 64 - 1),
              FieldDescriptor.TYPE_SINT32: (-2 ** 31, 2 ** 31 - 1),
              FieldDescriptor.TYPE_SINT64: (-2 ** 63, 2 ** 63 - 1)}


def _comparison() -> st.SearchStrategy[str]:
    operand = st.one_of(st.sampled_from(COLUMNS), st.sampled_from(LITERALS))
    op = st.sampled_from(["=", "==", "!=", "<>", "<", "<=", ">", ">="])
    return st.one_of(
        st.tuples(operand, op, operand).map(" ".join),
        st.tuples(st.sampled_from(COLUMNS), st.lists(st.sampled_from(LITERALS), min_size=1, max_size=3))
        .map(lambda t: f"{t[0]} IN ({', '.join(t[1])})"),
        st.tuples(st.sampled_from(COLUMNS), st.sampled_from(LITERALS)).map(lambda t: f"{t[0]} LIKE {t[1]}"),
        st.sampled_from(COLUMNS).map(lambda c: f"{c} IS NOT NULL"),
        st.tuples(st.sampled_from(COLUMNS), operand, operand).map(lambda t: f"{t[0]} BETWEEN {t[1]} AND {t[2]}"),
    )


def filters() -> st.SearchStrategy[str]:
    """Well-formed filters, their combinations, token soup and arbitrary text."""
    formed = st.recursive(_comparison(), lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["AND", "OR"]), inner).map(" ".join),
        inner.map(lambda f: f"NOT ({f})")), max_leaves=6)
    soup = st.lists(st.one_of(st.sampled_from(KEYWORDS), st.sampled_from(COLUMNS), st.sampled_from(LITERALS)),
                    max_size=12).map(" ".join)
    return st.one_of(formed, soup, st.text(max_size=40), formed.map(lambda f: f[: len(f) // 2]))


def _struct() -> st.SearchStrategy[struct_pb2.Struct]:
    scalar = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True), st.integers(-5, 10 ** 6),
                       st.sampled_from(NAMES), st.text(max_size=10))
    value = st.one_of(scalar, st.lists(scalar, max_size=4), st.lists(st.floats(-1, 1), min_size=4, max_size=4),
                      st.lists(st.floats(-1, 1), min_size=32, max_size=32))

    def build(entries: dict[str, Any]) -> struct_pb2.Struct:
        s = struct_pb2.Struct()
        s.update(entries)
        return s

    return st.dictionaries(st.sampled_from(NAMES + COLUMNS[:4]), value, max_size=4).map(build)


def _scalar(field: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return filters() if field.name == "where" else st.one_of(st.sampled_from(NAMES), st.text(max_size=20))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return st.floats(width=32 if kind == FieldDescriptor.TYPE_FLOAT else 64)
    if kind == FieldDescriptor.TYPE_ENUM:
        defined = [v.number for v in field.enum_type.values]
        known = st.sampled_from(defined)
        return st.one_of(known, known, known, st.just(max(defined) + 1), st.integers(-2, 2 ** 31 - 1))
    low, high = INT_BOUNDS.get(kind, (-2 ** 31, 2 ** 31 - 1))
    small = st.integers(0, 40)
    return st.one_of(small, small, st.integers(max(low, -3), -1) if low < 0 else small, st.sampled_from([low, high]),
                     st.integers(low, high))


def _field_values(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    hint = MESSAGE_HINTS.get(f"{field.containing_type.name}.{field.name}", HINTS.get(field.name))
    if hint is not None and field.type == FieldDescriptor.TYPE_STRING:
        return st.lists(hint, max_size=3) if field.is_repeated else hint
    if hint is not None and not field.is_repeated:
        return hint
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        one = _struct() if field.message_type.full_name == "google.protobuf.Struct" else \
            messages(field.message_type, depth + 1)
    else:
        one = _scalar(field)
    if not field.is_repeated:
        return one
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):  # vectors: lengths that matter
        return st.sampled_from([0, 1, 3, 4, 32, 33]).flatmap(lambda n: st.lists(one, min_size=n, max_size=n))
    return st.lists(one, max_size=3)


def messages(descriptor: Descriptor, depth: int = 0) -> st.SearchStrategy[Message]:
    """Messages of `descriptor`'s type with any subset of their fields set to fuzzed values."""
    from google.protobuf import message_factory

    cls = message_factory.GetMessageClass(descriptor)
    if depth > 3:
        return st.just(cls())
    usable = [f for f in descriptor.fields if not (f.message_type and f.message_type.GetOptions().map_entry)]
    parts = {f.name: st.one_of(_field_values(f, depth), st.none()) for f in usable}

    def build(values: dict[str, Any]) -> Message:
        message = cls()
        for name, value in values.items():
            if value is None:
                continue
            field = descriptor.fields_by_name[name]
            if field.is_repeated:
                target = getattr(message, name)
                if field.type == FieldDescriptor.TYPE_MESSAGE:
                    for item in value:
                        target.add().CopyFrom(item)
                else:
                    target.extend(value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                getattr(message, name).CopyFrom(value)
            else:
                setattr(message, name, value)
        return message

    return st.fixed_dictionaries(parts).map(build)
