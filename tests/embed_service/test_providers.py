"""The HTTP-API providers (cohere, jina, voyageai, gemini-text, ollama, watsonx, bedrock-text) through a real
embed service, against a local server speaking each provider's API (`tests.provider_servers`): vectors in
input order, the key resolved from a `$var:` reference and sent the provider's way, dimensions, retries, and
each failure's status."""

from __future__ import annotations

import logging

import grpc
import numpy as np
import pytest

from tests.helpers import error_info, png, spec, texts, vectors
from tests.openai_server import text_vector
from tests.provider_servers import AWS, IAM_TOKEN, KEYS, ProviderServer, image_vector
from vectorlane.embed.v1 import embed_service_pb2 as pb

DIMS = 16


@pytest.fixture(scope="module")
def upstream():
    with ProviderServer(dims=DIMS) as server:
        yield server


@pytest.fixture
def embed(start_embed, monkeypatch):
    for provider, key in KEYS.items():
        monkeypatch.setenv(f"VECTORLANE_SECRET_{provider.upper().replace('-', '_')}_KEY", key)
    monkeypatch.setenv("VECTORLANE_SECRET_AWS_KEY_ID", AWS["key_id"])
    monkeypatch.setenv("VECTORLANE_SECRET_AWS_SECRET", AWS["secret"])
    return start_embed(secret_allowed_hosts=("http://127.0.0.1:*",))


def settings(provider: str, upstream: ProviderServer, **extra: object) -> dict:
    """Each provider's settings for the local server, keys as references only."""
    key = f"$var:{provider.replace('-', '_')}_key"
    url = upstream.url
    by_provider = {
        "cohere": {"name": "embed-test", "base_url": url, "api_key": key},
        "jina": {"name": "jina-embeddings-test", "base_url": url, "api_key": key},
        "voyageai": {"name": "voyage-test", "base_url": url, "api_key": key},
        "gemini-text": {"dim": DIMS, "base_url": url, "api_key": key},
        "ollama": {"name": "nomic-embed-text", "host": url},
        "watsonx": {"name": "ibm/test-model", "url": url, "iam_url": url, "api_key": key, "project_id": "p-1"},
        "bedrock-text": {"name": "amazon.titan-test", "endpoint_url": url, "aws_access_key_id": "$var:aws_key_id",
                         "aws_secret_access_key": "$var:aws_secret"},
    }
    return {**by_provider[provider], **extra}


PROVIDERS = ["cohere", "jina", "voyageai", "gemini-text", "ollama", "watsonx", "bedrock-text"]
CREDENTIAL_PATHS = {"cohere": "/v2/embed", "jina": "/v1/embeddings", "voyageai": "/v1/embeddings",
                    "gemini-text": ":batchEmbedContents", "ollama": "/api/embed", "watsonx": "/ml/v1/text/embeddings",
                    "bedrock-text": "/invoke"}


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_provider_embeds_in_input_order_with_its_credentials(embed, upstream, provider):
    words = ["alpha", "beta", "gamma"]
    response = embed.stub.Embed(pb.EmbedRequest(function=spec(provider, settings(provider, upstream)),
                                                inputs=texts(*words)))
    np.testing.assert_allclose(vectors(response), [text_vector(w, DIMS) for w in words], atol=1e-6)
    sent = upstream.last(CREDENTIAL_PATHS[provider])
    headers = sent["headers"]
    if provider in ("cohere", "jina", "voyageai"):
        assert headers["authorization"] == f"Bearer {KEYS[provider]}"  # the reference, resolved server-side
    elif provider == "gemini-text":
        assert headers["x-goog-api-key"] == KEYS[provider] and "authorization" not in headers
    elif provider == "watsonx":
        assert headers["authorization"] == f"Bearer {IAM_TOKEN}"
        assert upstream.last("/identity/token")["form"]["apikey"] == [KEYS["watsonx"]]
    elif provider == "bedrock-text":
        assert headers["authorization"].startswith(f"AWS4-HMAC-SHA256 Credential={AWS['key_id']}/")
    else:
        assert "authorization" not in headers  # Ollama takes no key


@pytest.mark.parametrize("provider", PROVIDERS)
def test_describe_gives_dimensions_and_keeps_references(embed, upstream, provider):
    described = embed.stub.DescribeFunction(pb.DescribeFunctionRequest(
        function=spec(provider, settings(provider, upstream))))
    assert described.dimensions == DIMS
    for name in described.secret_settings:
        value = described.settings[name]
        assert value is None or value == "" or value.startswith("$var:"), (name, value)


def test_rows_and_queries_get_their_input_types(embed, upstream):
    function = spec("cohere", settings("cohere", upstream))
    embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("a row")))
    assert upstream.last("/v2/embed")["body"]["input_type"] == "search_document"
    embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("a query"), purpose=pb.INPUT_PURPOSE_QUERY))
    assert upstream.last("/v2/embed")["body"]["input_type"] == "search_query"
    function = spec("gemini-text", settings("gemini-text", upstream))
    embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("a row")))
    request = upstream.last(":batchEmbedContents")["body"]["requests"][0]
    assert request["taskType"] == "RETRIEVAL_DOCUMENT" and request["outputDimensionality"] == DIMS
    assert request["title"]  # LanceDB gives a document a title


