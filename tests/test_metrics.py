"""Both services' Prometheus endpoints scraped after real traffic: RPCs by method and code, latency, rows
changed, per-table rows and versions, index builds, function-change operations, embed batches and queues."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

import vectorlane
from tests.store_service.conftest import start_store, word_hash_registered  # noqa: F401
from vectorlane.embeddings import get_registry
from vectorlane.pydantic import LanceModel, Vector


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_after_traffic(start_embed, start_store):  # noqa: F811
    embed = start_embed()
    store = start_store(embed)
    db = vectorlane.connect(f"grpc://{store.target}")
    func = get_registry().get("word-hash").create(dims=8)

    class Doc(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(8) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    table.add([{"id": i, "text": f"word{i} common"} for i in range(3)])
    table.search("common").limit(2).to_list()
    table.update(where="id = 0", values={"text": "changed"})
    table.delete("id = 2")
    table.create_index(index_type="FLAT")
    try:
        db.open_table("missing")
    except vectorlane.VectorlaneError:
        pass
    version = table.version

    ours = scrape(store.server.metrics_url())
    assert value(ours, "vectorlane_store_requests_total", method="AddRows", code="OK") == 1
    assert value(ours, "vectorlane_store_requests_total", method="GetTable", code="NOT_FOUND") == 1
    assert value(ours, "vectorlane_store_request_seconds_count", method="Search") == 1
    assert value(ours, "vectorlane_store_rows_changed_total", operation="add:insert") == 3
    assert value(ours, "vectorlane_store_rows_changed_total", operation="update:update") == 1
    assert value(ours, "vectorlane_store_rows_changed_total", operation="delete:delete") == 1
    assert value(ours, "vectorlane_store_table_rows", table="docs") == 2
    assert value(ours, "vectorlane_store_table_version", table="docs") == version
    assert value(ours, "vectorlane_store_index_builds_total", index_type="FLAT", outcome="ok") == 1
    assert value(ours, "vectorlane_store_tables") == 1

    # A function change: the rows it re-embedded, its run's end, nothing left running.
    table.alter_embedding_function("vector", get_registry().get("word-hash").create(dims=4), wait=True)
    after = scrape(store.server.metrics_url())
    assert value(after, "vectorlane_store_reembedded_rows_total", kind="change_function") == 2
    assert value(after, "vectorlane_store_operation_runs_total", kind="change_function", state="succeeded") == 1
    assert value(after, "vectorlane_store_operations_running") == 0

    theirs = scrape(embed.server.metrics_url())
    embed_calls = sum(v for (name, labels), v in theirs.items()
                      if name == "vectorlane_embed_requests_total" and ("code", "OK") in labels)
    assert embed_calls >= 3  # describe, the add's rows, the text query, the update's row
    batches = sum(v for (name, _), v in theirs.items() if name == "vectorlane_embed_batch_size_count")
    assert batches >= 3
    names = {name for name, _ in theirs}
    assert {"vectorlane_embed_queue_depth", "vectorlane_embed_batch_seconds_count"} <= names
    db.close()
