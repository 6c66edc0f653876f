"""Renders results.json as REPORT.md and PNG plots: the numbers, their spread, the ratios and the goals."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

RECALL_FLOOR = 0.95


def med(value: dict | None) -> float | None:
    return None if value is None else value["median"]


def fmt(value: float | None, digits: int = 0, suffix: str = "") -> str:
    return "–" if value is None else f"{value:,.{digits}f}{suffix}"


def spread(value: dict | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{fmt(value['median'], digits)} [{fmt(value['min'], digits)}–{fmt(value['max'], digits)}]"


def times(a: float | None, b: float | None) -> str:
    return "–" if a is None or not b else f"{a / b:.2f}×"


def best_setting(result: dict | None) -> dict | None:
    """The approximate search setting compared across systems: the fastest (QPS at 1 client) reaching recall
    ≥ 0.95, else the most accurate."""
    if not result or "index" not in result or not result["index"]["settings"]:
        return None
    settings = result["index"]["settings"]
    good = [s for s in settings if s["recall"] >= RECALL_FLOOR]
    if good:
        return max(good, key=lambda s: s["qps"]["1"]["median"])
    return max(settings, key=lambda s: s["recall"])


# ----- sections ----------------------------------------------------------------------------------------------

def search_table(size: dict, kind: str) -> list[str]:
    systems = size["systems"]
    faiss = systems.get("faiss", {})
    base = faiss.get("exact") if kind == "exact" else best_setting(faiss)
    lance = systems.get("lancedb", {})
    lance_base = lance.get("exact") if kind == "exact" else best_setting(lance)
    lance_qps = med(lance_base["qps"]["1"]) if lance_base else None
    lines = ["| system | method | p50 ms | p99 ms | QPS 1 client | QPS 4 | QPS 16 | recall@10 | p50 over FAISS "
             "| QPS@1 vs LanceDB |", "|---|---|---|---|---|---|---|---|---|---|"]
    for result in systems.values():
        rows = ([(result["exact"]["label"], result["exact"])] if kind == "exact" and "exact" in result else
                [(f"{result['index']['label']}: {s['label']}", s) for s in result.get("index", {}).get("settings", [])]
                if kind == "approximate" else [])
        if kind == "exact" and "exact" not in result:
            rows = []
        for label, m in rows:
            over = None if base is None else med(m["p50_ms"]) - med(base["p50_ms"])
            lines.append(
                f"| {result['system']} | {label} | {spread(m['p50_ms'], 3)} | {spread(m['p99_ms'], 3)} | "
                f"{spread(m['qps']['1'])} | {spread(m['qps']['4'])} | {spread(m['qps']['16'])} | {m['recall']:.3f} | "
                f"{'baseline' if m is base else fmt(over, 3, ' ms')} | "
                f"{'baseline' if m is lance_base else times(med(m['qps']['1']), lance_qps)} |")
    return lines


def vectors_section(vectors: dict) -> list[str]:
    out = ["## 1. Search, 384-d clustered vectors", "",
           "Each system in its own process; k = 10; recall@10 against exact search (FAISS IndexFlatL2). p50/p99: "
           "one client, one query after the other; QPS: 1, 4 and 16 client threads calling back to back. "
           "Median of the repeats, [min–max] across them. vectorlane is measured through its Python client, "
           "with the store in its own process (Arrow results over gRPC).", ""]
    for rows, size in vectors.items():
        out += [f"### {int(rows):,} rows", "", "**Exact search**", "", *search_table(size, "exact"), "",
                "**Approximate search** (one index each; the row compared across systems is the fastest setting "
                "with recall ≥ 0.95)", "", *search_table(size, "approximate"), ""]
        builds = ", ".join(f"{r['system']} {r['index']['build_s']:.1f} s" for r in size["systems"].values()
                           if "index" in r)
        out += [f"Index build: {builds}."]
        batches = [r for r in size["systems"].values() if "batch" in r]
        if batches:
            out += ["", f"**Batch queries** (exact search): {batches[0]['batch']['queries']} queries in one "
                    "`search([v1, v2, ...])` call against the same queries one call each, same run.", "",
                    "| system | one call each, QPS | one call for all, QPS | batch / single | same results |",
                    "|---|---|---|---|---|"]
            for r in batches:
                b = r["batch"]
                same = "yes" if b["same_results"] else "NO"
                out.append(f"| {r['system']} | {spread(b['single_qps'])} | {spread(b['batch_qps'])} | "
                           f"{times(med(b['batch_qps']), med(b['single_qps']))} | {same} |")
        floor = size["systems"].get("vectorlane", {}).get("empty_call")
        if floor:
            out += ["", f"Floor: an empty gRPC unary call (grpc.health Check) to the same store process takes "
                    f"{floor['p50_ms']:.3f} ms p50, {floor['p99_ms']:.3f} ms p99."]
        out.append("")
    out += ["## 2. Durable ingest of precomputed vectors", "",
            "One add call per batch of rows (each one a committed version), repeated into new tables. vectorlane "
            "commits with fsync + atomic rename; LanceDB's `add` and Chroma's `add` do not fsync. Chroma builds its "
            "HNSW index during `add`. Peak memory: growth of resident memory during the ingest, summed over the "
            "client and the server process.", "",
            "| rows | system | rows/s | × LanceDB | peak memory MiB |", "|---|---|---|---|---|"]
    for rows, size in vectors.items():
        lance = size["systems"].get("lancedb", {}).get("ingest")
        for result in size["systems"].values():
            ingest = result.get("ingest")
            if ingest:
                out.append(f"| {int(rows):,} | {result['system']} | {spread(ingest['rows_per_s'])} | "
                           f"{times(med(ingest['rows_per_s']), med(lance['rows_per_s']) if lance else None)} | "
                           f"{spread(ingest['peak_mib'])} |")
        floors = size.get("floors")
        if floors:
            out.append(f"| {int(rows):,} | floor: bytes into a gRPC server that discards them | "
                       f"{spread(floors['transport_rows_per_s'])} | | |")
            out.append(f"| {int(rows):,} | floor: bytes written to files with fsync, no network | "
                       f"{spread(floors['disk_fsync_rows_per_s'])} | | |")
    return out + [""]


def embedding_section(embedding: dict) -> list[str]:
    out = ["## 3. Embedding", ""]
    batches = embedding.get("minilm_batches")
    if batches:
        out += [f"all-MiniLM-L6-v2 on {batches['device'].upper()}, {batches['texts']} texts per measurement: "
                "`SentenceTransformer.encode` in-process vs `Embed` calls to the service (texts/s).", "",
                "| batch | in-process | through the service | service / in-process |", "|---|---|---|---|"]
        for size, m in batches["batches"].items():
            out.append(f"| {size} | {spread(m['in_process'], 1)} | {spread(m['service'], 1)} | "
                       f"{times(med(m['service']), med(m['in_process']))} |")
        out.append("")
    conc = embedding.get("minilm_concurrency")
    if conc:
        out += [f"{conc['clients']} concurrent clients, one text per call (texts/s):", "",
                "| case | texts/s | ratio |", "|---|---|---|",
                f"| dynamic batching off | {spread(conc['batching_off'], 1)} | baseline |",
                f"| dynamic batching on | {spread(conc['batching_on'], 1)} | "
                f"{times(med(conc['batching_on']), med(conc['batching_off']))} |",
                f"| ceiling: in-process encode in batches of {conc['clients']} | "
                f"{spread(conc['in_process_batched'], 1)} | "
                f"{times(med(conc['in_process_batched']), med(conc['batching_off']))} |",
                f"| in-process encode one text at a time | {spread(conc['in_process_single'], 1)} | "
                f"{times(med(conc['in_process_single']), med(conc['batching_off']))} |", ""]
    clips = embedding.get("open_clip") or []
    if clips:
        out += ["open-clip with random weights, JPEG bytes in (images/s):", "",
                "| architecture | device | batch | in-process | through the service | ratio |",
                "|---|---|---|---|---|---|"]
        for m in clips:
            out.append(f"| {m['architecture']} | {m['device'].upper()} {m['precision']} | {m['batch']} | "
                       f"{spread(m['in_process'], 1)} | {spread(m['service'], 1)} | "
                       f"{times(med(m['service']), med(m['in_process']))} |")
        out.append("")
    return out


def backfill_section(backfill: dict) -> list[str]:
    return ["### Re-embedding a table (backfill)", "",
            f"`add_embedding_function` with all-MiniLM-L6-v2 on {backfill['device'].upper()} over a table of "
            f"{backfill['rows']:,} texts, timed from the call to the operation's SUCCEEDED (polled every 0.25 s), "
            "vs `SentenceTransformer.encode` of the same texts in one process (rows/s; texts new to both, so the "
            "embedding cache does not help).", "",
            "| case | rows/s | ratio |", "|---|---|---|",
            f"| in-process encode | {spread(backfill['in_process'], 1)} | baseline |",
            f"| backfill through the store and embed service | {spread(backfill['backfill'], 1)} | "
            f"{times(med(backfill['backfill']), med(backfill['in_process']))} |",
            f"| the operation's own rate (rows_per_second) | {spread(backfill['reported_rows_per_s'], 1)} | "
            f"{times(med(backfill['reported_rows_per_s']), med(backfill['in_process']))} |", ""]


def scenario_summary(runs: list[dict]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def scenario_section(scenario: dict | None, cold: dict | None) -> list[str]:
    out = []
    if scenario and scenario["runs"]:
        summaries = {k: scenario_summary(v) for k, v in scenario["runs"].items()}
        lance = summaries.get("lancedb")
        out += ["## 4. End to end: the seed scenario", "",
                f"Create a table with a MiniLM (sentence-transformers) function, add {scenario['texts']:,} texts, "
                f"then {scenario['queries']:,} text searches one after the other. vectorlane: client → store → "
                "embed service, each its own process; LanceDB: its own `sentence-transformers` function, the same "
                "model files. Model loading is excluded from both (a warm-up row and search first). Medians of "
                f"{len(next(iter(scenario['runs'].values())))} runs.", "",
                "| system | add s | searches s | search p50 ms | search p99 ms | total s | total × LanceDB |",
                "|---|---|---|---|---|---|---|"]
        for key, s in summaries.items():
            out.append(f"| {key} | {s['add_s']:.2f} | {s['search_s']:.2f} | {s['search_p50_ms']:.2f} | "
                       f"{s['search_p99_ms']:.2f} | {s['total_s']:.2f} | "
                       f"{times(s['total_s'], lance['total_s'] if lance else None)} |")
        out.append("")
    if cold and cold["runs"]:
        out += ["## 5. Cold start", "",
                f"From starting the process to ready (vectorlane: grpc.health SERVING; LanceDB: table opened) and "
                f"to the first answered approximate search on the {int(cold['rows']):,}-row table (files in the "
                "page cache). Medians of the runs.", "",
                "| system | ready s | first search s |", "|---|---|---|"]
        for key, runs in cold["runs"].items():
            out.append(f"| {key} | {statistics.median(r['serving_s'] for r in runs):.2f} | "
                       f"{statistics.median(r['first_search_s'] for r in runs):.2f} |")
        out.append("")
    return out


def goals(results: dict) -> list[str]:
    rows = []
    vectors = results.get("vectors") or {}
    for size_key, size in vectors.items():
        systems = size["systems"]
        ours, faiss, lance = (best_setting(systems.get(k)) for k in ("vectorlane", "faiss", "lancedb"))
        if ours and faiss:
            over = med(ours["p50_ms"]) - med(faiss["p50_ms"])
            rows.append((f"search p50 over FAISS ≤ 0.5 ms ({int(size_key):,} rows, approximate)",
                         f"+{over:.3f} ms", over <= 0.5))
        if ours and lance and min(ours["recall"], lance["recall"]) >= RECALL_FLOOR:
            r = med(ours["qps"]["1"]) / med(lance["qps"]["1"])
            rows.append((f"QPS ≥ 3× LanceDB at recall ≥ 0.95 ({int(size_key):,} rows, 1 client)", f"{r:.2f}×",
                         r >= 3))
        ingest = systems.get("vectorlane", {}).get("ingest")
        lance_ingest = systems.get("lancedb", {}).get("ingest")
        if ingest and lance_ingest:
            r = med(ingest["rows_per_s"]) / med(lance_ingest["rows_per_s"])
            rows.append((f"durable ingest ≥ 1.5× LanceDB add ({int(size_key):,} rows)", f"{r:.2f}×", r >= 1.5))
    embedding = results.get("embedding") or {}
    batch64 = (embedding.get("minilm_batches") or {}).get("batches", {}).get("64")
    if batch64:
        r = med(batch64["service"]) / med(batch64["in_process"])
        rows.append(("embed service ≥ 0.95× in-process at batch 64", f"{r:.2f}×", r >= 0.95))
    conc = embedding.get("minilm_concurrency")
    if conc:
        r = med(conc["batching_on"]) / med(conc["batching_off"])
        rows.append((f"batching ≥ 4× batching-off, {conc['clients']} clients", f"{r:.2f}×", r >= 4))
    backfill = results.get("backfill")
    if backfill:
        r = med(backfill["backfill"]) / med(backfill["in_process"])
        rows.append(("MiniLM backfill ≥ 0.8× in-process encode", f"{r:.2f}×", r >= 0.8))
    scenario = results.get("scenario") or {}
    runs = scenario.get("runs") or {}
    if "vectorlane" in runs and "lancedb" in runs:
        r = scenario_summary(runs["vectorlane"])["total_s"] / scenario_summary(runs["lancedb"])["total_s"]
        rows.append(("end-to-end scenario ≤ 1.1× LanceDB's time", f"{r:.2f}×", r <= 1.1))
    return ["| goal | measured | met |", "|---|---|---|",
            *(f"| {name} | {value} | {'yes' if met else '**no**'} |" for name, value, met in rows)]


def machine_lines(m: dict) -> list[str]:
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
    return [f"- **Machine:** {m['cpu']}, {m['cpus']} CPUs, {m['memory_gib']} GiB RAM, GPU: {m['gpu'] or 'none'}; "
            f"{m['os']}, Python {m['python']}",
            f"- **Versions:** {versions}", f"- **vectorlane commit:** {m['commit']}; run {m['date']}"]


def write(results: dict, out: Path) -> None:
    lines = ["# vectorlane performance report", "",
             "Generated by `make bench` (`python -m benchmarks`) from one run on one machine; every number is in "
             "`results.json` beside this file, with each repeat's samples.", "",
             *machine_lines(results["machine"]), f"- **Settings:** {results['config']}", "",
             "## Goals", "", *goals(results), ""]
    for update in results.get("updates", []):
        lines += [f"- **Measured again in a later run ({update['started']}):** sections "
                  f"{', '.join(update['sections'])}; systems {', '.join(update['systems'])}; sizes "
                  f"{', '.join(map(str, update['sizes']))}"]
    if results.get("updates"):
        lines.append("")
    if results.get("failures"):
        lines += ["**Measurements that failed in this run** (left out below):", "",
                  *(f"- {failure}" for failure in results["failures"]), ""]
    plots = plot(results, out)
    if results.get("vectors"):
        lines += vectors_section(results["vectors"])
    if results.get("embedding"):
        lines += embedding_section(results["embedding"])
    if results.get("backfill"):
        lines += backfill_section(results["backfill"])
    lines += scenario_section(results.get("scenario"), results.get("cold_start"))
    if plots:
        lines += ["## Plots", "", *(f"![{p.stem}]({p.name})" for p in plots), ""]
    (out / "REPORT.md").write_text("\n".join(lines) + "\n")


# ----- plots -------------------------------------------------------------------------------------------------

def plot(results: dict, out: Path) -> list[Path]:
    try:
        import matplotlib
    except ImportError:
        return []
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []

    def save(fig: Any, name: str) -> None:
        path = out / name
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    def errors(values: list[dict]) -> list[list[float]]:
        return [[v["median"] - v["min"] for v in values], [v["max"] - v["median"] for v in values]]

    vectors = results.get("vectors") or {}
    if vectors:
        fig, axes = plt.subplots(1, len(vectors), figsize=(6 * len(vectors), 4), squeeze=False)
        for ax, (rows, size) in zip(axes[0], vectors.items()):
            names, values = [], []
            for result in size["systems"].values():
                for kind, m in (("exact", result.get("exact")), ("approx", best_setting(result))):
                    if m:
                        names.append(f"{result['system']}\n{kind}")
                        values.append(m["p50_ms"])
            ax.bar(range(len(values)), [v["median"] for v in values], yerr=errors(values), capsize=3)
            ax.set_xticks(range(len(values)), names, rotation=60, ha="right", fontsize=7)
            ax.set_yscale("log")
            ax.set_ylabel("p50 latency, ms (log)")
            ax.set_title(f"search p50, {int(rows):,} rows")
        save(fig, "search_latency.png")

        fig, axes = plt.subplots(1, len(vectors), figsize=(6 * len(vectors), 4), squeeze=False)
        for ax, (rows, size) in zip(axes[0], vectors.items()):
            for result in size["systems"].values():
                m = best_setting(result)
                if m:
                    clients = sorted(m["qps"], key=int)
                    ax.errorbar([int(c) for c in clients], [m["qps"][c]["median"] for c in clients],
                                yerr=errors([m["qps"][c] for c in clients]), marker="o", capsize=3,
                                label=f"{result['system']} (recall {m['recall']:.2f})")
            ax.set_xscale("log", base=2)
            ax.set_xticks([1, 4, 16], ["1", "4", "16"])
            ax.set_yscale("log")
            ax.set_xlabel("client threads")
            ax.set_ylabel("queries/s (log)")
            ax.set_title(f"approximate search QPS, {int(rows):,} rows")
            ax.legend(fontsize=7)
        save(fig, "search_qps.png")

        fig, ax = plt.subplots(figsize=(8, 4))
        labels, values = [], []
        for rows, size in vectors.items():
            for result in size["systems"].values():
                if "ingest" in result:
                    labels.append(f"{result['system']}\n{int(rows):,}")
                    values.append(result["ingest"]["rows_per_s"])
            if size.get("floors"):
                labels.append(f"floor: disk fsync\n{int(rows):,}")
                values.append(size["floors"]["disk_fsync_rows_per_s"])
        ax.bar(range(len(values)), [v["median"] for v in values], yerr=errors(values), capsize=3)
        ax.set_xticks(range(len(values)), labels, rotation=60, ha="right", fontsize=7)
        ax.set_yscale("log")
        ax.set_ylabel("rows/s (log)")
        ax.set_title("durable ingest of 384-d vectors")
        save(fig, "ingest.png")

    embedding = results.get("embedding") or {}
    if embedding:
        fig, axes = plt.subplots(1, 3, figsize=(15, 4))
        batches = (embedding.get("minilm_batches") or {}).get("batches", {})
        for offset, key in ((-0.2, "in_process"), (0.2, "service")):
            values = [m[key] for m in batches.values()]
            axes[0].bar([i + offset for i in range(len(values))], [v["median"] for v in values], 0.4,
                        yerr=errors(values), capsize=3, label=key.replace("_", "-"))
        axes[0].set_xticks(range(len(batches)), [f"batch {b}" for b in batches])
        axes[0].set_ylabel("texts/s")
        axes[0].set_title("MiniLM: in-process vs service")
        axes[0].legend(fontsize=7)
        conc = embedding.get("minilm_concurrency")
        if conc:
            keys = ("batching_off", "batching_on", "in_process_batched")
            values = [conc[k] for k in keys]
            axes[1].bar(range(3), [v["median"] for v in values], yerr=errors(values), capsize=3)
            axes[1].set_xticks(range(3), ["batching off", "batching on", "ceiling\n(in-process batch)"])
            axes[1].set_ylabel("texts/s")
            axes[1].set_title(f"MiniLM, {conc['clients']} single-text clients")
        clips = embedding.get("open_clip") or []
        for offset, key in ((-0.2, "in_process"), (0.2, "service")):
            values = [m[key] for m in clips]
            axes[2].bar([i + offset for i in range(len(values))], [v["median"] for v in values], 0.4,
                        yerr=errors(values), capsize=3, label=key.replace("_", "-"))
        axes[2].set_xticks(range(len(clips)), [f"{m['architecture']} ({m['device']})" for m in clips])
        axes[2].set_yscale("log")
        axes[2].set_ylabel("images/s (log)")
        axes[2].set_title("open-clip images")
        axes[2].legend(fontsize=7)
        save(fig, "embedding.png")

    scenario, cold = results.get("scenario") or {}, results.get("cold_start") or {}
    if scenario.get("runs") or cold.get("runs"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        runs = scenario.get("runs") or {}
        names = list(runs)
        summaries = [scenario_summary(runs[n]) for n in names]
        axes[0].bar(names, [s["add_s"] for s in summaries], label="add texts")
        axes[0].bar(names, [s["search_s"] for s in summaries], bottom=[s["add_s"] for s in summaries],
                    label="text searches")
        axes[0].set_ylabel("seconds")
        axes[0].set_title("end-to-end scenario (MiniLM)")
        axes[0].legend(fontsize=7)
        cold_runs = cold.get("runs") or {}
        names = list(cold_runs)
        for offset, key, label in ((-0.2, "serving_s", "ready"), (0.2, "first_search_s", "first search")):
            axes[1].bar([i + offset for i in range(len(names))],
                        [statistics.median(r[key] for r in cold_runs[n]) for n in names], 0.4, label=label)
        axes[1].set_xticks(range(len(names)), names)
        axes[1].set_ylabel("seconds from process start")
        axes[1].set_title(f"cold start, {int(cold.get('rows', 0)):,} rows")
        axes[1].legend(fontsize=7)
        save(fig, "scenario.png")
    return written


if __name__ == "__main__":  # python -m benchmarks.report DIR: re-render DIR/REPORT.md and plots from its results.json
    import json
    import sys

    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    write(json.loads((folder / "results.json").read_text()), folder)
