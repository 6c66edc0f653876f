"""LanceDB's `read_consistency_interval`: how stale a read may be about versions other processes committed.

The store has one setting (`--read-consistency-interval`: seconds; 0 checks the dataset on every read, the
default; `none` sees only the store's own commits). A connection may ask for its own per call (the client's
`connect(read_consistency_interval=...)`, sent as the `vectorlane-read-consistency` metadata), which the
servicer sets here for the call's thread.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator

from store_service.errors import InvalidArgument

METADATA_KEY = "vectorlane-read-consistency"
NEVER = "none"
MAX_INTERVAL_S = 24 * 3600.0
_UNSET = object()
_CALL: contextvars.ContextVar[object] = contextvars.ContextVar("read_consistency_interval", default=_UNSET)


def parse(text: str) -> float | None:
    """An interval as written in a setting or the metadata: seconds (0 to a day), or `none`."""
    if text.strip().lower() == NEVER:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_INTERVAL_S:
        raise InvalidArgument(f"read consistency interval {text[:40]!r}: give seconds from 0 to "
                              f"{MAX_INTERVAL_S:.0f}, or {NEVER!r}", reason="INVALID_READ_CONSISTENCY")
    return seconds


@contextlib.contextmanager
def for_call(text: str | None) -> Iterator[None]:
    """Within the block, reads use the interval a call asked for (`text` from its metadata; None: none)."""
    if text is None:
        yield
        return
    token = _CALL.set(parse(text))
    try:
        yield
    finally:
        _CALL.reset(token)


def interval_for_call(default: float | None) -> float | None:
    found = _CALL.get()
    return default if found is _UNSET else found  # type: ignore[return-value]
