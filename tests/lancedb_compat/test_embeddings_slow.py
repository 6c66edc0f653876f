"""What LanceDB's `test_embeddings_slow.py` and `docs/test_embeddings_optional.py` promise with real models:
two columns of one hosted text model (the real MiniLM), the query vector a function gives matching the
search, the openai function (against a local OpenAI-compatible server), open-clip (the tiny checkpoint)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.helpers import png
from vectorlane.embeddings import get_registry
from vectorlane.pydantic import LanceModel, Vector

pytestmark = pytest.mark.slow
LINES = ["to be or not to be", "that is the question", "for whether tis nobler", "in the mind to suffer",
         "the slings and arrows", "of outrageous fortune", "or to take arms"]
WORDS = ["hello world", "goodbye world", "fizz", "buzz", "foo", "bar", "baz"]


def test_two_columns_of_one_hosted_model(mem_db):
    func = get_registry().get("sentence-transformers").create(max_retries=0)
    func2 = get_registry().get("sentence-transformers").create(max_retries=0)

    class Words(LanceModel):
        text: str = func.SourceField()
        text2: str = func2.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()
        vector2: Vector(func2.ndims()) = func2.VectorField()

    table = mem_db.create_table("words", schema=Words)
    table.add(pd.DataFrame({"text": WORDS, "text2": LINES}))
    actual = table.search("greeting", vector_column_name="vector").limit(1).to_pydantic(Words)[0]
    query_vector = func.compute_query_embeddings("greeting")[0]
    expected = table.search(query_vector, vector_column_name="vector").limit(1).to_pydantic(Words)[0]
    assert actual.text == expected.text == "hello world"
    assert not np.allclose(actual.vector, actual.vector2)
    other = table.search("greeting", vector_column_name="vector2").limit(1).to_pydantic(Words)[0]
    assert other.text != "hello world"


def test_source_embeddings_of_a_hosted_model_are_what_the_table_stores(mem_db):
    func = get_registry().get("sentence-transformers").create()

    class Words(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = mem_db.create_table("words", schema=Words)
    table.add([{"text": t} for t in WORDS[:3]])
    stored = {r["text"]: r["vector"] for r in table.to_arrow().to_pylist()}
    computed = func.compute_source_embeddings(WORDS[:3])
    for text, vector in zip(WORDS[:3], computed):
        assert np.allclose(stored[text], vector, atol=1e-5)


def test_the_openai_walkthrough(mem_db, services):
    func = get_registry().get("openai").create(name="text-embedding-ada-002", base_url=services.openai.base_url,
                                               api_key="$var:compat_openai_key", dim=16)

    class Words(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = mem_db.create_table("words", schema=Words, mode="overwrite")
    table.add([{"text": "hello world"}, {"text": "goodbye world"}])
    actual = table.search("greetings").limit(1).to_pydantic(Words)[0]
    assert actual.text in ("hello world", "goodbye world")


def test_the_openai_walkthrough_on_an_async_connection(services):
    import asyncio

    import vectorlane

    async def scenario() -> str:
        db = await vectorlane.connect_async(services.target)
        func = get_registry().get("openai").create(name="text-embedding-ada-002", dim=16,
                                                   base_url=services.openai.base_url, api_key="$var:compat_openai_key")

        class Words(LanceModel):
            text: str = func.SourceField()
            vector: Vector(func.ndims()) = func.VectorField()

        table = await db.create_table("async_words", schema=Words, mode="overwrite")
        await table.add([{"text": "hello world"}, {"text": "goodbye world"}])
        found = await table.search("hello world").limit(1).to_pydantic(Words)
        await db.close()
        return found[0].text

    assert asyncio.run(scenario()) == "hello world"


def test_a_runtime_choice_with_a_default_resolves_in_the_client():
    registry = get_registry()
    registry.set_var("api_key", "sk-...")
    func = registry.get("openai").create(api_key="$var:api_key")
    assert func.settings()["api_key"] == "$var:api_key"  # a secret: the embed service resolves it
    assert registry.get("sentence-transformers").create(device="$var:device:cpu").device == "cpu"
    registry.set_var("device", "cuda")
    assert registry.get("sentence-transformers").create(device="$var:device:cpu").device == "cuda"


def test_open_clip_searches_images_by_text_and_by_image(mem_db, tiny_clip, tmp_path):
    func = get_registry().get("open-clip").create(max_retries=0, **tiny_clip.settings())

    class Images(LanceModel):
        label: str
        image_bytes: bytes = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    colors = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (30, 40, 220)}
    table = mem_db.create_table("images", schema=Images)
    table.add(pd.DataFrame({"label": list(colors), "image_bytes": [png(c) for c in colors.values()]}))
    by_text = table.search("a red square").limit(1).to_pydantic(Images)[0]
    text_vector = func.compute_query_embeddings("a red square")[0]
    assert table.search(text_vector).limit(1).to_pydantic(Images)[0].label == by_text.label
    image = Image.new("RGB", (64, 64), colors["green"])
    assert table.search(image).limit(1).to_pydantic(Images)[0].label == "green"
    image_vector = func.compute_query_embeddings(image)[0]
    assert np.allclose(table.search(image).limit(1).to_arrow()["_distance"][0].as_py(),
                       table.search(image_vector).limit(1).to_arrow()["_distance"][0].as_py(), atol=1e-5)


@pytest.mark.skip(reason="LanceDB's open-clip, siglip, imagebind and colpali tests download images and "
                         "pretrained weights from the network; the open-clip path runs above on a local checkpoint")
def test_pretrained_image_models():
    """LanceDB's test_openclip / test_siglip / test_imagebind / test_colpali."""


