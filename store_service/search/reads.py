"""Reading rows of a table view: a page of the rows a filter matches, or rows by position or stable id.

With an order (LanceDB's `order_by` on a plain query) the matching rows' order columns are read and sorted
first (at most `MAX_SORT_BYTES` of them), and pages follow that order.

A page holds at most `max_rows` rows and about `max_bytes` (estimated from the first 64 rows' size), so a
response stays within gRPC's message bound however wide the rows are; the next offset tells where the rest
starts (0: nothing asked for is left).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.search import ordering
from store_service.search.ordering import ColumnOrdering
from store_service.search.table_view import TableView
from store_service.storage.fragments import ROW_ID

SIZE_SAMPLE_ROWS = 64
MAX_SORT_BYTES = 512 << 20  # the order columns of the rows an ordered read sorts
SORT_CHUNK_ROWS = 65_536


def check_select(view: TableView, select: tuple[str, ...]) -> list[str]:
    """The columns to read: `select` checked against the table, or every column."""
    for column in select:
        if column != ROW_ID and column not in view.schema.names:
            raise InvalidArgument(f"selected column {column!r} is not in the table", reason="UNKNOWN_COLUMN",
                                  column=column)
    return list(select) or view.schema.names


def page(view: TableView, select: tuple[str, ...], *, where: str, limit: int, offset: int, max_rows: int,
         max_bytes: int, orderings: tuple[ColumnOrdering, ...] = ()) -> tuple[pa.Table, int]:
    """(rows, next offset): the matching rows from `offset` (in `orderings`' order when given), at most
    `limit` of them (0: all)."""
    if limit < 0 or offset < 0:
        raise InvalidArgument("limit and offset must not be negative", reason="INVALID_LIMIT")
    names = check_select(view, select)
    positions = np.flatnonzero(view.mask(where)) if where.strip() else None
    if orderings:
        positions = _in_order(view, np.arange(view.num_rows, dtype=np.int64) if positions is None else positions,
                              orderings)
    total = view.num_rows if positions is None else len(positions)
    start = min(offset, total)
    end = total if not limit else min(total, offset + limit)
    sample = view.take(np.arange(min(end - start, SIZE_SAMPLE_ROWS), dtype=np.int64) + start if positions is None
                       else positions[start:start + SIZE_SAMPLE_ROWS], names)
    row_bytes = max(1, sample.nbytes // max(1, sample.num_rows))
    count = min(end - start, max_rows, max(1, max_bytes // row_bytes))
    chosen = (np.arange(start, start + count, dtype=np.int64) if positions is None
              else positions[start:start + count])
    return view.take(chosen, names), (start + count if start + count < end else 0)


def _in_order(view: TableView, positions: np.ndarray, orderings: tuple[ColumnOrdering, ...]) -> np.ndarray:
    """`positions` in the order `orderings` say: their order columns read a chunk at a time, refused as soon
    as they hold more than MAX_SORT_BYTES."""
    keys = check_select(view, tuple(dict.fromkeys(o.column for o in orderings)))
    chunks, held = [], 0
    for start in range(0, len(positions), SORT_CHUNK_ROWS):
        chunk = view.take(positions[start:start + SORT_CHUNK_ROWS], keys)
        held += chunk.nbytes
        if held > MAX_SORT_BYTES:
            raise InvalidArgument(f"ordering {len(positions)} rows reads more than {MAX_SORT_BYTES >> 20} MiB of their "
                                  "order columns: filter the rows first", reason="ORDER_TOO_LARGE",
                                  limit=MAX_SORT_BYTES)
        chunks.append(chunk)
    if not chunks:
        return positions
    order = ordering.sorted_indices(pa.concat_tables(chunks), orderings).to_numpy()
    return positions[order]


def take(view: TableView, max_rows: int, select: tuple[str, ...], offsets: np.ndarray | None,
         row_ids: np.ndarray | None) -> pa.Table:
    """Exactly the rows asked for, in that order: by position in the table, or by stable id (ids not in the
    table left out); at most `max_rows` of them."""
    names = check_select(view, select)
    if offsets is not None and row_ids is not None:
        raise InvalidArgument("read by offsets or by row ids, not both", reason="INVALID_TAKE")
    asked = np.asarray(offsets if offsets is not None else row_ids, dtype=np.int64)
    if len(asked) > max_rows:
        raise InvalidArgument(f"{len(asked)} rows asked for by position; at most {max_rows}",
                              reason="TOO_MANY_ROWS", limit=max_rows)
    if offsets is not None:
        outside = (asked < 0) | (asked >= view.num_rows)
        if outside.any():
            raise InvalidArgument(f"offset {int(asked[outside][0])} is outside the table's {view.num_rows} rows",
                                  reason="INVALID_OFFSET", offset=int(asked[outside][0]))
        return view.take(asked, names)
    positions, found = view.positions(asked)
    return view.take(positions[found], names)
