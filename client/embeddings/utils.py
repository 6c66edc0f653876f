"""LanceDB's helper module for writing embedding functions, under the same name so a function written for
LanceDB imports unchanged: the input types (`TEXT`, `IMAGES`) and the retry helpers."""

from __future__ import annotations

from typing import Any, Union

import numpy as np
import pyarrow as pa

from vectorlane.embeddings.retry import retry, retry_with_exponential_backoff

TEXT = Union[str, list[str], pa.Array, pa.ChunkedArray, np.ndarray]
IMAGES = Union[str, bytes, list[str], list[bytes], pa.Array, pa.ChunkedArray, np.ndarray]
DATA = Any  # an Arrow table or a pandas DataFrame

__all__ = ["DATA", "IMAGES", "TEXT", "retry", "retry_with_exponential_backoff"]