@pytest.mark.parametrize("provider", ["jina", "voyageai"])
def test_multimodal_models_embed_images(embed, upstream, provider):
    name = "jina-clip-v1" if provider == "jina" else "voyage-multimodal-3"
    function = spec(provider, settings(provider, upstream, name=name))
    response = embed.stub.Embed(pb.EmbedRequest(function=function, inputs=[
        pb.EmbedInput(text="a red square"), pb.EmbedInput(image_bytes=png((255, 0, 0)))]))
    got = vectors(response)
    np.testing.assert_allclose(got[0], text_vector("a red square", got.shape[1]), atol=1e-6)
    sent = upstream.requests[-1]["body"]  # texts and images go in calls of their own, images last
    image = (sent["input"][0]["image"] if provider == "jina"
             else sent["inputs"][0]["content"][0]["image_base64"])
    np.testing.assert_allclose(got[1], image_vector(image, got.shape[1]), atol=1e-6)


@pytest.mark.parametrize("provider", ["jina", "voyageai"])
def test_text_models_refuse_images_before_calling(embed, upstream, provider):
    before = len(upstream.requests)
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.Embed(pb.EmbedRequest(function=spec(provider, settings(provider, upstream)),
                                         inputs=[pb.EmbedInput(image_bytes=png((0, 0, 255)))]))
    assert error_info(caught.value).reason == "UNSUPPORTED_MODALITY"
    assert "image" not in str([r["body"] for r in upstream.requests[before:]])  # at most the dimension probe


def test_a_rate_limit_is_retried_with_backoff(embed, upstream, caplog):
    upstream.fail_next(429, 2)
    with caplog.at_level(logging.WARNING, logger="embed_service.functions.base"):
        response = embed.stub.Embed(pb.EmbedRequest(function=spec("cohere", settings("cohere", upstream)),
                                                    inputs=texts("alpha")))
    assert len(response.embeddings) == 1
    assert sum("retrying in" in r.getMessage() for r in caplog.records) == 2


@pytest.mark.parametrize(("status", "code", "reason"), [
    (401, grpc.StatusCode.FAILED_PRECONDITION, "UPSTREAM_AUTH_FAILED"),
    (400, grpc.StatusCode.INVALID_ARGUMENT, "UPSTREAM_BAD_REQUEST"),
    (503, grpc.StatusCode.UNAVAILABLE, "UPSTREAM_UNAVAILABLE"),
])
def test_failures_get_their_status(embed, upstream, status, code, reason):
    upstream.fail_next(status, 10)
    try:
        with pytest.raises(grpc.RpcError) as caught:
            embed.stub.Embed(pb.EmbedRequest(function=spec("voyageai", settings("voyageai", upstream, max_retries=1)),
                                             inputs=texts("alpha")))
    finally:
        upstream.recover()
    assert caught.value.code() == code and error_info(caught.value).reason == reason


def test_a_wrong_key_is_an_auth_failure_and_the_key_is_not_echoed(embed, upstream, monkeypatch):
    monkeypatch.setenv("VECTORLANE_SECRET_COHERE_KEY", "co-wrong-key")
    function = spec("cohere", settings("cohere", upstream, timeout=5.0))
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("alpha")))
    assert error_info(caught.value).reason == "UPSTREAM_AUTH_FAILED"
    assert "co-wrong-key" not in caught.value.details()


def test_bedrock_signs_each_request_and_cohere_models_batch(embed, upstream):
    function = spec("bedrock-text", settings("bedrock-text", upstream, name="cohere.embed-english-v3"))
    response = embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("one", "two")))
    np.testing.assert_allclose(vectors(response), [text_vector(t, 1024) for t in ("one", "two")], atol=1e-6)
    sent = upstream.last("/invoke")
    assert sent["path"] == "/model/cohere.embed-english-v3/invoke"
    assert sent["body"] == {"texts": ["one", "two"], "input_type": "search_document"}
    titan = spec("bedrock-text", settings("bedrock-text", upstream, name="amazon.titan-embed-text-v2:0"))
    embed.stub.Embed(pb.EmbedRequest(function=titan, inputs=texts("three")))
    assert upstream.last("/invoke")["path"] == "/model/amazon.titan-embed-text-v2%3A0/invoke"  # signed as encoded


def test_a_bedrock_signature_from_other_credentials_is_refused(embed, upstream, monkeypatch):
    monkeypatch.setenv("VECTORLANE_SECRET_AWS_SECRET", "not-the-secret")
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.Embed(pb.EmbedRequest(function=spec("bedrock-text", settings("bedrock-text", upstream)),
                                         inputs=texts("alpha")))
    assert error_info(caught.value).reason == "UPSTREAM_AUTH_FAILED"
    assert "not-the-secret" not in caught.value.details()


