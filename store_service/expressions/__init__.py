"""Caller-supplied SQL: one gate judges it on sqlparser's tree (`gate.py`), and a memory budget bounds its
evaluation (`budget.py`)."""

from store_service.expressions.gate import GATE, Judged, Role, judge

__all__ = ["GATE", "Judged", "Role", "judge"]
