"""Rows in and out of the client: whatever a user hands `add` (dicts, pydantic models, pandas, Arrow) as an
Arrow table in the table's types, local functions' vectors filled in, the local image files rows name, and
Arrow IPC for the wire."""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pydantic

from vectorlane.embeddings.config import EmbeddingFunctionConfig


SINGLE_DICT = "Cannot create or add rows from a single dictionary. Use a list of dictionaries instead."


def to_arrow(data: Any, schema: pa.Schema | None = None) -> pa.Table:
    """`data` as an Arrow table; with `schema`, its columns in the schema's types (columns it lacks, such as
    vectors the store will compute, stay absent). A vector column whose values are not already vectors of
    the schema's size travels as a variable-length list: the store checks each row's length and applies
    `on_bad_vectors` to the ones that are wrong, as it does for NaN."""
    if isinstance(data, dict):
        raise ValueError(SINGLE_DICT)
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif isinstance(data, pa.RecordBatchReader) or _batches(data):
        return _from_batches(list(data), schema)
    elif _is_pandas(data):
        table = pa.Table.from_pandas(data, preserve_index=False)
    elif _is_polars(data):
        table = data.to_arrow()
    else:
        items = [data] if isinstance(data, pydantic.BaseModel) else list(data)
        rows: list[dict[str, Any]] = [_plain(r.model_dump()) if isinstance(r, pydantic.BaseModel) else r
                                      for r in items]
        if not all(isinstance(r, dict) for r in rows):
            raise TypeError("rows must be dicts, pydantic models, a pandas or polars DataFrame or an Arrow table")
        if schema is None:
            return pa.Table.from_pylist(rows)
        names = {k for r in rows for k in r}
        unknown = sorted(names - set(schema.names))
        if unknown:
            raise ValueError(f"columns {unknown} are not in the table's schema {schema.names}")
        present = [_wire_field(f) for f in schema if f.name in names]
        rows = [{f.name: r.get(f.name) for f in present} for r in rows]
        return pa.Table.from_pylist(rows, schema=pa.schema(present))
    return table if schema is None else _on_the_wire(table, schema)


