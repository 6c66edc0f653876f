"""LanceDB's schema evolution (`add_columns`, `alter_columns`, `drop_columns`) planned against a table's
schema and embedding functions, in plain Python: what to compute, and how the schema (with its functions
and index catalog) reads afterwards. `storage.table.Table.change_schema` commits a plan.

What vectorlane adds to Lance's rules:
- a renamed column takes its embedding function and indexes with it (the function's `source_column` /
  `vector_column` and the catalog follow the new name, in the same version);
- a dropped vector column takes its function and indexes; a function's source column cannot be dropped
  (drop the function first) nor cast, and vector columns keep their float32 type (FAISS serves it);
- new columns' SQL expressions (evaluated by Lance, as in LanceDB) pass the expression gate
  (`store_service.expressions`): only functions whose output their input bounds, a bounded tree, and a bound
  on what one row's evaluation holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import FailedPrecondition, InvalidArgument
from store_service.expressions import Judged, Role, judge
from store_service.expressions.cost import MAX_FIXED
from store_service.expressions.row_sizes import cell_bytes
from store_service.schema import (check_table_schema, functions_of, is_vector, unsupported_type,
                                  with_functions)
from store_service.storage.new_columns import NewColumns

MAX_NEW_COLUMNS = 64
MAX_EXPRESSION_LENGTH = 4096
MAX_ALTERATIONS = 256
MAX_MERGE_ROW_BYTES = MAX_FIXED  # what an add_columns expression may make of one row
MERGE_BATCH_BYTES = 64 << 20
_CAST_PREFIX = "__vectorlane_cast_"

@dataclass(frozen=True)
class Alteration:
    """One of LanceDB's `alter_columns` entries: the column (`path`), and what changes."""

    path: str
    rename: str = ""
    nullable: bool | None = None
    data_type: pa.DataType | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)  # keys set
    metadata_removed: tuple[str, ...] = ()
    metadata_replace: bool = False

    @property
    def changes_metadata(self) -> bool:
        return bool(self.metadata or self.metadata_removed or self.metadata_replace)

    def new_metadata(self, current: Mapping[bytes, bytes] | None) -> dict[bytes, bytes]:
        """The field's metadata after the change; Lance's own keys (its field id) always stay."""
        current = dict(current or {})
        kept = {k: v for k, v in current.items() if k.startswith(b"lance")} if self.metadata_replace else current
        for key in self.metadata_removed:
            kept.pop(key.encode(), None)
        kept.update({k.encode(): v.encode() for k, v in self.metadata.items()})
        return kept


MAX_METADATA_KEYS = 64
MAX_METADATA_BYTES = 64 * 1024


def _check_metadata(alteration: Alteration) -> None:
    keys = [*alteration.metadata, *alteration.metadata_removed]
    size = sum(len(k) + len(v) for k, v in alteration.metadata.items())
    if len(keys) > MAX_METADATA_KEYS or size > MAX_METADATA_BYTES:
        raise InvalidArgument(f"the metadata of {alteration.path!r} changes {len(keys)} keys of {size} bytes; at "
                              f"most {MAX_METADATA_KEYS} keys and {MAX_METADATA_BYTES} bytes",
                              reason="INVALID_ALTERATION", column=alteration.path)
    for key in keys:
        if not key or key.startswith("lance"):
            raise InvalidArgument(f"metadata key {key[:64]!r} of {alteration.path!r} is empty or Lance's own "
                                  "('lance-...' and 'lance:...' keys say how Lance stores the column)",
                                  reason="INVALID_ALTERATION", column=alteration.path)


@dataclass(frozen=True)
class Plan:
    """One commit: the columns to compute (None: the schema alone changes) and the edit of the schema."""

    new_columns: NewColumns | None
    edit: Any  # storage.table.SchemaEdit
    operation: str