def provider_settings(provider: str, services) -> dict:  # noqa: ANN001 - the suite's services
    """LanceDB's settings for each provider, pointed at the local server speaking its API; keys only as
    references to the embed service's secrets."""
    url = services.providers.url
    return {
        "cohere": {"name": "embed-english-v3.0", "base_url": url, "api_key": "$var:cohere_key"},
        "gemini-text": {"base_url": url, "api_key": "$var:gemini_text_key"},
        "bedrock-text": {"name": "amazon.titan-embed-text-v2:0", "endpoint_url": url,
                         "aws_access_key_id": "$var:aws_key_id", "aws_secret_access_key": "$var:aws_secret"},
        "watsonx": {"name": "ibm/slate-30m-english-rtrvr-v2", "url": url, "iam_url": url,
                    "api_key": "$var:watsonx_key", "project_id": "p-1"},
        "voyageai": {"name": "voyage-3.5-lite", "base_url": url, "api_key": "$var:voyageai_key"},
        "jina": {"name": "jina-embeddings-v2-small-en", "base_url": url, "api_key": "$var:jina_key"},
        "ollama": {"name": "nomic-embed-text", "host": url},
        "huggingface": {"name": "model"},  # the MiniLM folder under the embed service's model roots
    }[provider]


@pytest.mark.parametrize("provider", ["cohere", "gemini-text", "bedrock-text", "watsonx", "voyageai", "jina",
                                      "ollama", "huggingface"])
def test_each_providers_walkthrough(mem_db, services, provider):
    """LanceDB's test_cohere_embedding_function / test_gemini_embedding / test_bedrock_embedding /
    test_watsonx_embedding / test_voyageai_embedding_function / test_ollama_embedding and the huggingface
    case of test_basic_text_embeddings: the model's dimensions, rows embedded on add, a text search."""
    model = get_registry().get(provider).create(max_retries=0, **provider_settings(provider, services))

    class TextModel(LanceModel):
        text: str = model.SourceField()
        vector: Vector(model.ndims()) = model.VectorField()

    table = mem_db.create_table("test", schema=TextModel, mode="overwrite")
    table.add(pd.DataFrame({"text": ["hello world", "goodbye world"]}))
    assert len(table.to_pandas()["vector"][0]) == model.ndims()
    assert table.search("hello world").limit(1).to_pandas()["text"][0] == "hello world"
    recorded = table.embedding_functions["vector"].function.safe_model_dump()
    assert "aws-test-secret" not in str(recorded) and all(
        v.startswith("$var:") for k, v in recorded.items() if "key" in k)
