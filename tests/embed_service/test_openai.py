"""openai against a local OpenAI-compatible server: the service speaks the API through the HTTP path every
provider shares (`http_api`), and the same server answers the real `openai` client alike."""

from __future__ import annotations

import json
import logging

import grpc
import numpy as np
import pytest

from tests.helpers import error_info, spec, texts, vectors
from tests.openai_server import OpenAICompatibleServer, text_vector
from vectorlane.embed.v1 import embed_service_pb2 as pb


@pytest.fixture
def upstream():
    with OpenAICompatibleServer(dims=16) as server:
        yield server


@pytest.fixture
def embed_with_key(start_embed, monkeypatch):
    monkeypatch.setenv("VECTORLANE_SECRET_TEST_KEY", "sk-test-secret-123")
    return start_embed(secret_allowed_hosts=("http://127.0.0.1:*",))


def request(upstream, *values, **settings):
    settings = {"name": "text-embedding-3-small", "base_url": upstream.base_url, "api_key": "$var:test_key",
                "dim": 16, **settings}
    settings = {k: v for k, v in settings.items() if v is not None}
    return pb.EmbedRequest(function=spec("openai", settings), inputs=texts(*values))


def test_embeds_through_the_endpoint_in_input_order(embed_with_key, upstream):
    response = embed_with_key.stub.Embed(request(upstream, "alpha", "beta", "gamma"))
    np.testing.assert_allclose(vectors(response), [text_vector(t, 16) for t in ("alpha", "beta", "gamma")],
                               atol=1e-6)
    sent = upstream.requests[-1]
    assert sent["body"]["input"] == ["alpha", "beta", "gamma"] and sent["body"]["dimensions"] == 16
    assert sent["authorization"] == "Bearer sk-test-secret-123"  # the reference was resolved server-side


def test_describe_learns_dimensions_of_an_unknown_model_by_asking_once(embed_with_key, upstream):
    req = pb.DescribeFunctionRequest(function=spec("openai", name="my-local-model", base_url=upstream.base_url,
                                                   api_key="$var:test_key"))
    described = embed_with_key.stub.DescribeFunction(req)
    assert described.dimensions == 16 and list(described.secret_settings) == ["api_key"]
    assert described.settings["api_key"] == "$var:test_key"  # the reference, never the key


def test_rate_limit_is_retried_and_logged(embed_with_key, upstream, caplog):
    upstream.fail_next(429, 2)
    with caplog.at_level(logging.WARNING, logger="embed_service.functions.base"):
        response = embed_with_key.stub.Embed(request(upstream, "alpha"))
    assert len(response.embeddings) == 1
    assert len(upstream.requests) == 3
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and "attempt 1 of 8" in retries[0] and "attempt 2 of 8" in retries[1]
    assert "HTTP 429" in retries[0]
    assert embed_with_key.server.metrics.value("vectorlane_embed_retries_total", {"function": "openai"}) == 2


def test_server_errors_beyond_max_retries_are_unavailable(embed_with_key, upstream):
    upstream.fail_next(500, 10)
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(request(upstream, "alpha", max_retries=3))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    info = error_info(err.value)
    assert info.reason == "UPSTREAM_UNAVAILABLE" and info.metadata["function"] == "openai"
    assert "gave up after 4 attempt" in err.value.details() and "HTTP 500" in err.value.details()
    assert len(upstream.requests) == 4


def test_max_retries_zero_fails_on_the_first_error(embed_with_key, upstream):
    upstream.fail_next(503, 5)
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(request(upstream, "alpha", max_retries=0))
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert len(upstream.requests) == 1


