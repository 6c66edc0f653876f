"""Lance field ids as Arrow metadata, so the store can describe a schema change by editing an Arrow schema.

A Lance dataset names every field (nested ones too) by an id its data files refer to. A rename, a drop or a
nullability change keeps the ids; `LanceSchema.from_pyarrow` takes them from each field's `lance:field_id`
metadata (and numbers fields without it afresh), so a schema read with `arrow_with_ids`, edited, and handed
back to `lance_schema` keeps pointing at the same column data.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from lance.schema import LanceSchema

FIELD_ID = b"lance:field_id"


def _field(lance_field: Any) -> pa.Field:
    arrow = lance_field.to_arrow()
    children = lance_field.children()
    type_ = arrow.type
    if not children:  # a leaf (Lance stores a fixed-size list, a vector, as one field)
        pass
    elif pa.types.is_struct(type_):
        type_ = pa.struct([_field(c) for c in children])
    elif pa.types.is_large_list(type_):
        type_ = pa.large_list(_field(children[0]))
    elif pa.types.is_list(type_):
        type_ = pa.list_(_field(children[0]))
    elif pa.types.is_map(type_):
        entries = _field(children[0])
        type_ = pa.map_(entries.type.field(0), entries.type.field(1), keys_sorted=type_.keys_sorted)
    metadata = {**(arrow.metadata or {}), FIELD_ID: str(lance_field.id()).encode()}
    return pa.field(arrow.name, type_, arrow.nullable, metadata=metadata)


def arrow_with_ids(schema: LanceSchema) -> pa.Schema:
    """The Arrow schema of a Lance schema, each field (and child) carrying its id, with the schema metadata."""
    return pa.schema([_field(f) for f in schema.fields()], metadata=schema.to_pyarrow().metadata)


def lance_schema(schema: pa.Schema) -> LanceSchema:
    return LanceSchema.from_pyarrow(schema)


def without_ids(schema: pa.Schema) -> pa.Schema:
    """The schema as served: the ids taken out again."""
    return pa.schema([_strip(f) for f in schema], metadata=schema.metadata)


def _strip(field_: pa.Field) -> pa.Field:
    metadata = {k: v for k, v in (field_.metadata or {}).items() if k != FIELD_ID}
    type_ = field_.type
    if pa.types.is_struct(type_):
        type_ = pa.struct([_strip(type_.field(i)) for i in range(type_.num_fields)])
    elif pa.types.is_large_list(type_):
        type_ = pa.large_list(_strip(type_.value_field))
    elif pa.types.is_list(type_):
        type_ = pa.list_(_strip(type_.value_field))
    elif pa.types.is_map(type_):
        type_ = pa.map_(_strip(type_.key_field), _strip(type_.item_field), keys_sorted=type_.keys_sorted)
    return pa.field(field_.name, type_, field_.nullable, metadata=metadata or None)


def all_ids(schema: LanceSchema) -> set[int]:
    found: set[int] = set()
    pending = list(schema.fields())
    while pending:
        field_ = pending.pop()
        found.add(int(field_.id()))
        pending.extend(field_.children())
    return found


def ids_in(fields: list[pa.Field]) -> set[int]:
    """The ids Arrow fields (and their children) carry."""
    found: set[int] = set()
    pending = list(fields)
    while pending:
        field_ = pending.pop()
        if field_.metadata and FIELD_ID in field_.metadata:
            found.add(int(field_.metadata[FIELD_ID]))
        pending.extend(_children(field_.type))
    return found


def numbered(fields: list[pa.Field], start: int) -> list[pa.Field]:
    """`fields` with ids from `start` on, parents before their children (as Lance numbers them)."""
    counter = [start]

    def number(field_: pa.Field) -> pa.Field:
        own = counter[0]
        counter[0] += 1
        type_ = field_.type
        if pa.types.is_struct(type_):
            type_ = pa.struct([number(c) for c in _children(type_)])
        elif pa.types.is_large_list(type_):
            type_ = pa.large_list(number(type_.value_field))
        elif pa.types.is_list(type_):
            type_ = pa.list_(number(type_.value_field))
        return pa.field(field_.name, type_, field_.nullable,
                        metadata={**(field_.metadata or {}), FIELD_ID: str(own).encode()})
    return [number(f) for f in fields]


def _children(type_: pa.DataType) -> list[pa.Field]:
    if pa.types.is_struct(type_):
        return [type_.field(i) for i in range(type_.num_fields)]
    if pa.types.is_list(type_) or pa.types.is_large_list(type_):
        return [type_.value_field]
    if pa.types.is_map(type_):
        return [type_.key_field, type_.item_field]
    return []
