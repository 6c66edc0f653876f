"""How many bytes each row's cells hold, the `L` of `cost.py`: strings and binaries by their bytes and lists by
their values, each with its 4-byte offset (so an empty string or list, or a null, still counts: a cast to
text writes `", "` for an empty element), a boolean as one byte (a cast writes it as up to 6 characters),
numbers by their width. A type this module does not know counts the whole array for every row: never an
average, since what matters is the largest row."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_OFFSET = 4.0


def fixed_width(kind: pa.DataType) -> int | None:
    """The bytes of every cell of `kind` when they are all the same (None for strings, lists, ...)."""
    if pa.types.is_boolean(kind):
        return 1
    if pa.types.is_null(kind):
        return 0
    if pa.types.is_dictionary(kind):
        return None
    try:
        width = int(kind.bit_width)
    except ValueError:
        width = 0
    if width and width % 8 == 0 and not pa.types.is_nested(kind):
        return width // 8
    if pa.types.is_fixed_size_list(kind):
        inner = fixed_width(kind.value_type)
        return None if inner is None else inner * kind.list_size
    if pa.types.is_struct(kind):
        widths = [fixed_width(kind.field(i).type) for i in range(kind.num_fields)]
        return None if any(w is None for w in widths) else sum(w for w in widths if w is not None)
    return None


def cell_bytes(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Each row's bytes (float64, for the cost arithmetic)."""
    if isinstance(array, pa.ChunkedArray):
        parts = [cell_bytes(chunk) for chunk in array.chunks]
        return np.concatenate(parts) if parts else np.zeros(0)
    if isinstance(array, pa.ExtensionArray):  # JSON columns (arrow.json), and others over a storage type
        return cell_bytes(array.storage)
    kind = array.type
    width = fixed_width(kind)
    if width is not None:
        return np.full(len(array), float(width))
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) \
            or pa.types.is_large_binary(kind) or pa.types.is_binary_view(kind) or pa.types.is_string_view(kind):
        lengths: np.ndarray = pc.binary_length(array).fill_null(0).to_numpy(zero_copy_only=False)
        return lengths.astype(np.float64) + _OFFSET
    if pa.types.is_dictionary(kind):
        indices: np.ndarray = array.indices.fill_null(0).to_numpy(zero_copy_only=False)
        sizes: np.ndarray = cell_bytes(array.dictionary)[indices]
        return sizes
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind) \
            or pa.types.is_map(kind) or pa.types.is_list_view(kind):
        parents = pc.list_parent_indices(array).to_numpy(zero_copy_only=False)
        values = array.flatten()
        return np.bincount(parents, weights=cell_bytes(values), minlength=len(array)).astype(np.float64) + _OFFSET
    if pa.types.is_struct(kind):
        out = np.zeros(len(array))
        for child in array.flatten():
            out += cell_bytes(child)
        return out
    return np.full(len(array), float(array.nbytes))


def row_bytes(columns: Iterable[pa.Array | pa.ChunkedArray], rows: int) -> np.ndarray:
    """The sum over `columns` of each of `rows` rows' bytes."""
    out = np.zeros(rows)
    for column in columns:
        out += cell_bytes(column)
    return out


def input_bytes(schema: pa.Schema, columns: Iterable[str], rows: int,
                sizes_of: Callable[[list[str]], Iterable[np.ndarray]]) -> np.ndarray:
    """Each of `rows` rows' bytes in `columns` of `schema`: fixed-width columns from their type alone, the
    others' cell sizes from `sizes_of(names)` (read only for those). A name the schema lacks counts as a
    row id or address (8 bytes); Lance refuses any other."""
    out, varying = np.zeros(rows), []
    for name in sorted(columns):
        width = fixed_width(schema.field(name).type) if name in schema.names else 8
        if width is None:
            varying.append(name)
        else:
            out += width
    for sizes in sizes_of(varying) if varying else ():
        out += sizes
    return out
