"""The benchmark pipeline builds its report on a CPU-only machine without the peers installed: a small run of
the vector section with FAISS and vectorlane writes REPORT.md, results.json and PNG plots, and the numbers in
them are the measured ones (vectorlane's exact search finds FAISS's exact top-k)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def test_a_small_run_writes_the_report_the_json_and_the_plots(tmp_path: Path):
    out = tmp_path / "results"
    subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--sections", "vectors", "--systems",
                    "faiss,vectorlane", "--sizes", "3000", "--repeats", "1", "--out", str(out)],
                   cwd=ROOT, check=True, timeout=600)
    results = json.loads((out / "results.json").read_text())
    size = results["vectors"]["3000"]
    ours, faiss = size["systems"]["vectorlane"], size["systems"]["faiss"]
    assert ours["exact"]["recall"] == 1.0 and faiss["exact"]["recall"] == 1.0
    assert ours["index"]["settings"][0]["recall"] >= 0.9
    assert ours["ingest"]["rows_per_s"]["median"] > 0 and set(ours["exact"]["qps"]) == {"1", "4", "16"}
    assert size["floors"]["disk_fsync_rows_per_s"]["median"] > 0
    assert results["machine"]["cpus"] >= 1 and results["machine"]["versions"]["faiss"]
    report = (out / "REPORT.md").read_text()
    assert "| search p50 over FAISS ≤ 0.5 ms (3,000 rows, approximate) |" in report
    assert "| vectorlane (gRPC) | flat scan |" in report
    p50 = ours["exact"]["p50_ms"]["median"]
    assert f"{p50:,.3f}" in report  # the table shows the measured median
    for plot in ("search_latency.png", "search_qps.png", "ingest.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({plot})" in report
