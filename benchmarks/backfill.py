"""Re-embedding a table in the background: rows/s of a MiniLM backfill (`add_embedding_function` on a table of
texts, timed from the call to the operation's SUCCEEDED: reading the source column, embedding through the embed
service, the chunk files, the switch's rewrite and commit) vs `SentenceTransformer.encode` of the same texts in
this process, on the same device. Every run embeds texts neither side has seen, so the embedding cache gives the
backfill nothing; the services take turns with the in-process model, never running beside it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import Service, rate, sentences, summary
from benchmarks.embedding import device, minilm_model

ENCODE_BATCH = 64  # the sentence-transformers function's default batch_size, used by both sides


def _table_of_texts(db: Any, name: str, texts: list[str]) -> Any:
    import pyarrow as pa

    table = db.create_table(name, schema=pa.schema([("id", pa.int64()), ("text", pa.string())]))
    table.add(pa.table({"id": list(range(len(texts))), "text": texts}))
    return table


def minilm_backfill(rows: int, repeats: int, work: str) -> dict[str, Any]:
    import vectorlane
    from vectorlane.embeddings import get_registry

    model = minilm_model()
    embed = Service.start("embed_service")
    store = Service.start("store_service", VECTORLANE_DATA_DIR=str(Path(work) / "backfill"),
                          VECTORLANE_EMBED_ADDRESS=embed.target)
    try:
        db = vectorlane.connect(store.target, timeout=3600)
        function = get_registry().get("sentence-transformers").create(device=device())
        warm = _table_of_texts(db, "warm", sentences(256, seed=40))  # both models load before any timing
        warm.add_embedding_function("vector", function, "text", wait=True)
        model.encode(sentences(256, seed=41), batch_size=ENCODE_BATCH, normalize_embeddings=True)
        local, backfill, reported = [], [], []
        for run in range(repeats):
            texts = sentences(rows, seed=50 + run)
            start = time.perf_counter()
            model.encode(texts, batch_size=ENCODE_BATCH, normalize_embeddings=True, convert_to_numpy=True)
            local.append(rate(rows, time.perf_counter() - start))
            table = _table_of_texts(db, f"docs{run}", texts)
            start = time.perf_counter()
            operation = table.add_embedding_function("vector", function, "text", wait=True)
            backfill.append(rate(rows, time.perf_counter() - start))
            assert operation.state == "SUCCEEDED" and operation.rows_done == rows, operation
            reported.append(operation.rows_per_second)
            assert table.count_rows() == rows and len(table.search(texts[0]).limit(1).to_list()) == 1
        db.close()
        return {"device": device(), "rows": rows, "in_process": summary(local), "backfill": summary(backfill),
                "reported_rows_per_s": summary(reported)}
    finally:
        store.stop()
        embed.stop()
