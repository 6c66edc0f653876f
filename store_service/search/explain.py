"""How the store runs a search, as text (LanceDB's `explain_plan` / `analyze_plan`).

A vector search runs in the store (FAISS, or an exact scan of the fragments' vectors), so its plan is the
store's own steps, in the order `vector_search.search` takes them. A full-text search runs in Lance's scanner,
so its plan is Lance's own (`LanceRead`, `MatchQuery`, the filter pushed into the scan as `full_filter` when it
is a prefilter). A hybrid search shows both halves and the fusion. Analyzing runs the search and adds what it
measured: for the vector half the rows returned and the time taken, for the full-text half Lance's metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

from store_service.indexes.catalog import IndexEntry
from store_service.search.hybrid import Fusion
from store_service.search.vector_search import VectorSearch


def vector_plan(request: VectorSearch, column: str, entry: IndexEntry | None, *, num_rows: int, fragments: int,
                table: str, version: int, verbose: bool) -> list[str]:
    """The steps of a vector search of `column` (`entry`: the column's index in the version's catalog)."""
    metric = request.metric or (entry.params.metric if entry is not None else "l2")
    wanted = request.limit + request.offset
    prefilter = bool(request.where.strip()) and not request.postfilter
    lines = [f"VectorSearch: table={table}, version={version}, column={column}, metric={metric}, "
             f"k={wanted} (limit {request.limit} + offset {request.offset})"]
    exact_because = ("bypass_vector_index" if request.exact else "no index on the column" if entry is None
                     else f"the index answers in {entry.params.metric}, not {metric}"
                     if entry.params.metric != metric else "")
    if entry is None or exact_because:
        lines.append(f"  ExactScan: rows={num_rows}, fragments={fragments} ({exact_because}); each fragment's "
                     "vectors scanned in slices side by side, the best k merged")
    else:
        params = entry.params
        shape = {"HNSW": f"m={params.m}, ef={request.options.ef or 'default'}",
                 "IVF_FLAT": f"partitions={params.num_partitions}, nprobes={request.options.nprobes or 'default'}",
                 "IVF_PQ": f"partitions={params.num_partitions}, sub_vectors={params.num_sub_vectors}, "
                           f"nprobes={request.options.nprobes or 'default'}",
                 "FLAT": "exhaustive"}.get(params.kind, "")
        fetch = wanted * max(1, request.options.refine_factor)
        lines.append(f"  FaissSearch: index={entry.name}, type={params.kind}, {shape}, k={fetch}"
                     + (", rows_allowed=prefilter" if prefilter else ""))
        if verbose:
            lines.append(f"    covers every row of the version with a vector (the index was built at version "
                         f"{entry.version} and is caught up when loaded)")
        if request.options.refine_factor:
            lines.append(f"  Refine: exact {metric} distances of the {fetch} candidates, best {wanted} kept")
    if prefilter:
        lines.append(f"  Prefilter: {request.where} (evaluated over the version's columns before the search)")
    if request.distance_lower is not None or request.distance_upper is not None:
        lines.append(f"  DistanceRange: lower={request.distance_lower}, upper={request.distance_upper}")
    if request.where.strip() and request.postfilter:
        lines.append(f"  Postfilter: {request.where} (on the k nearest rows)")
    lines.append(f"  Take: columns=[{', '.join(request.select) or 'every column'}], offset={request.offset}, "
                 f"limit={request.limit}")
    return lines


def measured(lines: list[str], rows: int, seconds: float) -> list[str]:
    """A vector plan with what running it measured, on its first line."""
    return [f"{lines[0]}, metrics=[output_rows={rows}, elapsed={seconds * 1000:.3f}ms]", *lines[1:]]


def hybrid(vector: Sequence[str], text: str, fusion: Fusion | None, reranked_by: str = "") -> str:
    ranking = (f"Rerank: merged lists scored by the embed service's {reranked_by!r}" if reranked_by
               else f"Fusion: {fusion.method}, normalize={fusion.normalize}" if fusion is not None else "")
    return "\n".join(["Vector Search Plan:", *vector, "FTS Search Plan:", text.rstrip("\n"), *([ranking] if ranking
                                                                                            else [])])
