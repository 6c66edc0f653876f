"""Auth and TLS on both services, as an operator configures them: every data RPC needs a bearer token
(health aside), the store presents its own token to the embed service, TLS and mutual TLS on every hop,
and no token ever shows up in logs, errors or metrics."""

from __future__ import annotations

import logging
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import vectorlane
from tests.helpers import GRPCURL, error_info, grpcurl
from tests.security_certs import Certificates, make_certificates
from tests.store_service.conftest import start_store, word_hash_registered  # noqa: F401
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.embeddings import get_registry
from vectorlane.errors import UnauthenticatedError, UnavailableError
from vectorlane.pydantic import LanceModel, Vector
from vectorlane.store.v1 import store_service_pb2 as spb

STORE_TOKEN, EMBED_TOKEN = "store-token-4f9a2c", "embed-token-7b1e3d"
SERVICES = [spb.DESCRIPTOR.services_by_name["StorageService"], epb.DESCRIPTOR.services_by_name["EmbeddingService"]]


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


def call_every_method(target: str, service, metadata=()) -> dict[str, grpc.StatusCode]:
    """Each method of `service` called with an empty request: its status code."""
    channel = grpc.insecure_channel(target)
    codes = {}
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        kind = (method.client_streaming, method.server_streaming)
        make = {(False, False): channel.unary_unary, (True, False): channel.stream_unary,
                (False, True): channel.unary_stream, (True, True): channel.stream_stream}[kind]
        call = make(path)
        request = iter([b""]) if method.client_streaming else b""
        try:
            result = call(request, metadata=metadata, timeout=10)
            if method.server_streaming:
                list(result)
            codes[method.name] = grpc.StatusCode.OK
        except grpc.RpcError as exc:
            codes[method.name] = exc.code()
            if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                assert error_info(exc).reason in ("MISSING_CREDENTIALS", "INVALID_TOKEN")
    channel.close()
    return codes


def test_every_data_rpc_of_both_services_needs_a_valid_token(start_embed, start_store):  # noqa: F811
    embed = start_embed(auth_tokens=(EMBED_TOKEN,))
    store = start_store(embed, auth_tokens=(STORE_TOKEN, "second-token"), embed_auth_token=EMBED_TOKEN)
    hops = [(store.target, SERVICES[0], STORE_TOKEN), (embed.target, SERVICES[1], EMBED_TOKEN)]
    for target, service, token in hops:
        assert set(call_every_method(target, service).values()) == {grpc.StatusCode.UNAUTHENTICATED}
        wrong = call_every_method(target, service, (("authorization", "Bearer not-it"),))
        assert set(wrong.values()) == {grpc.StatusCode.UNAUTHENTICATED}
        allowed = call_every_method(target, service, (("authorization", f"Bearer {token}"),))
        assert grpc.StatusCode.UNAUTHENTICATED not in allowed.values(), allowed
        health = health_pb2_grpc.HealthStub(grpc.insecure_channel(target))  # probes need no token
        assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING
    second = call_every_method(store.target, SERVICES[0], (("authorization", "Bearer second-token"),))
    assert grpc.StatusCode.UNAUTHENTICATED not in second.values()
    if GRPCURL is not None:  # reflection is a data RPC too when auth is on
        assert grpcurl(store.target, "list").returncode != 0
        listed = grpcurl(store.target, "list", flags=("-H", f"authorization: Bearer {STORE_TOKEN}"))
        assert "vectorlane.store.v1.StorageService" in listed.stdout


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is installed by `make install`")
def test_reflection_can_be_turned_off(start_embed, start_store):  # noqa: F811
    store = start_store(start_embed(), reflection=False)
    assert grpcurl(store.target, "list").returncode != 0
    health = health_pb2_grpc.HealthStub(grpc.insecure_channel(store.target))
    assert health.Check(health_pb2.HealthCheckRequest()).status == health_pb2.HealthCheckResponse.SERVING


