"""Health follows preloading; SIGTERM drains in-flight calls; metrics are served on their own port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embed_service.cli import address_in_banner
from tests.helpers import spec, texts
from tests.openai_server import OpenAICompatibleServer
from vectorlane.embed.v1 import embed_service_pb2 as pb
from vectorlane.embed.v1 import embed_service_pb2_grpc as pb_grpc


def health_status(channel: grpc.Channel) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service="vectorlane.embed.v1.EmbeddingService"),
                      timeout=5).status


def test_not_serving_until_preloaded_models_are_ready(start_embed):
    with OpenAICompatibleServer(dims=8, delay=1.5) as upstream:
        preload = json.dumps([{"name": "openai", "settings": {"name": "slow-model", "base_url": upstream.base_url}}])
        embed = start_embed(preload=preload)
        assert health_status(embed.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
        assert embed.server.ready.wait(10)
        assert health_status(embed.channel) == health_pb2.HealthCheckResponse.SERVING
        assert len(upstream.requests) == 1  # the load learned the dimensions; the model is now cached
        embed.stub.Embed(pb.EmbedRequest(function=spec("openai", name="slow-model", base_url=upstream.base_url),
                                         inputs=texts("x")))
        assert embed.server.metrics.value("vectorlane_embed_model_loads_total",
                                          {"function": "openai", "outcome": "ok"}) == 1


def test_failed_preload_keeps_health_not_serving(start_embed):
    embed = start_embed(preload="no-such-function")
    time.sleep(0.5)
    assert health_status(embed.channel) == health_pb2.HealthCheckResponse.NOT_SERVING
    assert embed.server.preload_error is not None


def test_metrics_endpoint_serves_prometheus_text(embed, tiny_clip):
    embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()), inputs=texts("x")))
    body = urllib.request.urlopen(f"http://127.0.0.1:{embed.server.metrics_port}/metrics", timeout=5).read().decode()
    for name in ("vectorlane_embed_requests_total", "vectorlane_embed_request_seconds_bucket",
                 "vectorlane_embed_batch_size_bucket", "vectorlane_embed_queue_depth", "vectorlane_embed_retries"):
        assert name in body
    assert 'vectorlane_embed_requests_total{code="OK",method="Embed"} 1.0' in body


@pytest.mark.slow
def test_sigterm_lets_in_flight_calls_finish_then_exits(tmp_path):
    with OpenAICompatibleServer(dims=8, delay=2.0) as upstream:
        env = {**os.environ, "VECTORLANE_PORT": "0", "VECTORLANE_METRICS_PORT": "-1", "VECTORLANE_PRELOAD": "",
               "VECTORLANE_GRACE_SECONDS": "10", "VECTORLANE_ENDPOINT_ALLOWED_HOSTS": "http://127.0.0.1:*"}
        process = subprocess.Popen([sys.executable, "-m", "embed_service", "--log-level", "INFO"], env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            target = address_in_banner(process.stdout)
            assert target, "the service did not say where it listens"
            channel = grpc.insecure_channel(target)
            stub = pb_grpc.EmbeddingServiceStub(channel)
            request = pb.EmbedRequest(function=spec("openai", name="m", dim=8, base_url=upstream.base_url),
                                      inputs=texts("in flight"))
            outcome: dict = {}

            def call():
                try:
                    outcome["response"] = stub.Embed(request, timeout=30)
                except grpc.RpcError as e:
                    outcome["error"] = e

            caller = threading.Thread(target=call)
            caller.start()
            while not upstream.requests:
                assert "error" not in outcome, outcome["error"]  # the call failed before reaching upstream
                time.sleep(0.05)
            process.send_signal(signal.SIGTERM)
            caller.join(30)
            assert "response" in outcome, outcome.get("error")
            assert len(outcome["response"].embeddings) == 1
            assert process.wait(timeout=20) == 0
            log = process.stdout.read()
            assert "received SIGTERM" in log and "embed service stopped" in log
            channel.close()
        finally:
            if process.poll() is None:
                process.kill()