def test_unauthorized_is_not_retried(embed_with_key, upstream):
    upstream.fail_next(401, 5)
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(request(upstream, "alpha"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error_info(err.value).reason == "UPSTREAM_AUTH_FAILED"
    assert len(upstream.requests) == 1


def test_bad_request_is_not_retried(embed_with_key, upstream):
    upstream.fail_next(400, 5)
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(request(upstream, "alpha"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err.value).reason == "UPSTREAM_BAD_REQUEST"
    assert len(upstream.requests) == 1


def test_connection_refused_is_retried_then_unavailable(embed_with_key):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    req = pb.EmbedRequest(function=spec("openai", name="m", dim=8, base_url=f"http://127.0.0.1:{port}/v1",
                                        max_retries=2), inputs=texts("alpha"))
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(req)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "gave up after 3 attempt" in err.value.details()


def test_literal_api_key_is_refused(embed, upstream):
    with pytest.raises(grpc.RpcError) as err:
        embed.stub.Embed(request(upstream, "alpha", api_key="sk-literal"))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(err.value).reason == "LITERAL_SECRET"
    assert "sk-literal" not in err.value.details()
    assert upstream.requests == []


def test_missing_secret_is_a_failed_precondition(embed, upstream):
    with pytest.raises(grpc.RpcError) as err:
        embed.stub.Embed(request(upstream, "alpha", api_key="$var:not_configured"))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(err.value)
    assert info.reason == "SECRET_NOT_FOUND" and info.metadata["secret"] == "not_configured"


def test_secrets_go_only_to_hosts_the_operator_allowed(start_embed, upstream, monkeypatch):
    monkeypatch.setenv("VECTORLANE_SECRET_TEST_KEY", "sk-test-secret-123")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-service-own-key")
    embed = start_embed()  # default: secrets only to api.openai.com
    with pytest.raises(grpc.RpcError) as err:
        embed.stub.Embed(request(upstream, "alpha"))
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert error_info(err.value).reason == "SECRET_HOST_NOT_ALLOWED"
    assert upstream.requests == []
    # Without a key of the caller's, the service's own OPENAI_API_KEY stays home too.
    embed.stub.Embed(request(upstream, "alpha", api_key=None))
    assert upstream.requests[-1]["authorization"] == ""


@pytest.mark.parametrize("allowed", [("localhost",), ("127.0.0.1",), ("127.0.0.1:443",), ("https://127.0.0.1:*",),
                                     ("*",), ("http://127.0.0.1:1",)])
def test_an_allowed_host_does_not_admit_plain_http_or_another_port(start_embed, upstream, monkeypatch, allowed):
    """Found by the security review: with `localhost` allowed, `http://localhost:<any port>` got the key."""
    monkeypatch.setenv("VECTORLANE_SECRET_TEST_KEY", "sk-test-secret-123")
    embed = start_embed(secret_allowed_hosts=allowed,
                        endpoint_allowed_hosts=("http://127.0.0.1:*", "http://localhost:*"))  # the key rule, alone
    for base_url in (upstream.base_url, upstream.base_url.replace("127.0.0.1", "localhost")):
        with pytest.raises(grpc.RpcError) as err:
            embed.stub.Embed(request(upstream, "alpha", base_url=base_url))
        assert error_info(err.value).reason == "SECRET_HOST_NOT_ALLOWED", allowed
    assert upstream.requests == []


def test_an_entry_that_says_http_and_its_port_admits_exactly_that(start_embed, upstream, monkeypatch):
    monkeypatch.setenv("VECTORLANE_SECRET_TEST_KEY", "sk-test-secret-123")
    port = int(upstream.base_url.rsplit(":", 1)[1].split("/")[0])
    embed = start_embed(secret_allowed_hosts=(f"http://127.0.0.1:{port}",))
    embed.stub.Embed(request(upstream, "alpha"))
    assert upstream.requests[-1]["authorization"] == "Bearer sk-test-secret-123"


@pytest.mark.parametrize("base_url", ["http://user:sk-hidden@127.0.0.1:9/v1", "http://sk-hidden@127.0.0.1:9/v1",
                                      "http://127.0.0.1:9/v1?api_key=sk-hidden", "http://127.0.0.1:9/v1?key=sk-hidden"])
def test_a_base_url_carrying_credentials_is_a_literal_secret(embed_with_key, upstream, base_url):
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(request(upstream, "alpha", base_url=base_url, api_key=None))
    assert error_info(err.value).reason == "LITERAL_SECRET" and "sk-hidden" not in err.value.details()


def test_malformed_secret_host_entries_stop_the_service_from_starting():
    from embed_service.config import EmbedConfig

    for entry in ("ftp://host", "host:99999", "host:port", "user@host", "http://"):
        with pytest.raises(SystemExit):
            EmbedConfig.from_args(["--secret-allowed-hosts", entry], environ={})


def test_the_real_openai_client_reads_the_same_vectors_from_the_test_server(embed_with_key, upstream):
    """The local server is the API as the SDK knows it: what the service embeds equals what `openai` reads."""
    import openai

    client = openai.OpenAI(api_key="unused", base_url=upstream.base_url, max_retries=0)
    answer = client.embeddings.create(input=["alpha", "beta"], model="text-embedding-3-small", dimensions=16)
    through_sdk = [d.embedding for d in sorted(answer.data, key=lambda d: d.index)]
    through_service = vectors(embed_with_key.stub.Embed(request(upstream, "alpha", "beta")))
    np.testing.assert_allclose(through_service, through_sdk, atol=1e-6)


def test_a_redirect_is_not_followed(start_embed, upstream, monkeypatch):
    """Found by the hostile pass: an allowed base_url answering 307 sent the caller's texts (and the key) to a
    listener the operator never allowed, and its answer came back as the embedding."""
    monkeypatch.setenv("VECTORLANE_SECRET_TEST_KEY", "sk-test-secret-123")
    with OpenAICompatibleServer(dims=16) as elsewhere:
        embed = start_embed(secret_allowed_hosts=("http://127.0.0.1:*",))
        upstream.redirect = f"{elsewhere.base_url}/embeddings"
        with pytest.raises(grpc.RpcError) as err:
            embed.stub.Embed(request(upstream, "alpha"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert error_info(err.value).reason == "UPSTREAM_BAD_REQUEST" and "307" in err.value.details()
        assert elsewhere.requests == [] and len(upstream.requests) == 1


@pytest.mark.parametrize("status, reason", [(400, "UPSTREAM_BAD_REQUEST"), (401, "UPSTREAM_AUTH_FAILED"),
                                            (500, "UPSTREAM_UNAVAILABLE")])
def test_an_endpoint_quoting_the_key_never_hands_it_back(embed_with_key, upstream, caplog, status, reason):
    """Found by the hostile pass: an endpoint that reflects request headers returned `AUTHZ=Bearer <the resolved
    secret>` to a caller who had sent only `$var:test_key`. Errors and logs are redacted in one place."""
    upstream.echo_headers = True
    upstream.fail_next(status, 2)
    with caplog.at_level(logging.INFO):
        with pytest.raises(grpc.RpcError) as err:
            embed_with_key.stub.Embed(request(upstream, "alpha", max_retries=1))
    assert error_info(err.value).reason == reason
    assert "AUTHORIZATION=" in err.value.details()  # the endpoint's words arrive...
    assert "sk-test-secret-123" not in err.value.details()  # ...without the key, in any spelling
    assert "sk%2Dtest" not in err.value.details() and "as a URL" in err.value.details()
    assert "sk-test-secret-123" not in str(error_info(err.value).metadata)
    assert not [r for r in caplog.records if "sk-test-secret-123" in r.getMessage() + (r.exc_text or "")]


def test_key_shaped_text_from_an_endpoint_is_redacted(embed_with_key, upstream):
    """A credential the service never resolved (another tenant's key an endpoint leaks) is cut out too."""
    upstream.fail_next(400)
    upstream.answer_text = "bad input; the key was sk-proj-ABCDEFGHIJKLMNOPQRSTUVWXYZ012345 and token=abcdef123456"
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(request(upstream, "alpha"))
    details = err.value.details()
    assert "bad input" in details and "ABCDEFGHIJKLMNOP" not in details and "abcdef123456" not in details


@pytest.mark.parametrize("status, body, says", [
    (200, b"[" * 200_000 + b"]" * 200_000, "not JSON"),  # was INTERNAL: Python's parser recursed too deep
    (200, json.dumps({"data": [{"index": 0, "embedding": [0.5] * 16}] * 1 + [
        {"index": i, "embedding": [0.5] * 4000} for i in range(1, 300)]}).encode(), "larger than"),
    (200, b'{"data": [{"index": 0, "embedding": [1e999, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, '
          b'0.5, 0.5, 0.5, 0.5]}]}', "NaN or infinite"),
    (400, b"[" * 100_000 + b"]" * 100_000, "rejected"),
])
def test_a_hostile_answer_is_a_bad_upstream_not_an_internal_error(embed_with_key, upstream, status, body, says):
    """Found by the hostile pass: deep JSON was INTERNAL, 229 MB of vectors for one input took 1.2 GB before
    it was refused, and infinite numbers came back as a vector."""
    upstream.raw_answer = (status, body)
    with pytest.raises(grpc.RpcError) as err:
        embed_with_key.stub.Embed(request(upstream, "alpha", max_retries=0))
    assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INVALID_ARGUMENT)
    assert error_info(err.value).reason in ("UPSTREAM_BAD_RESPONSE", "UPSTREAM_BAD_REQUEST")
    assert says in err.value.details()
    upstream.raw_answer = None
    assert len(embed_with_key.stub.Embed(request(upstream, "alpha")).embeddings) == 1  # and the service serves on
