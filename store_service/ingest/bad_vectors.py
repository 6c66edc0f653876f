"""What happens to rows whose vector is the wrong length, holds NaN, or is missing where nothing can
compute it: LanceDB's `on_bad_vectors` — error (refuse the whole add), drop, fill, or null.

Which columns it covers is LanceDB's rule, so the same add does the same thing in both: a float-list column
of the table that the rows carry, when it is an embedding function's vector column, is named `vector` (or
`embedding`, when fixed-size), or arrives as fixed-size float vectors of at least 10 values. Any other
fixed-size list keeps its type's rule: a row of another length is a schema mismatch, whatever the policy.
A variable-length `list<float>` vector column has no length of its own: an add takes the commonest length of
its first batch holding a vector, and holds it for the rest of the add (`ListDims`).
"""

from __future__ import annotations

import enum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import InvalidArgument
from store_service.schema import vector_type


VECTOR_NAMES = ("vector",)       # LanceDB's default vector column
FIXED_VECTOR_NAMES = ("embedding",)  # a vector column by name only when the table fixes its length
MIN_TYPED_DIMS = 10                # a fixed-size float list this long is a vector whatever its name


class BadVectorPolicy(enum.Enum):
    ERROR = "error"
    DROP = "drop"
    FILL = "fill"
    NULL = "null"


def clean_vectors(table: pa.Table, column: str, dims: int, policy: BadVectorPolicy, fill_value: float = 0.0,
                  *, missing_is_bad: bool | np.ndarray) -> pa.Table:
    """`table` with `column` as fixed-size float32 vectors of `dims`, bad rows handled by `policy`.

    `missing_is_bad`: a null vector is bad (nothing will fill it) rather than stored as NULL or left for
    embedding; for every row, or (a mask) for the rows it marks.
    """
    if column not in table.column_names:
        bad_rows = np.broadcast_to(np.asarray(missing_is_bad, dtype=bool), (table.num_rows,))
        if bad_rows.all() and table.num_rows:
            return _handle_all_missing(table, column, dims, policy, fill_value)
        if not bad_rows.any():
            return table
        table = table.append_column(pa.field(column, pa.list_(pa.float32())),
                                    pa.nulls(table.num_rows, pa.list_(pa.float32())))
    elif already_clean(table.column(column), dims):
        return table  # what a client's vectors nearly always are: nothing copied, nothing to do
    values = table.column(column).combine_chunks()
    lists = values.cast(pa.list_(pa.float32()))
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False)
    nulls = lists.is_null().to_numpy(zero_copy_only=False)
    flat = lists.flatten().to_numpy(zero_copy_only=False)
    offsets = lists.offsets.to_numpy()
    nan_rows = np.zeros(len(lists), dtype=bool)
    if np.isnan(flat).any():
        nan_positions = np.flatnonzero(np.isnan(flat))
        nan_rows[np.searchsorted(offsets, nan_positions, side="right") - 1] = True
    wrong = ~nulls & ((lengths != dims) | nan_rows)
    missing = nulls & np.broadcast_to(np.asarray(missing_is_bad, dtype=bool), nulls.shape)
    bad = wrong | missing
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        if policy is BadVectorPolicy.ERROR:
            why = "is missing" if missing[first] else ("holds NaN" if nan_rows[first] else
                                                       f"has {int(lengths[first])} values, not {dims}")
            if missing[first] and missing_is_bad is True:  # a required column (Lance's words for it)
                why += f". The field `{column}` contained null values even though the field is marked non-null"
                why += " in the schema."
            raise InvalidArgument(f"row {first}: vector column {column!r} {why} (on_bad_vectors=error; use drop, "
                                  "fill or null to keep the other rows)", reason="BAD_VECTOR", column=column,
                                  row=first)
        if policy is BadVectorPolicy.DROP:
            table = table.filter(pa.array(~bad))
            lists = lists.filter(pa.array(~bad))
        else:
            # fill, as LanceDB fills: the vector cut to `dims`, padded with fill_value, its NaN replaced by it
            # (a missing one is fill_value throughout). null: the vector is NULL.
            fill = policy is BadVectorPolicy.FILL
            python = lists.to_pylist()
            for i in np.flatnonzero(bad):
                if fill:
                    kept = [fill_value if v is None or v != v else v for v in (python[i] or [])[:dims]]
                    python[i] = kept + [fill_value] * (dims - len(kept))
                else:
                    python[i] = None
            lists = pa.array(python, type=pa.list_(pa.float32()))
    fixed = lists.cast(vector_type(dims))
    return table.set_column(table.column_names.index(column), pa.field(column, fixed.type), fixed)


