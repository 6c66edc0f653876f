"""LanceDB's maintenance calls through the client, sync and async: `optimize()`, `stats()`, `table.tags`,
`checkout(tag)`."""

from __future__ import annotations

import asyncio
import datetime

import vectorlane
from vectorlane.embeddings import get_registry
from vectorlane.pydantic import LanceModel, Vector

func = get_registry().get("word-hash").create(dims=16)


class Words(LanceModel):
    id: int
    text: str = func.SourceField()
    vector: Vector(16) = func.VectorField()  # type: ignore[valid-type]


def test_optimize_stats_and_tags_as_in_lancedb(db):
    table = db.create_table("words", schema=Words)
    for i in range(6):
        table.add([{"id": i, "text": f"word {i}"}])
    table.delete("id = 0")
    stats = table.stats()
    assert stats["num_rows"] == 5 and stats["fragment_stats"]["num_fragments"] == 5  # the emptied one left
    assert stats["fragment_stats"]["lengths"]["max"] == 1
    table.tags.create("before", 3)
    assert table.tags.list() == {"before": {"version": 3}} and table.tags.get_version("before") == 3
    done = table.optimize(cleanup_older_than=datetime.timedelta(0))
    assert done["fragments_added"] == 1 and done["versions_removed"] > 0
    assert table.stats()["fragment_stats"]["num_fragments"] == 1
    assert [v.version for v in table.list_versions()] == [3, done["version"]]
    table.checkout("before")
    assert table.count_rows() == 2 and table.version == 3
    table.checkout_latest()
    assert table.search("word 4").limit(1).to_list()[0]["id"] == 4
    table.tags.update("before", done["version"])
    table.tags.delete("before")
    assert table.tags.list() == {}


def test_the_async_client_has_them_too(services):
    async def scenario() -> None:
        async with await vectorlane.connect_async(f"grpc://{services.target}") as db:
            table = await db.create_table("words", schema=Words)
            await table.add([{"id": 1, "text": "one"}])
            await table.add([{"id": 2, "text": "two"}])
            await table.tags.create("first", 2)
            assert (await table.stats())["num_rows"] == 2
            done = await table.optimize()
            assert done["fragments_added"] == 1 and done["versions_removed"] == 0  # 7 days by default
            await table.checkout("first")
            assert await table.count_rows() == 1
            assert await table.tags.list() == {"first": {"version": 2}}

    asyncio.run(scenario())
