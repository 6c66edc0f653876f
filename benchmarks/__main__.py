"""vectorlane's performance report: one run on one machine, every system measured in its own process, every
figure a median over repeated runs with its spread, every ratio against a baseline measured in the same run.

    make bench                                   # the full report: 100k and 1M rows, all sections
    .venv/bin/python -m benchmarks --quick       # a small run that checks the whole pipeline (~2 minutes)
    .venv/bin/python -m benchmarks --sections vectors --sizes 100000 --systems faiss,vectorlane

Writes REPORT.md, results.json and PNG plots to --out (default benchmarks/results). Peers (LanceDB, Chroma)
come from the optional `bench` dependency group; a peer that is not installed is left out of the report.
"""

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.common import ROOT, in_worker, machine
from benchmarks.systems import SYSTEMS, available

SECTIONS = ("vectors", "embedding", "backfill", "scenario", "cold_start")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated, from: " + ", ".join(SECTIONS))
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="vector stores to compare")
    parser.add_argument("--sizes", default="100000,1000000", help="table sizes in rows")
    parser.add_argument("--queries", type=int, default=200, help="queries per latency pass")
    parser.add_argument("--exact-queries", type=int, default=50, help="queries per pass for exact search at 1M+")
    parser.add_argument("--repeats", type=int, default=3, help="repeats of each measurement (medians reported)")
    parser.add_argument("--seconds", type=float, default=2.0, help="duration of each QPS measurement")
    parser.add_argument("--batch", type=int, default=10_000, help="rows per ingest call")
    parser.add_argument("--texts", type=int, default=10_000, help="texts added in the end-to-end scenario")
    parser.add_argument("--text-queries", type=int, default=1_000, help="text searches in the scenario")
    parser.add_argument("--backfill-rows", type=int, default=10_000, help="rows re-embedded by the backfill run")
    parser.add_argument("--clip", default="tiny,ViT-B-32", help="open-clip architectures (random weights)")
    parser.add_argument("--quick", action="store_true", help="small sizes and short runs: checks the pipeline")
    parser.add_argument("--update", action="store_true",
                        help="merge into --out's results.json (the report lists which parts each run measured)")
    args = parser.parse_args()
    if args.quick:  # small defaults; what was given on the command line still wins
        quick = {"sizes": "20000", "queries": 50, "exact_queries": 20, "repeats": 2, "seconds": 0.3, "texts": 500,
                 "text_queries": 50, "clip": "tiny", "batch": 5_000, "backfill_rows": 1_000}
        for name, value in quick.items():
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    return args


def main() -> None:
    args = arguments()
    sections = [s for s in args.sections.split(",") if s]
    systems = [s for s in args.systems.split(",") if s and available(s)]
    sizes = [int(s) for s in args.sizes.split(",") if s]
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="vl-bench-"))
    previous = args.out / "results.json"
    results: dict[str, Any] = json.loads(previous.read_text()) if args.update and previous.exists() else {}
    if results:
        results.setdefault("updates", []).append({"started": time.strftime("%Y-%m-%d %H:%M:%S"),
                                                  "sections": sections, "systems": systems, "sizes": sizes})
        results["failures"] = [f for f in results.get("failures", [])
                               if not any(f.startswith(f"{s} at ") for s in systems)]
    else:
        results = {"machine": machine(), "config": {k: str(v) for k, v in vars(args).items()},
                   "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    print(f"# vectorlane benchmark report -> {args.out}\n# machine: {results['machine']['cpu']}, "
          f"{results['machine']['cpus']} CPUs, GPU {results['machine']['gpu'] or 'none'}", flush=True)

    def step(name: str, function: str, **kwargs: Any) -> Any:
        """One measurement in a worker; a failure is reported (in REPORT.md too) and the run goes on."""
        print(f"## {name}", flush=True)
        start = time.perf_counter()
        try:
            out = in_worker(function, work / "result.json", **kwargs)
        except subprocess.CalledProcessError as exc:
            results.setdefault("failures", []).append(f"{name}: the worker exited with status {exc.returncode}")
            print(f"   FAILED: {results['failures'][-1]}", flush=True)
            return None
        print(f"   done in {time.perf_counter() - start:.0f} s", flush=True)
        return out

    def save() -> None:
        (args.out / "results.json").write_text(json.dumps(results, indent=1))
        report.write(results, args.out)

    try:
        if "vectors" in sections:
            results.setdefault("vectors", {})
            for rows in sizes:
                size_dir = work / f"size-{rows}"
                entry: dict[str, Any] = results["vectors"].setdefault(str(rows), {"rows": rows, "systems": {}})
                step(f"data: {rows} rows", "vectors:prepare", rows=rows, queries=args.queries, work=str(size_dir))
                entry["floors"] = step(f"ingest floors at {rows}", "vectors:ingest_floors", work=str(size_dir),
                                       batch=args.batch, repeats=args.repeats)
                for system in systems:
                    big = rows > 200_000
                    measured = step(
                        f"{system} at {rows} rows", "vectors:run_system", system=system, work=str(size_dir),
                        batch=args.batch, ingest_repeats=1 if (big and system == "chroma") else args.repeats,
                        repeats=args.repeats, seconds=args.seconds,
                        exact_queries=args.exact_queries if big else args.queries)
                    if measured:
                        entry["systems"][system] = measured
                    save()
        if "embedding" in sections:
            results["embedding"] = {
                "minilm_batches": step("MiniLM batch sizes", "embedding:minilm_batches", texts=256,
                                       repeats=args.repeats, batch_sizes=[1, 16, 64]),
                "minilm_concurrency": step("MiniLM 32 concurrent clients", "embedding:minilm_concurrency",
                                           clients=32, per_client=4, repeats=args.repeats),
                "open_clip": [m for m in (
                    step(f"open-clip {arch} images", "embedding:open_clip_images", architecture=arch,
                         work=str(work / "models"), count=64 if arch == "tiny" else 32,
                         batch=32 if arch == "tiny" else 16, repeats=args.repeats)
                    for arch in args.clip.split(",") if arch) if m]}
            save()
        if "backfill" in sections:
            results["backfill"] = step("MiniLM backfill", "backfill:minilm_backfill", rows=args.backfill_rows,
                                       repeats=args.repeats, work=str(work / "backfill"))
            save()
        if "scenario" in sections:
            scenario: dict[str, Any] = {"texts": args.texts, "queries": args.text_queries, "runs": {}}
            results["scenario"] = scenario
            for system in ("vectorlane", "lancedb"):
                if available(system):
                    runs = [step(f"scenario: {system} run {r + 1}", f"scenario:scenario_{system}",
                                 work=str(work / "e2e"), texts=args.texts, queries=args.text_queries, run=r)
                            for r in range(args.repeats)]
                    if all(runs):
                        scenario["runs"][system] = runs
            save()
        if "cold_start" in sections and "vectors" in sections:
            rows = max(sizes)
            size_dir = work / f"size-{rows}"
            import numpy as np

            query = np.load(size_dir / "queries.npy")[0].tolist()
            cold: dict[str, Any] = {"rows": rows, "runs": {}}
            results["cold_start"] = cold
            for system in ("vectorlane", "lancedb"):
                if system in systems:
                    runs = [step(f"cold start: {system}", f"scenario:cold_start_{system}",
                                 data_dir=str(size_dir / system / system), query=query) for _ in range(args.repeats)]
                    if all(runs):
                        cold["runs"][system] = runs
            save()
    finally:
        results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
        save()
        shutil.rmtree(work, ignore_errors=True)
    print(f"# wrote {args.out / 'REPORT.md'}", flush=True)


if __name__ == "__main__":
    main()