def test_vectors_of_another_length_than_the_model_gives_are_a_bad_answer(embed, upstream):
    """jina-embeddings-v3 gives 1024 dimensions; an endpoint answering 16 is not serving that model."""
    upstream.wrong_dims = 16
    try:
        with pytest.raises(grpc.RpcError) as caught:
            embed.stub.Embed(pb.EmbedRequest(function=spec("jina", settings("jina", upstream,
                                                                            name="jina-embeddings-v3")),
                                             inputs=texts("alpha")))
    finally:
        upstream.wrong_dims = 0
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert error_info(caught.value).reason == "UPSTREAM_BAD_RESPONSE"


def test_watsonx_needs_one_project_or_space(embed, upstream):
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.DescribeFunction(pb.DescribeFunctionRequest(function=spec("watsonx", settings(
            "watsonx", upstream, space_id="s-1"))))
    assert error_info(caught.value).reason == "INVALID_SETTING"


@pytest.mark.parametrize("provider", ["cohere", "voyageai", "gemini-text", "jina", "watsonx", "bedrock-text"])
def test_keys_go_only_to_endpoints_the_operator_allowed(start_embed, upstream, monkeypatch, provider):
    for name, key in KEYS.items():
        monkeypatch.setenv(f"VECTORLANE_SECRET_{name.upper().replace('-', '_')}_KEY", key)
    monkeypatch.setenv("VECTORLANE_SECRET_AWS_KEY_ID", AWS["key_id"])
    monkeypatch.setenv("VECTORLANE_SECRET_AWS_SECRET", AWS["secret"])
    embed = start_embed()  # the default: each provider's own API only
    before = len(upstream.requests)
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.Embed(pb.EmbedRequest(function=spec(provider, settings(provider, upstream)),
                                         inputs=texts("alpha")))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(caught.value).reason == "SECRET_HOST_NOT_ALLOWED"
    assert len(upstream.requests) == before


@pytest.mark.parametrize(("provider", "setting", "value", "reason"), [
    ("cohere", "api_key", "co-literal-key", "LITERAL_SECRET"),
    ("gemini-text", "name", "../../v1/files", "INVALID_SETTING"),
    ("bedrock-text", "name", "a/b", "INVALID_SETTING"),
    ("bedrock-text", "region", "us-east-1.evil.com/x", "INVALID_SETTING"),
    ("bedrock-text", "profile_name", "prod", "UNKNOWN_SETTING"),
    ("ollama", "host", "file:///etc/passwd", "INVALID_SETTING"),
    ("ollama", "ollama_client_kwargs", {"headers": {"x": "y"}}, "INVALID_SETTING"),
    ("voyageai", "base_url", "https://user:pw@api.voyageai.com", "LITERAL_SECRET"),
])
def test_hostile_settings_are_refused(embed, upstream, provider, setting, value, reason):
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.DescribeFunction(pb.DescribeFunctionRequest(function=spec(
            provider, settings(provider, upstream, **{setting: value}))))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == reason


@pytest.mark.parametrize(("provider", "setting", "url"), [
    ("ollama", "host", "http://10.1.2.3:8080"), ("openai", "base_url", "http://169.254.169.254/latest/v1"),
    ("cohere", "base_url", "https://internal.example:8443"), ("watsonx", "iam_url", "http://10.0.0.5:80"),
])
def test_functions_call_only_the_endpoints_the_operator_allowed(embed, upstream, provider, setting, url):
    """A caller cannot make the service POST into the cluster (no key involved, no answer needed)."""
    settings_of = settings(provider, upstream) if provider != "openai" else {"name": "m", "dim": 4}
    before = len(upstream.requests)
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.Embed(pb.EmbedRequest(function=spec(provider, {**settings_of, setting: url}), inputs=texts("x")))
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(caught.value).reason == "ENDPOINT_NOT_ALLOWED"
    assert len(upstream.requests) == before


@pytest.mark.parametrize("provider", ["openai", "cohere"])
@pytest.mark.parametrize("spelling", ["http://10.0.0.5\\@{host}/v1",  # WHATWG parsers read host 10.0.0.5
                                      "http://{host}/v1 ", "http://{host}\t/v1", "http://{host}/v1\x00"])
def test_a_url_clients_could_read_two_ways_is_no_endpoint(embed, upstream, provider, spelling):
    """Parser differentials: the allow-lists judge the URL the HTTP client would call, or refuse it."""
    url = spelling.format(host=upstream.url.split("://")[1].split("/")[0])
    settings_of = settings(provider, upstream) if provider != "openai" else {"name": "m", "dim": 4}
    before = len(upstream.requests)
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.Embed(pb.EmbedRequest(function=spec(provider, {**settings_of, "base_url": url}),
                                         inputs=texts("x")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(caught.value).reason == "INVALID_SETTING"
    assert len(upstream.requests) == before
