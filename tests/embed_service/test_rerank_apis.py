"""The hosted providers' rerank APIs (cohere-rerank, jina-rerank, voyageai-rerank) through a real embed service,
against a local server speaking each API (`tests.provider_servers`): scores in document order whatever order
the API answers in, the key resolved from a `$var:` reference and sent only where allowed, retries, and a bad
answer refused."""

from __future__ import annotations

import grpc
import numpy as np
import pytest

from tests.helpers import error_info, spec
from tests.provider_servers import KEYS, ProviderServer, rerank_score
from vectorlane.embed.v1 import embed_service_pb2 as pb

PROVIDERS = {"cohere-rerank": ("cohere", "/v2/rerank"), "jina-rerank": ("jina", "/v1/rerank"),
             "voyageai-rerank": ("voyageai", "/v1/rerank")}
DOCUMENTS = ["the red apple", "a blue whale", "red red car", "green apple pie", "nothing here"]


@pytest.fixture(scope="module")
def upstream():
    with ProviderServer() as server:
        yield server


@pytest.fixture
def embed(start_embed, monkeypatch):
    for provider, key in KEYS.items():
        monkeypatch.setenv(f"VECTORLANE_SECRET_{provider.upper().replace('-', '_')}_KEY", key)
    return start_embed(secret_allowed_hosts=("http://127.0.0.1:*",))


def settings(function: str, upstream: ProviderServer, **extra: object) -> dict:
    provider = PROVIDERS[function][0]
    return {"name": "rerank-test", "base_url": upstream.url, "api_key": f"$var:{provider}_key", **extra}


@pytest.mark.parametrize("function", sorted(PROVIDERS))
def test_each_provider_scores_in_document_order_with_its_key(embed, upstream, function):
    reply = embed.stub.Rerank(pb.RerankRequest(function=spec(function, settings(function, upstream)),
                                               query="red apple", documents=DOCUMENTS))
    expected = [rerank_score({"red", "apple"}, d) for d in DOCUMENTS]
    np.testing.assert_allclose(reply.scores, expected, atol=1e-6)
    provider, route = PROVIDERS[function]
    sent = upstream.last(route)
    assert sent["headers"]["authorization"] == f"Bearer {KEYS[provider]}"
    assert sent["body"]["documents"] == DOCUMENTS and sent["body"]["model"] == "rerank-test"


def test_a_transient_failure_is_retried_and_a_bad_answer_refused(embed, upstream):
    upstream.fail_next(503)
    reply = embed.stub.Rerank(pb.RerankRequest(function=spec("cohere-rerank", settings("cohere-rerank", upstream)),
                                               query="red", documents=DOCUMENTS))
    assert len(reply.scores) == len(DOCUMENTS)
    with pytest.raises(grpc.RpcError) as excinfo:  # a literal key is refused before any request
        embed.stub.Rerank(pb.RerankRequest(function=spec("jina-rerank", settings("jina-rerank", upstream,
                                                                                  api_key="sk-literal")),
                                           query="red", documents=DOCUMENTS))
    assert error_info(excinfo.value).reason == "LITERAL_SECRET"
    with pytest.raises(grpc.RpcError) as excinfo:  # an endpoint the operator did not allow
        embed.stub.Rerank(pb.RerankRequest(function=spec("cohere-rerank", settings(
            "cohere-rerank", upstream, base_url="http://10.255.255.1:9")), query="red", documents=DOCUMENTS))
    assert error_info(excinfo.value).reason == "ENDPOINT_NOT_ALLOWED"
