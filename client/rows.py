"""Rows in and out of the client: whatever a user hands `add` (dicts, pydantic models, pandas, Arrow) as an
Arrow table in the table's types, local functions' vectors filled in, the local image files rows name, and
Arrow IPC for the wire."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pyarrow as pa
import pydantic

from vectorlane.embeddings.config import EmbeddingFunctionConfig


def to_arrow(data: Any, schema: pa.Schema | None = None) -> pa.Table:
    """`data` as an Arrow table; with `schema`, its columns in the schema's types (columns it lacks, such as
    vectors the store will compute, stay absent)."""
    if isinstance(data, pa.Table):
        table = data
    elif isinstance(data, pa.RecordBatch):
        table = pa.Table.from_batches([data])
    elif _is_pandas(data):
        table = pa.Table.from_pandas(data, preserve_index=False)
    else:
        items = [data] if isinstance(data, (dict, pydantic.BaseModel)) else list(data)
        rows: list[dict[str, Any]] = [r.model_dump() if isinstance(r, pydantic.BaseModel) else r for r in items]
        if not all(isinstance(r, dict) for r in rows):
            raise TypeError("rows must be dicts, pydantic models, a pandas DataFrame or an Arrow table")
        if schema is None:
            return pa.Table.from_pylist(rows)
        names = {k for r in rows for k in r}
        unknown = sorted(names - set(schema.names))
        if unknown:
            raise ValueError(f"columns {unknown} are not in the table's schema {schema.names}")
        present = [f for f in schema if f.name in names]
        rows = [{f.name: r.get(f.name) for f in present} for r in rows]
        return pa.Table.from_pylist(rows, schema=pa.schema(present))
    if schema is None:
        return table
    unknown = sorted(set(table.column_names) - set(schema.names))
    if unknown:
        raise ValueError(f"columns {unknown} are not in the table's schema {schema.names}")
    fields = [schema.field(n) for n in table.column_names]
    return table.cast(pa.schema(fields)) if table.schema != pa.schema(fields) else table


def _is_pandas(data: Any) -> bool:
    return type(data).__module__.startswith("pandas") and type(data).__name__ == "DataFrame"


def fill_local_vectors(table: pa.Table, configs: Sequence[EmbeddingFunctionConfig], schema: pa.Schema
                       ) -> pa.Table:
    """Computes, in this process, the vectors of local functions for rows that have a source value and no
    vector; server functions are left to the store."""
    for config in configs:
        if not config.function.is_local or config.source_column not in table.column_names:
            continue
        source = table.column(config.source_column)
        missing = np.asarray(source.is_valid())
        if config.vector_column in table.column_names:
            missing &= ~np.asarray(table.column(config.vector_column).is_valid())
        if not missing.any():
            continue
        values = source.filter(pa.array(missing)).to_pylist()
        computed = np.asarray(config.function.compute_source_embeddings(values), dtype=np.float32)
        field = schema.field(config.vector_column)
        dims = field.type.list_size
        if computed.shape != (len(values), dims):
            raise ValueError(f"{config.function.name} gave vectors of shape {computed.shape}; column "
                             f"{config.vector_column!r} holds {dims}-d vectors")
        matrix = np.zeros((table.num_rows, dims), dtype=np.float32)
        matrix[missing] = computed
        valid = missing.copy()
        if config.vector_column in table.column_names:
            existing = table.column(config.vector_column).combine_chunks()
            present = np.asarray(existing.is_valid())
            if present.any():
                matrix[present] = np.asarray(existing.filter(pa.array(present)).flatten(), np.float32).reshape(-1, dims)
            valid |= present
        column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), dims, mask=pa.array(~valid))
        if config.vector_column in table.column_names:
            table = table.set_column(table.column_names.index(config.vector_column), field, column)
        else:
            table = table.append_column(field, column)
    return table


def ipc(table: pa.Table | pa.RecordBatch) -> pa.Buffer:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write(table)
    return sink.getvalue()


def read_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def chunks(table: pa.Table, rows: int, max_bytes: int | None = None) -> Iterator[pa.Table]:
    """Slices of at most `rows` rows and, by the table's average row size, about `max_bytes` bytes."""
    if max_bytes is not None and table.num_rows:
        rows = max(1, min(rows, int(max_bytes * table.num_rows / max(table.nbytes, 1))))
    for start in range(0, max(table.num_rows, 1), rows):
        yield table.slice(start, rows)


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
