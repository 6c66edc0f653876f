"""Lance's SQL engine as the store uses it, for expressions the gate (`gate.py`) let through: filters
evaluated over fragments, values computed for rows by stable id, plans checked without running them, and
what Lance says when it refuses (a Rust panic included) translated into the caller's error.

Each evaluation runs under the evaluation budget (`budget.py`), in batches sized from the rows' input bytes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import lance
import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument, ResourceExhausted, ServiceError
from store_service.expressions.budget import EVALUATION
from store_service.expressions.gate import Judged
from store_service.expressions.row_sizes import cell_bytes, input_bytes
from store_service.storage import lance_errors

if TYPE_CHECKING:
    from store_service.storage.manifest import FragmentRef
    from store_service.storage.table import Snapshot

UPDATE_ANCHOR = "__vectorlane_anchor"  # a column taken beside computed values (Lance projects no bare constants)
READAHEAD = 2  # batches Lance reads ahead of a filter's evaluation (its default, 16, would hold 17 at once)
FRAGMENT_READAHEAD = 2  # fragments one such scan reads at once


@contextlib.contextmanager
def evaluating(snapshot: Snapshot, reason: str = "INVALID_EXPRESSION",
               what: str = "the expressions") -> Iterator[None]:
    """Lance refusing SQL expressions (a Rust panic arrives as pyo3's PanicException) as `reason`; the
    store's own errors (a budget refusal) pass as they are."""
    try:
        yield
    except ServiceError:
        raise
    except BaseException as exc:  # noqa: BLE001
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise InvalidArgument(f"Lance cannot evaluate {what} ({snapshot.table.shown(exc)[:300]})",
                              reason=reason) from None


def computed(snapshot: Snapshot, refs: Sequence[FragmentRef], row_ids: np.ndarray,
             expressions: Mapping[str, Judged], *, max_output_bytes: int) -> dict[str, pa.Array]:
    """SQL expressions evaluated for rows by stable id, in that order, from the fragments `refs` (checked
    first): LanceDB's `update(values_sql=...)` and `select({name: expression})`. More than `max_output_bytes`
    of values in all is RESOURCE_EXHAUSTED. For no rows, empty arrays of the types Lance plans for them."""
    if not expressions:
        return {}
    texts = {name: judged.text for name, judged in expressions.items()}
    what = f"computing {', '.join(list(texts)[:4])}"
    with evaluating(snapshot):
        if len(row_ids) == 0:
            rows = snapshot.dataset.scanner(columns=texts, limit=0).to_table()
            return {name: rows.column(name).combine_chunks() for name in texts}
        snapshot.table.verify(refs)
        reads = frozenset().union(*(judged.columns for judged in expressions.values()))
        plan = EVALUATION.batches([j.cost for j in expressions.values()],
                                  _taken_input_bytes(snapshot, row_ids, reads), what=what)
        anchor = next(f.name for f in snapshot.schema)
        columns = {**texts, UPDATE_ANCHOR: f"`{anchor.replace('`', '``')}`"}
        parts, produced = [], 0
        for start in range(0, len(row_ids), plan.rows):
            ids = np.asarray(row_ids[start:start + plan.rows], dtype=np.uint64).tolist()
            with EVALUATION.reserve(plan.reserve, what=what):
                part = snapshot.dataset._take_rows(ids, columns=columns).select(list(texts))
            produced += part.nbytes
            if produced > max_output_bytes:
                raise ResourceExhausted(f"{what}: the values exceed {max_output_bytes} bytes",
                                        reason="EXPRESSION_OUTPUT_TOO_LARGE", limit=str(max_output_bytes))
            parts.append(part)
        rows = pa.concat_tables(parts)
    return {name: rows.column(name).combine_chunks() for name in texts}


def _taken_input_bytes(snapshot: Snapshot, row_ids: np.ndarray, columns: Iterable[str]) -> np.ndarray:
    """Each row's bytes in `columns` (an expression's input), read only for columns whose cells vary."""
    ids = np.asarray(row_ids, dtype=np.uint64).tolist()
    return input_bytes(snapshot.schema, columns, len(row_ids), lambda names: map(
        cell_bytes, snapshot.dataset._take_rows(ids, columns=names).columns))


def fragment_input_bytes(snapshot: Snapshot, ref: FragmentRef, columns: Iterable[str]) -> np.ndarray:
    """Each physical row's bytes in `columns`, for evaluating expressions over the whole fragment."""
    return input_bytes(snapshot.schema, columns, ref.physical_rows, lambda names: map(
        cell_bytes, snapshot.table.read_fragment(snapshot, ref, names).select(names).columns))


def check_filter(snapshot: Snapshot, where: str) -> str | None:
    """Why Lance's SQL cannot evaluate `where` on this version (None when it can): planned, not run."""
    try:
        snapshot.dataset.scanner(filter=where, columns=[], with_row_id=True, limit=0).explain_plan()
        return None
    except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        return refusal_text(snapshot.table.shown(exc))


def matching_offsets(snapshot: Snapshot, refs: Sequence[FragmentRef], judged: Judged,
                     row_input_bytes: np.ndarray) -> dict[int, np.ndarray]:
    """Per fragment id, the physical offsets of the rows (deleted ones included) of the fragments `refs`
    that match the filter, evaluated as LanceDB evaluates a filter: in one scan (so planned once, not once
    a fragment), in batches the evaluation budget sizes from each row's `row_input_bytes`."""
    snapshot.table.verify(refs)
    fragments = [snapshot.dataset.get_fragment(ref.id) for ref in refs]
    what = "the filter"
    plan = EVALUATION.batches([judged.cost], row_input_bytes, what=what,
                              in_flight=(READAHEAD + 1) * FRAGMENT_READAHEAD)
    with EVALUATION.reserve(plan.reserve, what=what), evaluating(snapshot, "INVALID_FILTER", what):
        found = snapshot.dataset.scanner(
            columns=[], filter=judged.text, with_row_id=True, with_row_address=True, include_deleted_rows=True,
            fragments=fragments, batch_size=plan.rows, batch_readahead=READAHEAD,
            fragment_readahead=FRAGMENT_READAHEAD).to_table().column("_rowaddr")
    addresses = found.drop_null().to_numpy().astype(np.uint64)
    owners, offsets = addresses >> np.uint64(32), (addresses & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return {ref.id: offsets[owners == np.uint64(ref.id)] for ref in refs}


def matching_rows(rows: pa.Table, judged: Judged, id_column: str, row_input_bytes: np.ndarray, *,
                  what: str) -> np.ndarray:
    """The `id_column` values of the in-memory `rows` for which Lance's engine finds the filter true (a
    merge_insert's condition over its pairs of rows), in batches the evaluation budget sizes."""
    plan = EVALUATION.batches([judged.cost], row_input_bytes, what=what)
    kept = [np.empty(0, dtype=np.int64)]
    for start in range(0, rows.num_rows, plan.rows):
        with EVALUATION.reserve(plan.reserve, what=what):
            try:
                found = lance.write_dataset(rows.slice(start, plan.rows), "memory://").to_table(
                    filter=judged.text, columns=[id_column]).column(id_column)
            except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException
                if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
                    raise
                raise InvalidArgument(f"{what}: Lance cannot evaluate it ({refusal_text(str(exc))})",
                                      reason="INVALID_FILTER") from None
            kept.append(found.to_numpy())
    return np.concatenate(kept)


def refusal_text(text: str) -> str:
    """What Lance says when it refuses SQL, without its source locations."""
    return lance_errors.without_location(text.replace("Invalid user input: ", ""))[:300]
