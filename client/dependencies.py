"""Which optional packages are importable, under LanceDB's names (`lancedb.dependencies`)."""

from __future__ import annotations

import importlib.util


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


_PANDAS_AVAILABLE = _available("pandas")
_POLARS_AVAILABLE = _available("polars")
_PIL_AVAILABLE = _available("PIL")
_TQDM_AVAILABLE = _available("tqdm")

__all__ = ["_PANDAS_AVAILABLE", "_PIL_AVAILABLE", "_POLARS_AVAILABLE", "_TQDM_AVAILABLE"]