def check_expression(name: str, expression: str, kind: str = "new column") -> Judged:
    """The SQL expression for `kind` `name` (a new column, an updated or a computed one) as the expression
    gate judged it; an empty or unbounded one is refused."""
    if not expression.strip():
        raise InvalidArgument(f"{kind} {name!r} has an empty expression", reason="INVALID_EXPRESSION",
                              column=name)
    return judge(expression, Role.VALUE, what=f"the expression of {kind} {name!r}",
                 max_length=MAX_EXPRESSION_LENGTH, column=name)


def _check_new_names(schema: pa.Schema, names: Sequence[str]) -> None:
    if not names:
        raise InvalidArgument("add_columns needs at least one column", reason="MISSING_COLUMNS")
    if len(names) > MAX_NEW_COLUMNS:
        raise InvalidArgument(f"{len(names)} new columns; at most {MAX_NEW_COLUMNS} in one change",
                              reason="TOO_MANY_COLUMNS")
    for name in names:
        if name in schema.names:
            raise InvalidArgument(f"column {name!r} is already in the table", reason="COLUMN_EXISTS", column=name)
        if name.startswith(_CAST_PREFIX):
            raise InvalidArgument(f"column names starting with {_CAST_PREFIX!r} are the store's own",
                                  reason="RESERVED_COLUMN", column=name)
    check_table_schema(pa.schema([*schema, *(pa.field(n, pa.int8()) for n in names)]))  # names, before any work


def _check_result(schema: pa.Schema) -> pa.Schema:
    check_table_schema(schema)
    return schema


def _placed(schema: pa.Schema, fields: list[pa.Field]) -> pa.Schema:
    return pa.schema(fields, metadata=schema.metadata)


def plan_add_expressions(schema: pa.Schema, expressions: dict[str, str]) -> Plan:
    """New columns computed for every row by SQL expressions (Lance's SQL, as LanceDB evaluates them)."""
    _check_new_names(schema, list(expressions))
    judged = {name: check_expression(name, expression) for name, expression in expressions.items()}
    names = list(expressions)

    def edit(current: pa.Schema, indexes: tuple[dict[str, Any], ...]) -> tuple[pa.Schema, list[dict[str, Any]]]:
        for f in current:
            if f.name in names:
                problem = unsupported_type(f.type)
                if problem is not None:
                    raise InvalidArgument(f"new column {f.name!r} would be {f.type}: {problem}",
                                          reason="UNSUPPORTED_TYPE", column=f.name)
        return _check_result(current), list(indexes)
    return Plan(NewColumns(judged), edit, "add_columns")