def test_the_store_presents_its_own_token_and_no_token_leaks(start_embed, start_store, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    embed = start_embed(auth_tokens=(EMBED_TOKEN,))
    store = start_store(embed, auth_tokens=(STORE_TOKEN,), embed_auth_token=EMBED_TOKEN)
    db = vectorlane.connect(f"grpc://{store.target}", api_key=STORE_TOKEN)
    func = get_registry().get("word-hash").create(dims=8)

    class Doc(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    table.add([{"text": "red apple"}, {"text": "blue sea"}])  # embedded with the store's token to the embed service
    assert table.search("blue").limit(1).to_list()[0]["text"] == "blue sea"
    with pytest.raises(UnauthenticatedError) as refused:
        vectorlane.connect(f"grpc://{store.target}", api_key="guess").open_table("docs")
    assert refused.value.reason == "INVALID_TOKEN" and "guess" not in str(refused.value)

    wrong = start_store(embed, data_dir=store.data_dir.parent / "other", embed_auth_token="not-the-embed-token")
    other = vectorlane.connect(f"grpc://{wrong.target}")
    with pytest.raises(vectorlane.VectorlaneError) as failed:
        other.create_table("docs", schema=Doc)
    assert failed.value.reason == "EMBED_SERVICE_UNAUTHENTICATED"
    assert "not-the-embed-token" not in str(failed.value)

    metrics = "".join(urllib.request.urlopen(server.metrics_url(), timeout=10).read().decode()
                      for server in (store.server, embed.server))
    texts = [caplog.text, metrics, repr(store.server.config), repr(embed.server.config)]
    for secret in (STORE_TOKEN, EMBED_TOKEN, "not-the-embed-token", "guess"):
        assert not any(secret in text for text in texts), secret
    db.close()
    other.close()


def test_tls_and_mutual_tls_on_every_hop(start_embed, start_store, certs):  # noqa: F811
    # the embed service wants TLS with a client certificate; the store presents one
    embed = start_embed(tls_cert=certs.server_cert, tls_key=certs.server_key, tls_client_ca=certs.ca)
    store = start_store(embed, tls_cert=certs.server_cert, tls_key=certs.server_key, embed_tls_ca=certs.ca,
                        embed_tls_cert=certs.client_cert, embed_tls_key=certs.client_key)
    uri = f"grpcs://127.0.0.1:{store.server.port}"
    db = vectorlane.connect(uri, root_certificates=certs.ca)
    func = get_registry().get("word-hash").create(dims=8)
    assert func.ndims() == 8  # through the store, over TLS, then to the embed service over mTLS

    class Doc(LanceModel):
        text: str = func.SourceField()
        vector: Vector(8) = func.VectorField()

    table = db.create_table("docs", schema=Doc)
    table.add([{"text": "red apple"}, {"text": "blue sea"}])
    assert table.search("red").limit(1).to_list()[0]["text"] == "red apple"
    with pytest.raises(UnavailableError):  # a CA that did not sign the server's certificate
        vectorlane.connect(uri, root_certificates=certs.other_ca, timeout=5).table_names()
    with pytest.raises(UnavailableError):  # plaintext to a TLS port
        vectorlane.connect(f"grpc://127.0.0.1:{store.server.port}", timeout=5).table_names()
    db.close()

    mutual = start_store(embed, data_dir=store.data_dir.parent / "mtls", tls_cert=certs.server_cert,
                         tls_key=certs.server_key, tls_client_ca=certs.ca, embed_tls_ca=certs.ca,
                         embed_tls_cert=certs.client_cert, embed_tls_key=certs.client_key)
    uri = f"grpcs://127.0.0.1:{mutual.server.port}"
    with pytest.raises(UnavailableError):  # no client certificate
        vectorlane.connect(uri, root_certificates=certs.ca, timeout=5).table_names()
    with_cert = vectorlane.connect(uri, root_certificates=certs.ca, client_cert=certs.client_cert,
                                   client_key=certs.client_key)
    assert with_cert.table_names() == []
    with_cert.close()


@pytest.mark.parametrize("argv,environ", [
    (["--auth-tokens", ","], {}),
    (["--auth-tokens", " "], {}),
    ([], {"VECTORLANE_AUTH_TOKENS": ""}),  # a Kubernetes Secret key that exists but is empty
    ([], {"VECTORLANE_AUTH_TOKENS": " , ,"}),
    (["--auth-token-file", "{blank}"], {}),
    (["--auth-token-file", "{missing}"], {}),
])
def test_auth_configured_but_empty_refuses_to_start(tmp_path, argv, environ):
    """Found by the security review: these made both services serve every RPC without a token, silently."""
    from embed_service.config import EmbedConfig
    from store_service.config import StoreConfig

    blank = tmp_path / "tokens"
    blank.write_text("\n   \n\n")
    argv = [a.format(blank=blank, missing=tmp_path / "nope") for a in argv]
    for config in (EmbedConfig, StoreConfig):
        with pytest.raises(SystemExit) as exited:
            config.from_args(argv, environ=environ)
        assert exited.value.code == 2


def test_each_service_logs_whether_auth_is_on(start_embed, start_store, caplog):  # noqa: F811
    caplog.set_level(logging.INFO, logger="rpc_common.service_host")
    embed = start_embed(auth_tokens=(EMBED_TOKEN,))
    start_store(embed, embed_auth_token=EMBED_TOKEN)
    lines = [r.getMessage() for r in caplog.records]
    assert any("EmbeddingService: auth on" in line for line in lines), lines
    assert any("StorageService: auth OFF" in line for line in lines), lines
    assert not any(EMBED_TOKEN in line for line in lines)


def test_a_store_process_with_an_empty_token_list_exits_with_a_message(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "store_service", "--auth-tokens", ",", "--port", "0",
                           "--metrics-port", "-1", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "holds no token" in done.stderr, done.stderr
