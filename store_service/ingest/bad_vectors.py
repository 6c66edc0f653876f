"""What happens to rows whose vector is the wrong length, holds NaN, or is missing where nothing can
compute it: LanceDB's `on_bad_vectors` — error (refuse the whole add), drop, fill, or null."""

from __future__ import annotations

import enum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import InvalidArgument
from store_service.schema import vector_type


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
