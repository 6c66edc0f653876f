"""The LanceDB embedding-functions walkthrough against vectorlane, through the real services."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from PIL import Image

import vectorlane
from tests.helpers import png
from vectorlane.embeddings import get_registry
from vectorlane.errors import InvalidArgumentError, NotFoundError
from vectorlane.pydantic import LanceModel, Vector

COLORS = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220), "yellow": (230, 220, 30)}


def test_text_walkthrough_with_a_server_function(db):
    func = get_registry().get("word-hash").create(dims=16)
    assert func.ndims() == 16

    class Words(LanceModel):
        id: int
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = db.create_table("words", schema=Words)
    assert db.table_names() == ["words"]
    assert table.schema.field("vector").type == pa.list_(pa.float32(), 16)
    recorded = table.embedding_functions["vector"]
    assert (recorded.function.function_name, recorded.function.settings(), recorded.source_column) == \
        ("word-hash", {"dims": 16}, "text")

    table.add([{"id": 1, "text": "red apple pie"}, {"id": 2, "text": "blue whale song"},
               {"id": 3, "text": "fast red car"}])
    table.add(pd.DataFrame({"id": [4], "text": ["green apple tart"]}))
    assert table.count_rows() == 4 and table.count_rows("id > 2") == 2

    found = table.search("apple tart").limit(2).to_pandas()
    assert list(found["id"]) == [4, 1]
    assert "_distance" in found.columns and found["_distance"].is_monotonic_increasing
    models = table.search("whale").limit(1).to_pydantic(Words)
    assert isinstance(models[0], Words) and models[0].text == "blue whale song" and len(models[0].vector) == 16

    reopened = db.open_table("words")
    assert reopened.search("red").where("id != 1").limit(5).select(["id"]).to_list()[0]["id"] == 3


def test_image_walkthrough_with_open_clip(db, images, tiny_clip):
    clip = get_registry().get("open-clip").create(**tiny_clip.settings())

    class Pets(LanceModel):
        vector: Vector(clip.ndims()) = clip.VectorField()
        image_uri: str = clip.SourceField()

        @property
        def image(self) -> Image.Image:
            return Image.open(self.image_uri)

    uris = []
    for name, color in COLORS.items():
        path = images / f"{name}.png"
        path.write_bytes(png(color, pattern=name == "blue"))
        uris.append(str(path))
    table = db.create_table("pets", schema=Pets)
    table.add([{"image_uri": u} for u in uris])
    assert table.count_rows() == 4

    assert len(table.search("dog").limit(3).to_pandas()) == 3  # text query, open-clip's text tower
    query = Image.open(images / "blue.png")
    hits = table.search(query).limit(3).to_pydantic(Pets)
    assert hits[0].image_uri == str(images / "blue.png")
    assert hits[0].image.size == query.size
    by_bytes = table.search((images / "green.png").read_bytes()).limit(1).to_list()
    assert by_bytes[0]["image_uri"].endswith("green.png")
    by_path = table.search(images / "red.png").limit(1).to_list()
    assert by_path[0]["image_uri"].endswith("red.png")


def test_open_clip_text_column_embeds_captions_as_text(db, images, tiny_clip):
    clip = get_registry().get("open-clip").create(**tiny_clip.settings())

    class Captions(LanceModel):
        caption: str = clip.SourceField(source_type="text")
        vector: Vector(clip.ndims()) = clip.VectorField()

    table = db.create_table("captions", schema=Captions)
    recorded = json.loads(table.schema.metadata[b"embedding_functions"])
    assert [(e["source_column"], e["source_type"]) for e in recorded] == [("caption", "text")]
    captions = ["a photo of a dog", "a red sports car", "/etc/passwd"]  # a path is only text here
    table.add([{"caption": c} for c in captions])
    stored = table.to_arrow().column("vector").to_pylist()
    for caption, vector in zip(captions, stored):
        query = table.search(caption).limit(1).to_list()[0]
        assert query["caption"] == caption and query["_distance"] < 1e-6
        np.testing.assert_allclose(query["vector"], vector, atol=1e-6)
    path = images / "red.png"
    path.write_bytes(png(COLORS["red"]))
    assert len(table.search(Image.open(path)).limit(2).to_list()) == 2  # image queries still work


def test_vectors_filters_versions_and_indexes(db):
    func = get_registry().get("word-hash").create(dims=8)

    class Doc(LanceModel):
        id: int
        kind: str
        text: str = func.SourceField()
        vector: Vector(8) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    rng = np.random.default_rng(0)
    given = rng.standard_normal((300, 8)).astype(np.float32)
    v1 = table.add([{"id": i, "kind": "even" if i % 2 == 0 else "odd", "text": f"doc {i}", "vector": given[i]}
                    for i in range(300)]).version
    assert table.version == v1
    top = table.search(given[7]).limit(1).to_list()[0]
    assert top["id"] == 7 and top["_distance"] == pytest.approx(0.0, abs=1e-5)
    assert all(r["kind"] == "odd" for r in table.search(given[8]).where("kind = 'odd'").limit(5).to_list())
    assert table.search(given[8]).where("kind = 'odd'", prefilter=False).limit(1).to_list() == []

    table.create_index(index_type="HNSW", metric="l2", m=16)
    assert [(i.index_type, i.columns) for i in table.list_indices()] == [("HNSW", ["vector"])]
    assert table.search(given[42]).limit(1).ef(64).to_list()[0]["id"] == 42

    deleted = table.delete("id >= 100")
    v_delete = deleted.version
    assert table.count_rows() == 100 and deleted.num_deleted_rows == 200
    table.update(where="id = 5", values={"text": "changed words"})
    assert table.search("changed words").limit(1).to_list()[0]["id"] == 5

    versions = table.list_versions()
    assert [v.version for v in versions][-1] == table.version
    table.checkout(v_delete - 1)
    assert table.count_rows() == 300
    with pytest.raises(ValueError, match="checked out"):
        table.add([{"id": 1000, "kind": "x", "text": "y"}])
    table.restore()
    assert table.count_rows() == 300 and table.version > v_delete

    result = (table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
              .execute([{"id": 0, "kind": "zero", "text": "zero"}, {"id": 500, "kind": "new", "text": "new"}]))
    assert (result.num_updated_rows, result.num_inserted_rows) == (1, 1)
    assert table.count_rows("kind = 'zero'") == 1 and table.count_rows() == 301


def test_errors_are_python_exceptions_with_the_reason(db):
    with pytest.raises(NotFoundError) as missing:
        db.open_table("nope")
    assert missing.value.reason == "TABLE_NOT_FOUND" and isinstance(missing.value, LookupError)
    func = get_registry().get("word-hash").create(dims=8)

    class Doc(LanceModel):
        text: str = func.SourceField()
        vector: Vector(8) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    with pytest.raises(InvalidArgumentError) as bad:
        table.search("x").where("text = = 'a'").to_list()
    assert bad.value.reason == "INVALID_FILTER" and isinstance(bad.value, ValueError)
    with pytest.raises(ValueError, match="not in the table's schema"):
        table.add([{"text": "a", "colour": "red"}])
    db.drop_table("docs")
    db.drop_table("docs", ignore_missing=True)
    with pytest.raises(NotFoundError):
        db.drop_table("docs")


def test_local_image_files_travel_with_the_rows(start_embed, start_store, tmp_path, tiny_clip, monkeypatch):
    """An embed service that may not read this machine's files (no image roots): the client sends the bytes
    of the files the rows name, in messages of bounded size, and the rows keep their URIs."""
    from vectorlane import _ops

    store = start_store(start_embed())  # no image_roots: local paths are refused by the embed service
    folder = tmp_path / "photos"
    folder.mkdir()
    uris = []
    for name, color in COLORS.items():
        path = folder / f"{name}.png"
        path.write_bytes(png(color, pattern=name == "blue"))
        uris.append(str(path) if name != "green" else path.as_uri())  # a path or a file:// URI
    refusing = vectorlane.connect(f"grpc://{store.target}", upload_images=False)
    clip = get_registry().get("open-clip").create(**tiny_clip.settings())

    class Pets(LanceModel):
        vector: Vector(clip.ndims()) = clip.VectorField()
        image_uri: str = clip.SourceField()

    table = refusing.create_table("pets", schema=Pets)
    with pytest.raises(InvalidArgumentError) as refused:
        table.add([{"image_uri": u} for u in uris])
    assert refused.value.reason == "IMAGE_URI_NOT_ALLOWED"
    assert table.count_rows() == 0

    monkeypatch.setattr(_ops, "IMAGE_BYTES_PER_MESSAGE", 1)  # every image in a message of its own
    db = vectorlane.connect(f"grpc://{store.target}")
    table = db.open_table("pets")
    version = table.add([{"image_uri": u} for u in uris]).version
    assert table.count_rows() == 4 and [v.version for v in table.list_versions()] == [1, version]
    assert sorted(r["image_uri"] for r in table.to_arrow().to_pylist()) == sorted(uris)
    hit = table.search(Image.open(folder / "blue.png")).limit(1).to_list()[0]
    assert hit["image_uri"] == str(folder / "blue.png")
    green = table.search((folder / "green.png").read_bytes()).limit(1).to_list()[0]
    assert green["image_uri"] == (folder / "green.png").as_uri()
    extra = folder / "another-yellow.png"
    extra.write_bytes(png(COLORS["yellow"]))
    merged = table.merge_insert("image_uri").when_not_matched_insert_all().execute(
        [{"image_uri": str(extra)}, {"image_uri": uris[0]}])
    assert (merged.num_inserted_rows, table.count_rows()) == (1, 5)
    refusing.close()
    db.close()
