"""How deeply a JSON text nests, found before it is parsed: Python's parser recurses once a level, and a
valid document 1,000 levels deep made it raise "maximum recursion depth exceeded" (which reached the caller
as the error's text). Strings are set aside first, so brackets inside them do not count."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


def nesting(text: str | bytes) -> int:
    """The deepest level of arrays and objects in `text` (0 for a scalar)."""
    data = text.encode() if isinstance(text, str) else text
    bare = np.frombuffer(_STRING.sub(b'""', data), np.uint8)
    steps = np.isin(bare, _OPEN).astype(np.int64) - np.isin(bare, _CLOSE)
    return int(np.cumsum(steps).max(initial=0))


def too_deep(text: str | bytes, max_depth: int) -> str | None:
    """Why `text` is refused before parsing ("nested N levels deep; at most M"), or None."""
    depth = nesting(text)
    return f"nested {depth} levels deep; at most {max_depth}" if depth > max_depth else None


def loads_bounded(text: str | bytes, max_depth: int, **kwargs: Any) -> Any:
    """json.loads of a text already known to nest at most `max_depth` (ValueError otherwise)."""
    import json

    problem = too_deep(text, max_depth)
    if problem is not None:
        raise ValueError(problem)
    return json.loads(text, **kwargs)
