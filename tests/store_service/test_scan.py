"""Exact scans split across the scan pool give the distances of one scan over all rows, in every metric."""

from __future__ import annotations

import numpy as np
import pytest

from store_service.search import scan
from store_service.indexes.vector_index import prepare


@pytest.mark.parametrize("metric", ["l2", "cosine", "dot"])
def test_a_chunked_scan_equals_one_scan(metric):
    rng = np.random.default_rng(5)
    rows = scan.PARALLEL_MIN_ROWS * 2 + 17  # big enough to be split, and not evenly
    vectors = prepare(rng.standard_normal((rows, 16), dtype=np.float32), metric)
    norms = (vectors * vectors).sum(axis=1) if metric == "l2" else None
    q = prepare(rng.standard_normal((1, 16), dtype=np.float32), metric)[0]
    split = scan.distances(vectors, norms, q, metric)
    whole = scan._chunk(vectors, norms, q, metric)
    assert split.shape == (rows,)
    np.testing.assert_allclose(split, whole, rtol=1e-5, atol=1e-5)
    if metric == "l2":
        np.testing.assert_allclose(split, ((vectors - q) ** 2).sum(axis=1), rtol=1e-3, atol=1e-3)
