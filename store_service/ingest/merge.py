"""merge_insert: which new rows replace which existing rows, which are inserted, which existing rows go.

Rows match on key columns (nulls never match). Two new rows with one key are refused: which would win is
not defined. The plan is computed on one view; the commit is refused if the table was overwritten since.

New rows may give only some columns (as in LanceDB): an updated row keeps the values of the columns it does
not give, an inserted row has them null, and a vector column whose function's source the new rows give is
computed again (found by the security review: the columns not given became NULL, which is data loss).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.expressions import Role, judge
from store_service.expressions import lance as lance_sql
from store_service.expressions.row_sizes import row_bytes
from store_service.expressions.grammar import MAX_LENGTH
from store_service.schema import functions_of, is_vector
from store_service.storage.fragments import ROW_ID
from store_service.search.table_view import TableView

NEW_POSITION = "__vectorlane_new_position"
PAIR = "__vectorlane_pair"


@dataclass(frozen=True)
class MergeRules:
    on: tuple[str, ...]
    update_matched: bool = False
    insert_unmatched: bool = False
    delete_unmatched_by_source: bool = False
    delete_where: str = ""
    update_where: str = ""  # with update_matched: only pairs for which it holds (target.<col>, source.<col>)


@dataclass(frozen=True)
class MergePlan:
    write: pa.Table  # new rows to write (updated and inserted), every column of the table
    delete_row_ids: np.ndarray  # existing rows replaced or deleted
    inserted: int
    updated: int
    deleted: int


def plan_merge(view: TableView, new_rows: pa.Table, rules: MergeRules) -> MergePlan:
    if not rules.on:
        raise InvalidArgument("merge_insert needs at least one key column in `on`", reason="MISSING_KEY")
    if len(set(rules.on)) != len(rules.on):
        raise InvalidArgument(f"merge_insert names a key column twice in `on`: {list(rules.on)}",
                              reason="DUPLICATE_KEY_COLUMN")
    if not (rules.update_matched or rules.insert_unmatched or rules.delete_unmatched_by_source):
        raise InvalidArgument("merge_insert does nothing: set when_matched_update_all, "
                              "when_not_matched_insert_all or when_not_matched_by_source_delete",
                              reason="EMPTY_MERGE")
    keys = []
    for name in rules.on:
        if name not in view.schema.names or is_vector(view.schema.field(name)):
            raise InvalidArgument(f"key column {name!r} is not a scalar column of the table", reason="UNKNOWN_COLUMN",
                                  column=name)
        if name not in new_rows.column_names:
            raise InvalidArgument(f"the new rows have no key column {name!r}", reason="MISSING_COLUMN", column=name)
        column = new_rows.column(name)
        target = view.schema.field(name).type
        try:
            keys.append(column.cast(target) if column.type != target else column)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise InvalidArgument(f"key column {name!r}: cannot compare {column.type} with {target}",
                                  reason="SCHEMA_MISMATCH", column=name) from None
    new_keys = pa.table(dict(zip(rules.on, keys))).append_column(
        NEW_POSITION, pa.array(np.arange(new_rows.num_rows, dtype=np.int64)))
    counts = new_keys.group_by(list(rules.on)).aggregate([(NEW_POSITION, "count")])
    if counts.num_rows and max(counts.column(f"{NEW_POSITION}_count").to_pylist()) > 1:
        raise InvalidArgument("two new rows have the same key; merge_insert needs one row per key",
                              reason="DUPLICATE_KEY")
    existing = view.columns(list(rules.on) + [ROW_ID])
    joined = new_keys.join(existing, keys=list(rules.on), join_type="inner")
    matched_new = joined.column(NEW_POSITION).to_numpy()
    matched_existing = np.unique(joined.column(ROW_ID).to_numpy())
    is_matched = np.zeros(new_rows.num_rows, dtype=bool)
    is_matched[matched_new] = True
    match_of = np.full(new_rows.num_rows, -1, dtype=np.int64)  # the existing row id each new row matched
    match_of[matched_new] = joined.column(ROW_ID).to_numpy()
    if rules.update_matched and rules.update_where.strip() and len(matched_new):
        kept = _pairs_matching(view, new_rows, matched_new, joined.column(ROW_ID).to_numpy(), rules.update_where)
        matched_existing = np.unique(joined.column(ROW_ID).to_numpy()[kept])
        skipped = matched_new[~kept]
        match_of[skipped] = -1
        is_matched[skipped] = False
        unchanged = np.zeros(new_rows.num_rows, dtype=bool)
        unchanged[skipped] = True  # matched, but the condition keeps the existing row: neither written nor new
    else:
        unchanged = np.zeros(new_rows.num_rows, dtype=bool)
    write = np.zeros(new_rows.num_rows, dtype=bool)
    if rules.update_matched:
        write |= is_matched
    if rules.insert_unmatched:
        write |= ~is_matched & ~unchanged
    delete = matched_existing if rules.update_matched else np.empty(0, dtype=np.int64)
    deleted = 0
    if rules.delete_unmatched_by_source:
        candidates = np.ones(view.num_rows, dtype=bool)
        if rules.delete_where.strip():
            candidates &= view.mask(rules.delete_where)
        unmatched = view.row_ids[candidates]
        unmatched = unmatched[~np.isin(unmatched, joined.column(ROW_ID).to_numpy())]
        deleted = len(unmatched)
        delete = np.union1d(delete, unmatched)
    written = with_kept_columns(new_rows.filter(pa.array(write)), match_of[write], view)
    return MergePlan(written, delete.astype(np.int64), inserted=int((write & ~is_matched).sum()),
                     updated=int((write & is_matched).sum()), deleted=deleted)


def _pairs_matching(view: TableView, new_rows: pa.Table, new_positions: np.ndarray, existing_ids: np.ndarray,
                    condition: str) -> np.ndarray:
    """Which matched pairs satisfy `condition`, a filter over `target.<column>` (the existing row) and
    `source.<column>` (the new one), evaluated by Lance's SQL engine over the pairs as two struct columns."""
    what = "when_matched_update_all's condition"
    judged = judge(condition, Role.FILTER, what=what, max_length=MAX_LENGTH)
    positions, _ = view.positions(existing_ids)
    target = view.take(positions, view.schema.names).combine_chunks()
    source = new_rows.take(pa.array(new_positions, type=pa.int64())).combine_chunks()

    def struct(rows: pa.Table) -> pa.StructArray:
        return pa.StructArray.from_arrays([c.combine_chunks() for c in rows.columns], fields=list(rows.schema))
    pairs = pa.table({"target": struct(target), "source": struct(source),
                      PAIR: pa.array(np.arange(len(new_positions), dtype=np.int64))})
    read = [pairs.column(name) for name in sorted(judged.columns) if name in pairs.column_names]
    mask = np.zeros(len(new_positions), dtype=bool)
    mask[lance_sql.matching_rows(pairs, judged, PAIR, row_bytes(read, pairs.num_rows), what=what)] = True
    return mask


def with_kept_columns(rows: pa.Table, existing_ids: np.ndarray, view: TableView) -> pa.Table:
    """`rows` completed with the table's columns they lack: the value of the existing row each matched
    (`existing_ids`, -1 for none: null), except vectors whose function's source `rows` give (null: computed
    again from the new source)."""
    recomputed = {c.vector_column for c in functions_of(view.schema)
                  if c.source_column in rows.column_names and c.vector_column not in rows.column_names}
    missing = [f for f in view.schema if f.name not in rows.column_names]
    if not missing:
        return rows
    matched = existing_ids >= 0
    positions = np.zeros(len(existing_ids), dtype=np.int64)
    if matched.any():
        positions[matched], _ = view.positions(existing_ids[matched])
    kept = [f.name for f in missing if f.name not in recomputed]
    existing = view.take(positions[matched], kept) if matched.any() and kept else None
    spread = pa.array(np.cumsum(matched) - 1, type=pa.int64(), mask=~matched)  # a null index takes a null
    for field_ in missing:
        if existing is None or field_.name in recomputed:
            column = pa.nulls(rows.num_rows, field_.type)
        else:
            column = existing.column(field_.name).take(spread)
        rows = rows.append_column(field_, column)
    return rows