def already_clean(values: pa.ChunkedArray, dims: int) -> bool:
    """Whether `values` are float32 vectors of `dims` already, with no null vector and no NaN (nor null) in
    any: one pass over the values, summed (a NaN makes the sum NaN; a sum that overflowed to inf - inf, or
    any NaN, is then looked at value by value)."""
    kind = values.type
    if not (pa.types.is_fixed_size_list(kind) and kind.list_size == dims and kind.value_type == pa.float32()) \
            or values.null_count:
        return False
    for chunk in values.chunks:
        flat = chunk.flatten()  # this chunk's own values (a slice's offset respected)
        if flat.null_count:
            return False
        numbers = flat.to_numpy(zero_copy_only=False)
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is only looked at more closely
            if np.isnan(np.add.reduce(numbers)) and np.isnan(numbers).any():
                return False
    return True


def _handle_all_missing(table: pa.Table, column: str, dims: int, policy: BadVectorPolicy,
                        fill_value: float) -> pa.Table:
    if policy is BadVectorPolicy.ERROR:
        raise InvalidArgument(f"rows carry no {column!r} vectors and the column has no embedding function the "
                              "store can call", reason="BAD_VECTOR", column=column, row=0)
    if policy is BadVectorPolicy.DROP:
        return table.slice(0, 0)
    value = [fill_value] * dims if policy is BadVectorPolicy.FILL else None
    return table.append_column(pa.field(column, vector_type(dims)),
                               pa.array([value] * table.num_rows, type=vector_type(dims)))


def is_float_list(type_: pa.DataType) -> bool:
    return ((pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_))
            and pa.types.is_floating(type_.value_type))


def covered_columns(schema: pa.Schema, incoming: pa.Schema, function_columns: set[str]) -> dict[str, int | None]:
    """The columns `on_bad_vectors` covers in rows shaped `incoming` added to a table of `schema`, with each
    one's length (None for a `list<float>` column: it comes from the rows)."""
    covered: dict[str, int | None] = {}
    for field_ in schema:
        if incoming.get_field_index(field_.name) < 0 or not is_float_list(field_.type):
            continue
        fixed = pa.types.is_fixed_size_list(field_.type)
        given = incoming.field(field_.name).type
        named = (field_.name in function_columns or field_.name in VECTOR_NAMES
                 or (fixed and field_.name in FIXED_VECTOR_NAMES))
        typed = (pa.types.is_fixed_size_list(given) and pa.types.is_floating(given.value_type)
                 and given.list_size >= MIN_TYPED_DIMS)
        if named or typed:
            covered[field_.name] = field_.type.list_size if fixed else None
    return covered


def modal_length(values: pa.ChunkedArray | pa.Array) -> int | None:
    """The commonest length of the non-empty lists (the smallest of equally common ones), None if none."""
    lengths = pc.list_value_length(values)
    lengths = pc.filter(lengths, pc.greater(lengths, 0))
    if len(lengths) == 0:
        return None
    return int(pc.mode(lengths)[0]["mode"].as_py())


class ListDims:
    """The lengths of one add's `list<float>` vector columns: from the first batch holding a vector that
    survives the policy, then held for the add's later batches. Batches must come in the add's order."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    def clean(self, rows: pa.Table, column: str, policy: BadVectorPolicy, fill_value: float) -> pa.Table:
        dims = self._held.get(column) or modal_length(rows.column(column))
        if dims is None:
            return rows  # no vector yet (empty or missing ones): LanceDB stores them as they are
        rows = clean_vectors(rows, column, dims, policy, fill_value, missing_is_bad=False)
        if column not in self._held and modal_length(rows.column(column)) is not None:
            self._held[column] = dims
        return rows
