"""Columns computed for the rows a read or a search returns: LanceDB's `select({"name": "SQL"})`.

The expressions pass the same gate as `add_columns` and `update(values_sql=)` (`store_service.expressions`)
and are evaluated by Lance's engine for the returned rows only, by stable row id, within the evaluation
budget: a search of 10 rows evaluates them 10 times, whatever the table's size. A result with no rows still
has the columns, typed by Lance's plan of the expressions.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.expressions import Judged
from store_service.schema import MAX_NAME_LENGTH, RESERVED_COLUMNS
from store_service.schema_changes import check_expression
from store_service.search.table_view import TableView
from store_service.storage.fragments import ROW_ID
from store_service.expressions import lance as lance_sql

MAX_COMPUTED = 64
TRAILING = ("_distance", "query_index")  # the search's own columns stay last


def check(computed: Mapping[str, str]) -> dict[str, Judged]:
    """The computed columns as the gate judged them; too many, bad names and expressions it refuses are
    refused."""
    if len(computed) > MAX_COMPUTED:
        raise InvalidArgument(f"{len(computed)} computed columns; at most {MAX_COMPUTED}", reason="TOO_MANY_COLUMNS",
                              limit=MAX_COMPUTED)
    for name in computed:
        if not name or len(name) > MAX_NAME_LENGTH or any(ord(c) < 0x20 or ord(c) in (0x60, 0x7F) for c in name):
            raise InvalidArgument(f"computed column name {name[:MAX_NAME_LENGTH]!r} is empty, longer than "
                                  f"{MAX_NAME_LENGTH} characters or holds control characters or a backquote",
                                  reason="INVALID_COLUMN_NAME", column=name[:MAX_NAME_LENGTH])
        if name in RESERVED_COLUMNS:
            raise InvalidArgument(f"computed column name {name!r} is reserved", reason="RESERVED_COLUMN", column=name)
    return {name: check_expression(name, expression, kind="computed column") for name, expression in computed.items()}


def with_row_ids(select: tuple[str, ...]) -> tuple[str, ...]:
    """The columns to fetch so the computed ones can be evaluated: the caller's, and the rows' stable ids."""
    return select if ROW_ID in select else (*select, ROW_ID)


def attach(view: TableView, rows: pa.Table, computed: Mapping[str, Judged], *, keep_row_id: bool,
           max_bytes: int) -> pa.Table:
    """`rows` (which hold `_rowid`) with the computed columns after the selected ones, before `_distance`."""
    ids = rows.column(ROW_ID).to_numpy().astype(np.int64)
    positions, _ = view.positions(ids)
    values = lance_sql.computed(view.snapshot, view.refs_at(positions), ids, computed, max_output_bytes=max_bytes)
    trailing = [name for name in TRAILING if name in rows.column_names]
    kept = [name for name in rows.column_names if name not in trailing and name != ROW_ID]
    out = rows.select(kept)
    for name in computed:
        out = out.append_column(name, values[name])
    for name in ([ROW_ID] if keep_row_id else []) + trailing:
        out = out.append_column(rows.schema.field(name), rows.column(name))
    return out
