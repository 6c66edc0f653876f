"""Where a filter (`where`) is evaluated: the store's own grammar (`grammar.py`, compiled to an Arrow
expression the store evaluates over the fragments it holds) when it reads the filter; otherwise Lance's SQL
engine (`lance.py`), as LanceDB sends it, once the expression gate (`gate.py`) lets it through and Lance
plans it. When neither reads it, the grammar's error stands, with why Lance's does not read it either; the
gate's other refusals (a function not allowed, too complex, too large) are its own."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import InvalidArgument
from store_service.expressions import lance as lance_sql
from store_service.expressions.gate import Judged, Role, judge
from store_service.expressions.grammar import OutsideGrammar, compile_filter, shown

if TYPE_CHECKING:
    from store_service.storage.table import Snapshot


@dataclass(frozen=True)
class LanceFilter:
    """A filter Lance's SQL engine evaluates, fragment by fragment, as the expression gate judged it."""

    judged: Judged


def compile_where(where: str, schema: pa.Schema, snapshot: Snapshot, max_length: int) -> pc.Expression | LanceFilter:
    """The filter as the store evaluates it: an Arrow expression (its own grammar) or a LanceFilter."""
    try:
        return compile_filter(where, schema, max_length)
    except OutsideGrammar as ours:
        try:
            judged = judge(where, Role.FILTER, what=f"filter {shown(where, 64)}", max_length=max_length)
        except InvalidArgument as refused:
            if refused.reason != Role.FILTER.value:
                raise
            problem: str | None = refused.message
        else:
            problem = lance_sql.check_filter(snapshot, judged.text)
        if problem is not None:
            raise InvalidArgument(f"{ours.message} (nor does Lance's SQL take it: {problem[:300]})",
                                  reason="INVALID_FILTER", **ours.metadata) from None
        return LanceFilter(judged)


def lance_filter(where: str, snapshot: Snapshot, max_length: int) -> str:
    """The filter as Lance's SQL engine evaluates it inside one of its own scans (a full-text search's
    prefilter or postfilter): judged by the gate and planned on this version first."""
    judged = judge(where, Role.FILTER, what=f"filter {shown(where, 64)}", max_length=max_length)
    problem = lance_sql.check_filter(snapshot, judged.text)
    if problem is not None:
        raise InvalidArgument(f"Lance's SQL cannot evaluate filter {shown(where, 64)}: {problem[:300]}",
                              reason="INVALID_FILTER")
    return judged.text
