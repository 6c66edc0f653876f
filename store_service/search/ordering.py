"""A search's results in the order of columns instead of relevance (LanceDB's `order_by`): the `limit + offset`
most relevant rows are found as without it, then sorted by the first column, ties by the next (each sort is
stable, so rows equal in every column keep their relevance order), then `offset` skipped and `limit` kept.
Nulls go after the values unless `nulls_first`, as LanceDB's `ColumnOrdering`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import InvalidArgument

MAX_ORDERINGS = 8


@dataclass(frozen=True)
class ColumnOrdering:
    column: str
    descending: bool = False
    nulls_first: bool = False


def check(orderings: Sequence[ColumnOrdering]) -> tuple[ColumnOrdering, ...]:
    if len(orderings) > MAX_ORDERINGS:
        raise InvalidArgument(f"order_by takes at most {MAX_ORDERINGS} columns; got {len(orderings)}",
                              reason="TOO_MANY_ORDERINGS", limit=MAX_ORDERINGS)
    for ordering in orderings:
        if not ordering.column:
            raise InvalidArgument("an order_by entry needs a column", reason="INVALID_ORDERING")
    return tuple(orderings)


def columns_needed(orderings: Sequence[ColumnOrdering], select: Sequence[str]) -> tuple[str, ...]:
    """The columns a search with `select` (empty: every column) must also return for the sort."""
    if not select:
        return ()
    return tuple(dict.fromkeys(o.column for o in orderings if o.column not in select and not o.column.startswith("_")))


def apply(rows: pa.Table, orderings: Sequence[ColumnOrdering], *, offset: int, limit: int,
          drop: Sequence[str] = ()) -> pa.Table:
    """`rows` (the most relevant first) sorted as `orderings` say, `offset` skipped, at most `limit` kept,
    without the columns `drop` (fetched only for the sort)."""
    return rows.take(sorted_indices(rows, orderings)).slice(offset, limit).drop_columns(list(drop))


def sorted_indices(rows: pa.Table, orderings: Sequence[ColumnOrdering]) -> pa.Array:
    """The positions of `rows` in the order `orderings` say (a stable sort)."""
    indices = pa.array(range(rows.num_rows), pa.int64())
    for ordering in reversed(orderings):
        if ordering.column not in rows.column_names:
            raise InvalidArgument(f"order_by column {ordering.column!r} is not among the results' columns",
                                  reason="UNKNOWN_COLUMN", column=ordering.column)
        values = rows.column(ordering.column).take(indices)
        if pa.types.is_nested(values.type):
            raise InvalidArgument(f"order_by column {ordering.column!r} holds {values.type}, which has no order",
                                  reason="INVALID_ORDERING", column=ordering.column)
        try:
            order = pc.sort_indices(values, sort_keys=[("", "descending" if ordering.descending else "ascending",
                                                         "at_start" if ordering.nulls_first else "at_end")])
        except (pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise InvalidArgument(f"order_by column {ordering.column!r} holds {values.type}, which Arrow cannot "
                                  "sort", reason="INVALID_ORDERING", column=ordering.column) from None
        indices = indices.take(order)
    return indices
