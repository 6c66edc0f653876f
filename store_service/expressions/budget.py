"""The store's memory budget for evaluating caller-supplied expressions (filters Lance evaluates, computed
columns, `values_sql`, `add_columns`, merge conditions).

The gate bounds what one row's evaluation can hold (`cost.Size`: so many times the bytes it reads, plus a
fixed amount). Evaluation reads those bytes first (the store holds them for filters anyway), then:
- a row whose own bound is over `max_row_bytes` is refused before anything runs (RESOURCE_EXHAUSTED,
  EXPRESSION_OUTPUT_TOO_LARGE);
- rows are evaluated in batches whose bound fits `batch_bytes` (Lance's batch size is set from it);
- every batch reserves its bound from one budget for the whole process, `total_bytes`; a batch that would
  take it past that is refused at once (RESOURCE_EXHAUSTED, EVALUATION_BUDGET_EXHAUSTED), and the caller can
  retry: new evaluation work stops, the work already running keeps what it reserved.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from store_service.errors import ResourceExhausted
from store_service.expressions.cost import Size

DEFAULT_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_BATCH_ROWS = 8192


@dataclass(frozen=True)
class Batches:
    """How to evaluate: `rows` rows at a time, each batch reserving `reserve` bytes."""

    rows: int
    reserve: int


class EvaluationBudget:
    def __init__(self, total_bytes: int = DEFAULT_TOTAL_BYTES) -> None:
        self._lock = threading.Lock()
        self.used = 0
        self.configure(total_bytes)

    def configure(self, total_bytes: int) -> None:
        """The process-wide budget (the store's --evaluation-memory-bytes); a batch gets at most an eighth."""
        if total_bytes < 1024 * 1024:
            raise ValueError(f"an evaluation budget of {total_bytes} bytes: at least 1 MiB")
        self.total_bytes = total_bytes
        self.batch_bytes = max(total_bytes // 8, 1)
        self.max_row_bytes = max(total_bytes // 4, 1)

    def batches(self, costs: list[Size], row_bytes: np.ndarray, *, what: str, in_flight: int = 1) -> Batches:
        """Batches for evaluating expressions of `costs` together over rows reading `row_bytes` each, with
        `in_flight` batches evaluated at once (Lance reads ahead)."""
        per_input = sum(c.per_input for c in costs) + 1.0  # the row's input is held too
        fixed = sum(c.fixed for c in costs)
        worst = float(per_input * row_bytes.max(initial=0.0) + fixed)
        if worst > self.max_row_bytes:
            raise ResourceExhausted(f"{what}: evaluating it for one row could hold {worst:.0f} bytes; the store "
                                    f"evaluates at most {self.max_row_bytes} bytes a row (its input is "
                                    f"{row_bytes.max(initial=0.0):.0f} bytes)", reason="EXPRESSION_OUTPUT_TOO_LARGE",
                                    limit=str(self.max_row_bytes))
        rows = int(max(1, min(MAX_BATCH_ROWS, self.batch_bytes // max(worst * in_flight, 1.0))))
        return Batches(rows=rows, reserve=int(worst * rows * in_flight))

    @contextlib.contextmanager
    def reserve(self, nbytes: int, *, what: str) -> Iterator[None]:
        """Holds `nbytes` of the budget while the block runs; refuses at once when they are not free."""
        with self._lock:
            if self.used + nbytes > self.total_bytes:
                raise ResourceExhausted(f"{what}: the store is evaluating as many expressions as its memory "
                                        f"budget allows ({self.used} of {self.total_bytes} bytes held); retry",
                                        reason="EVALUATION_BUDGET_EXHAUSTED", limit=str(self.total_bytes))
            self.used += nbytes
        try:
            yield
        finally:
            with self._lock:
                self.used -= nbytes


EVALUATION = EvaluationBudget()