def plan_add_nulls(schema: pa.Schema, fields: pa.Schema) -> Plan:
    """New columns of the given types, null in every row (LanceDB's `add_columns(pa.field(...))`)."""
    _check_new_names(schema, fields.names)
    for f in fields:
        if not f.nullable:
            raise InvalidArgument(f"new column {f.name!r} starts null in every row, so it must be nullable",
                                  reason="NULL_IN_REQUIRED_COLUMN", column=f.name)
    check_table_schema(pa.schema([*schema, *fields]))
    read = next((f.name for f in schema if not is_vector(f)), schema.names[0])  # the cheapest column to count rows by
    wanted = list(fields)

    def nulls(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.RecordBatch.from_arrays([pa.nulls(batch.num_rows, f.type) for f in wanted],
                                          schema=pa.schema(wanted))

    def edit(current: pa.Schema, indexes: tuple[dict[str, Any], ...]) -> tuple[pa.Schema, list[dict[str, Any]]]:
        return _check_result(current), list(indexes)
    return Plan(NewColumns(nulls, reads=[read]), edit, "add_columns")


def _key_kind(kind: pa.DataType) -> str | None:
    if pa.types.is_integer(kind):
        return "integer"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return "string"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return "binary"
    return None


def plan_merge(schema: pa.Schema, other: pa.Table, left_on: str, right_on: str) -> Plan:
    """LanceDB's `merge`: the other table's columns (but its key) as new columns, each row taking the values
    of the other table's row with its key, null where there is none. Keys are integers, strings or binaries,
    unique and non-null in the other table."""
    if schema.get_field_index(left_on) < 0:
        raise InvalidArgument(f"left_on: the table has no column {left_on!r}", reason="UNKNOWN_COLUMN",
                              column=left_on)
    if other.schema.get_field_index(right_on) < 0:
        raise InvalidArgument(f"right_on: the other table has no column {right_on!r}", reason="UNKNOWN_COLUMN",
                              column=right_on)
    left_type, right_type = schema.field(left_on).type, other.schema.field(right_on).type
    if _key_kind(left_type) is None or _key_kind(left_type) != _key_kind(right_type):
        raise InvalidArgument(f"merge keys must be integers, strings or binaries of one kind: {left_on!r} is "
                              f"{left_type}, the other table's {right_on!r} is {right_type}",
                              reason="KEY_TYPE_MISMATCH", column=left_on)
    keys = other.column(right_on)
    if keys.null_count:
        raise InvalidArgument(f"the other table's key column {right_on!r} holds nulls", reason="NULL_KEY",
                              column=right_on)
    try:
        keys = keys.cast(left_type).combine_chunks()  # safe: a value that does not fit is refused
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise InvalidArgument(f"the other table's keys do not fit {left_on!r} ({left_type})",
                              reason="KEY_TYPE_MISMATCH", column=right_on) from exc
    if pc.count_distinct(keys).as_py() != len(keys):
        raise InvalidArgument(f"the other table's key column {right_on!r} repeats a key: each row of the table "
                              "must take at most one row", reason="DUPLICATE_KEY", column=right_on)
    values = other.drop_columns([right_on]).combine_chunks()
    wanted = [f.with_nullable(True) for f in values.schema]  # rows without a match hold null
    _check_new_names(schema, [f.name for f in wanted])
    check_table_schema(pa.schema([*schema, *wanted]))
    columns = [values.column(f.name).combine_chunks() if values.num_rows else pa.array([], f.type) for f in wanted]
    # Each row of the other table may be taken by every row of the table: its values are held to what an
    # add_columns expression may make of a row (1 MiB), and a batch to MERGE_BATCH_BYTES of them.
    row_bytes = sum((cell_bytes(c) for c in columns), np.zeros(len(keys))) if columns else np.zeros(0)
    largest = float(row_bytes.max()) if len(row_bytes) else 0.0
    if largest > MAX_MERGE_ROW_BYTES:
        raise InvalidArgument(f"a row of the other table holds {int(largest):,} bytes of new values; at most "
                              f"{MAX_MERGE_ROW_BYTES:,} (each may be copied to every row with its key)",
                              reason="MERGE_ROW_TOO_LARGE")
    batch_rows = int(max(1, min(65536, MERGE_BATCH_BYTES // max(largest, 1.0))))

    def joined(batch: pa.RecordBatch) -> pa.RecordBatch:
        at = pc.index_in(batch.column(0), value_set=keys)
        return pa.RecordBatch.from_arrays([column.take(at) for column in columns], schema=pa.schema(wanted))

    def edit(current: pa.Schema, indexes: tuple[dict[str, Any], ...]) -> tuple[pa.Schema, list[dict[str, Any]]]:
        return _check_result(current), list(indexes)
    # large batches: each looks its keys up in a hash table of the other table's keys, built per batch
    return Plan(NewColumns(joined, reads=[left_on], batch_rows=batch_rows, error_reason="INVALID_MERGE"), edit,
                "merge")


def _castable(source: pa.DataType, target: pa.DataType) -> bool:
    """Lance's rule: within one kind (integers and floats being numbers; strings, binaries, their size
    variants; timestamps; dates)."""
    kinds = ((pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal),
             (pa.types.is_string, pa.types.is_large_string), (pa.types.is_binary, pa.types.is_large_binary),
             (pa.types.is_timestamp,), (pa.types.is_date,), (pa.types.is_boolean,), (pa.types.is_duration,))
    return any(any(k(source) for k in kind) and any(k(target) for k in kind) for kind in kinds)


def plan_alter(schema: pa.Schema, alterations: Sequence[Alteration], null_counts: dict[str, int]) -> list[Plan]:
    """The commits of `alter_columns`: the cast columns' alterations in one (see `_alter_plan`), then the
    others'. `null_counts` has the nulls of each column made non-nullable."""
    if not alterations:
        raise InvalidArgument("alter_columns needs at least one alteration", reason="MISSING_ALTERATIONS")
    if len(alterations) > MAX_ALTERATIONS:
        raise InvalidArgument(f"{len(alterations)} alterations; at most {MAX_ALTERATIONS}", reason="TOO_MANY_COLUMNS")
    functions = functions_of(schema)
    sources = {c.source_column: c for c in functions}
    seen: set[str] = set()
    renamed: dict[str, str] = {}
    for alteration in alterations:
        path = alteration.path
        if schema.get_field_index(path) < 0:
            nested = "." in path and schema.get_field_index(path.split(".")[0]) >= 0
            raise InvalidArgument(f"column {path!r} is not in the table" +
                                  (" (only top-level columns can be altered here)" if nested else ""),
                                  reason="UNKNOWN_COLUMN", column=path)
        if path in seen:
            raise InvalidArgument(f"column {path!r} is altered twice", reason="INVALID_ALTERATION", column=path)
        seen.add(path)
        field_ = schema.field(path)
        if not alteration.rename and alteration.nullable is None and alteration.data_type is None \
                and not alteration.changes_metadata:
            raise InvalidArgument(f"the alteration of {path!r} changes nothing (give rename, nullable, data_type "
                                  "or metadata)", reason="INVALID_ALTERATION", column=path)
        _check_metadata(alteration)
        if alteration.rename:
            renamed[path] = alteration.rename
        if alteration.nullable is False and field_.nullable and null_counts.get(path, 0):
            raise FailedPrecondition(f"column {path!r} holds {null_counts[path]} nulls; it cannot be made "
                                     "non-nullable", reason="NULL_IN_REQUIRED_COLUMN", column=path)
        if alteration.data_type is not None and alteration.data_type != field_.type:
            target = alteration.data_type
            if is_vector(field_) or path in sources:
                role = "a vector column" if is_vector(field_) else f"the source of {sources[path].name!r}"
                raise FailedPrecondition(f"column {path!r} is {role}; its type cannot change",
                                         reason="COLUMN_IN_USE", column=path)
            if not _castable(field_.type, target) or unsupported_type(target) is not None:
                raise InvalidArgument(f"column {path!r} is {field_.type}; it cannot be cast to {target}",
                                      reason="INVALID_CAST", column=path, type=str(target))
    names = [renamed.get(n, n) for n in schema.names]
    if len(set(names)) != len(names):
        raise InvalidArgument("after the renames two columns would share a name", reason="COLUMN_EXISTS")
    check_table_schema(pa.schema([f.with_name(renamed.get(f.name, f.name)) for f in schema]))

    casts = {a.path: a for a in alterations if a.data_type is not None and a.data_type != schema.field(a.path).type}
    plans = []
    if casts:
        plans.append(_alter_plan(list(casts.values()), casts))
    others = [a for a in alterations if a.path not in casts]
    if others:
        plans.append(_alter_plan(others, {}))
    return plans


def _alter_plan(alterations: Sequence[Alteration], casts: dict[str, Alteration]) -> Plan:
    """One commit of `alterations`: with `casts`, a Lance Merge writing the cast columns (under temporary
    names), whose schema edit gives them their final names, nullability and metadata; without, a Project (a
    manifest alone). Lance's Merge keeps every existing field's name, so the alterations of columns that are
    not cast are a Project of their own after it."""
    by_path = {a.path: a for a in alterations}
    renames = {a.path: a.rename for a in alterations if a.rename}
    columns = list(casts)
    temporary = {c: f"{_CAST_PREFIX}{i}" for i, c in enumerate(columns)}

    def cast(batch: pa.RecordBatch) -> pa.RecordBatch:
        arrays, fields = [], []
        for column in columns:
            target = casts[column].data_type
            values = batch.column(column)
            try:
                arrays.append(values.cast(target, safe=True))
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"column {column!r}: a value does not fit {target} ({str(exc)[:160]})") from None
            fields.append(pa.field(temporary[column], target))
        return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))

    def edit(current: pa.Schema, indexes: tuple[dict[str, Any], ...]) -> tuple[pa.Schema, list[dict[str, Any]]]:
        computed = {f.name: f for f in current if f.name.startswith(_CAST_PREFIX)}
        fields = []
        for f in current:  # one pass by the original names, so a rename onto another's name cannot confuse it
            if f.name in computed:
                continue
            alteration = by_path.get(f.name)
            if alteration is not None:
                if f.name in casts:  # the cast column's own field id; the old one's other metadata
                    cast_field = computed[temporary[f.name]]
                    kept = {k: v for k, v in (f.metadata or {}).items() if not k.startswith(b"lance")}
                    f = cast_field.with_name(f.name).with_nullable(f.nullable).with_metadata(
                        {**kept, **(cast_field.metadata or {})})
                f = _altered(f, alteration)
            fields.append(f)
        return _rename_functions(_placed(current, fields), renames), _rename_indexes(indexes, renames)

    if not casts:
        return Plan(None, edit, "alter_columns")
    return Plan(NewColumns(cast, reads=columns, error_reason="INVALID_CAST"), edit, "alter_columns:cast")


def _altered(f: pa.Field, alteration: Alteration) -> pa.Field:
    f = f.with_name(alteration.rename or f.name)
    if alteration.nullable is not None:
        f = f.with_nullable(alteration.nullable)
    if alteration.changes_metadata:
        f = f.with_metadata(alteration.new_metadata(f.metadata))
    return f


def _rename_functions(schema: pa.Schema, renames: dict[str, str]) -> pa.Schema:
    functions = functions_of(schema)
    if not renames or not functions:
        return schema
    moved = [type(c)(c.name, c.model, renames.get(c.source_column, c.source_column),
                     renames.get(c.vector_column, c.vector_column), c.source_type) for c in functions]
    return with_functions(schema, moved)


def _rename_indexes(indexes: Iterable[dict[str, Any]], renames: dict[str, str]) -> list[dict[str, Any]]:
    return [{**e, "vector_column": renames.get(e["vector_column"], e["vector_column"])} for e in indexes]


def plan_drop(schema: pa.Schema, columns: Sequence[str]) -> Plan:
    """Drops columns (a manifest alone; older versions keep them). A dropped vector column takes its
    function and indexes with it; a function's source column is refused."""
    wanted = list(dict.fromkeys(columns))
    if not wanted:
        raise InvalidArgument("drop_columns needs at least one column", reason="MISSING_COLUMNS")
    for column in wanted:
        if schema.get_field_index(column) < 0:
            raise InvalidArgument(f"column {column!r} is not in the table", reason="UNKNOWN_COLUMN", column=column)
    if len(wanted) >= len(schema):
        raise InvalidArgument("a table keeps at least one column", reason="INVALID_SCHEMA")
    for config in functions_of(schema):
        if config.source_column in wanted and config.vector_column not in wanted:
            raise FailedPrecondition(f"column {config.source_column!r} is the source of the embedding function of "
                                     f"{config.vector_column!r}; drop that function (or that vector column) first",
                                     reason="COLUMN_IN_USE", column=config.source_column)
    dropped = set(wanted)

    def edit(current: pa.Schema, indexes: tuple[dict[str, Any], ...]) -> tuple[pa.Schema, list[dict[str, Any]]]:
        kept = _placed(current, [f for f in current if f.name not in dropped])
        functions = [c for c in functions_of(current) if c.vector_column not in dropped]
        return with_functions(kept, functions), [e for e in indexes if e["vector_column"] not in dropped]
    return Plan(None, edit, "drop_columns")