def _on_the_wire(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """`table` in the table's types. Every column travels nullable: the store judges nulls in a required
    column (with the policy for vectors), not a client-side cast."""
    unknown = sorted(set(table.column_names) - set(schema.names))
    if unknown:
        raise ValueError(f"columns {unknown} are not in the table's schema {schema.names}")
    fields = [_wire_field(schema.field(n), table.schema.field(n).type).with_nullable(True)
              for n in table.column_names]
    target = pa.schema(fields)
    return table.cast(target) if not table.schema.equals(target) else table


def _from_batches(batches: list[Any], schema: pa.Schema | None) -> pa.Table:
    """A reader's (or a list's) batches as one table whose chunks are those batches. Each is cast on its
    own, as LanceDB reads them one by one: a reader's batches may differ in type (an all-empty first batch
    reads as `list<null>`). When they still differ on the wire, they travel in the column's general form."""
    if schema is None:
        return pa.Table.from_batches(batches)
    parts = [_on_the_wire(b if isinstance(b, pa.Table) else pa.Table.from_batches([b]), schema) for b in batches]
    if not parts:
        return pa.schema([_wire_field(f) for f in schema]).empty_table()
    first = parts[0].schema
    if any(p.column_names != parts[0].column_names for p in parts):
        raise ValueError("the batches do not all have the same columns")
    if any(not p.schema.equals(first) for p in parts):
        general = pa.schema([_wire_field(schema.field(n)) for n in parts[0].column_names])
        parts = [p.cast(general) for p in parts]
    return pa.concat_tables(parts)


def _is_vector(field: pa.Field) -> bool:
    return bool(pa.types.is_fixed_size_list(field.type) and pa.types.is_floating(field.type.value_type))


def _wire_field(field: pa.Field, given: pa.DataType | None = None) -> pa.Field:
    """How a schema field's values travel: as the schema says, except a vector column whose values are not
    vectors of its size yet, which goes as a list the store checks row by row, and fixed-size float vectors
    given for a `list<float>` column, which keep their size (LanceDB takes fixed-size vectors of 10 values or
    more as vectors whatever the column's name, so the store must see them as given)."""
    if _is_list_of_floats(field.type) and given is not None and _is_vector(pa.field("given", given)):
        return pa.field(field.name, pa.list_(field.type.value_type, given.list_size), nullable=field.nullable)
    if not _is_vector(field) or given == field.type:
        return field
    return pa.field(field.name, pa.list_(field.type.value_type), nullable=True)


def _is_list_of_floats(type_: pa.DataType) -> bool:
    return bool((pa.types.is_list(type_) or pa.types.is_large_list(type_)) and pa.types.is_floating(type_.value_type))


def _plain(value: Any) -> Any:
    """A model's dump with enum members as their values (what Arrow stores)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _batches(data: Any) -> bool:
    """A list or tuple of Arrow record batches."""
    return isinstance(data, (list, tuple)) and bool(data) and all(isinstance(b, pa.RecordBatch) for b in data)


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame"


def _is_polars(data: Any) -> bool:
    return type(data).__module__.startswith("polars") and type(data).__name__ == "DataFrame"


def fill_local_vectors(table: pa.Table, configs: Sequence[EmbeddingFunctionConfig], schema: pa.Schema
                       ) -> pa.Table:
    """Computes, in this process, the vectors of local functions for rows that have a source value and no
    vector (retried as the function's `max_retries` says); server functions are left to the store. What the
    function gives is sent as it is: a vector of the wrong length, empty, None or holding NaN is a bad
    vector the store handles by the add's `on_bad_vectors`."""
    for config in configs:
        if not config.function.is_local or config.source_column not in table.column_names:
            continue
        source = table.column(config.source_column)
        missing = np.asarray(source.is_valid())
        has_column = config.vector_column in table.column_names
        if has_column:
            missing &= ~np.asarray(table.column(config.vector_column).is_valid())
        if not missing.any():
            continue
        values = source.filter(pa.array(missing)).to_pylist()
        computed = list(config.function.compute_source_embeddings_with_retry(values))
        if len(computed) != len(values):
            raise ValueError(f"{config.function.function_name} gave {len(computed)} vectors for {len(values)} inputs")
        field = schema.field(config.vector_column)
        column = _vectors_column(table, config.vector_column, missing, computed, field)
        wire = pa.field(field.name, column.type, nullable=True)
        if has_column:
            table = table.set_column(table.column_names.index(config.vector_column), wire, column)
        else:
            table = table.append_column(wire, column)
    return table


def _vectors_column(table: pa.Table, name: str, missing: np.ndarray, computed: list[Any], field: pa.Field
                    ) -> pa.Array:
    """The vector column with `computed` in the `missing` rows: fixed-size vectors when every computed one
    has the column's size, else a list column for the store to check row by row."""
    dims = getattr(field.type, "list_size", -1)  # a list<float> vector column has no fixed size: lists go
    existing = table.column(name).combine_chunks() if name in table.column_names else None
    try:
        matrix = np.asarray(computed, dtype=np.float32)
    except (ValueError, TypeError):  # ragged, or holding None
        matrix = None
    if matrix is not None and matrix.shape == (len(computed), dims) and (
            existing is None or pa.types.is_fixed_size_list(existing.type)):
        full = np.zeros((table.num_rows, dims), dtype=np.float32)
        full[missing] = matrix
        valid = missing.copy()
        if existing is not None:
            present = np.asarray(existing.is_valid())
            if present.any():
                full[present] = np.asarray(existing.filter(pa.array(present)).flatten(), np.float32).reshape(-1, dims)
            valid |= present
        return pa.FixedSizeListArray.from_arrays(pa.array(full.reshape(-1)), dims, mask=pa.array(~valid))
    vectors: list[Any] = existing.to_pylist() if existing is not None else [None] * table.num_rows
    for row, vector in zip(np.flatnonzero(missing), computed):
        vectors[row] = None if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1).tolist()
    return pa.array(vectors, type=_wire_field(field).type)


def ipc(table: pa.Table | pa.RecordBatch) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue()


def read_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def chunks(table: pa.Table, rows: int, max_bytes: int | None = None) -> Iterator[pa.Table]:
    """Slices of at most `rows` rows and, by the table's average row size, about `max_bytes` bytes, never
    across the batches the caller gave (a RecordBatchReader's): the store finds a `list<float>` vector
    column's length from the first batch holding a vector, as LanceDB does."""
    if max_bytes is not None and table.num_rows:
        rows = max(1, min(rows, int(max_bytes * table.num_rows / max(table.nbytes, 1))))
    batches = [b for b in table.to_batches() if b.num_rows] or [table.schema.empty_table()]
    for batch in batches:
        part = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        for start in range(0, max(part.num_rows, 1), rows):
            yield part.slice(start, rows)


def local_image(uri: str) -> Path | None:
    """The local file an image URI names (a path or file:// URI), if it is one that exists here."""
    parsed = urlparse(uri)
    if parsed.scheme == "file":
        path = Path(unquote(parsed.path))
    elif parsed.scheme == "":
        path = Path(uri)
    else:
        return None
    return path if path.is_file() else None


def with_images(parts: Iterator[pa.Table], columns: list[str], max_bytes: int
                ) -> Iterator[tuple[pa.Table, dict[str, bytes]]]:
    """Each part with the bytes of the local image files its `columns` name, by URI; a part whose images
    exceed `max_bytes` is split so each message stays under it (one image may exceed it alone)."""
    for part in parts:
        if not columns:
            yield part, {}
            continue
        start, size = 0, 0
        images: dict[str, bytes] = {}
        uris = [part.column(c).to_pylist() for c in columns]
        for row in range(part.num_rows):
            found = {}
            for uri in (values[row] for values in uris):
                path = local_image(uri) if isinstance(uri, str) and uri not in images else None
                if path is not None:
                    found[uri] = path.read_bytes()
            added = sum(len(b) for b in found.values())
            if images and size + added > max_bytes:
                yield part.slice(start, row - start), images
                start, size = row, 0
                images = {}
            images.update(found)
            size += added
        yield part.slice(start), images
