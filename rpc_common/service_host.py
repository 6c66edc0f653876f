"""The gRPC server around a service: interceptors (metrics, error mapping), health, reflection, message
size limits, the metrics endpoint and graceful shutdown, the same for every vectorlane service."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent import futures
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_reflection.v1alpha import reflection, reflection_pb2_grpc

from rpc_common.admission import HEALTH_THREADS, AdmissionInterceptor, AdmissionSettings
from rpc_common.call_metrics import MetricsInterceptor
from rpc_common.error_mapping import ErrorMappingInterceptor
from rpc_common.reflection import ContractReflection
from rpc_common.handlers import add_servicer
from rpc_common.security import AuthInterceptor, SecuritySettings, server_credentials
from rpc_common.service_metrics import ServiceMetrics

log = logging.getLogger(__name__)


# Connections are closed gracefully after 5 minutes so clients re-resolve and spread over new pods after a
# rollout or a scale-up; calls in flight then get up to an hour to finish (an index build over millions of rows
# takes minutes). Clients may keep connections alive with pings every 30 s or more, also during a long call
# that sends no data: the key is gRPC core's GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS (an unknown
# key would be ignored, leaving the 5-minute default, and a long call's pings would end in GOAWAY
# "too_many_pings").
CONNECTION_OPTIONS = (
    ("grpc.max_connection_age_ms", 5 * 60 * 1000),
    ("grpc.max_connection_age_grace_ms", 60 * 60 * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 20 * 1000),
    ("grpc.http2.max_pings_without_data", 0),
)
# What a client of a vectorlane service sets to match: pings every 30 s, per-request balancing over
# every address a name resolves to (dns:///headless-service:port).
CLIENT_OPTIONS = (
    ("grpc.keepalive_time_ms", 30 * 1000),
    ("grpc.keepalive_timeout_ms", 10 * 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.lb_policy_name", "round_robin"),
    # A peer that went away and came back is used again within a second or two: gRPC's default reconnect
    # backoff grows to two minutes, during which every call fails at once with UNAVAILABLE.
    ("grpc.initial_reconnect_backoff_ms", 250),
    ("grpc.min_reconnect_backoff_ms", 250),
    ("grpc.max_reconnect_backoff_ms", 2000),
)


class ServiceHost:
    def __init__(self, *, service: ServiceDescriptor, servicer: object, domain: str, metrics: ServiceMetrics,
                 max_workers: int, max_message_bytes: int, thread_prefix: str,
                 decoders: Mapping[str, Callable[[bytes], Any]] | None = None,
                 security: SecuritySettings = SecuritySettings(),
                 admission: AdmissionSettings = AdmissionSettings(),
                 redact: Callable[[str], str] | None = None,
                 interceptors: Sequence[grpc.ServerInterceptor] = ()) -> None:
        """Serves `servicer` for `service` (see `handlers.add_servicer` for `decoders`), with `security`'s
        tokens, reflection choice and TLS, at most `max_workers` data calls at a time (`admission`); every
        error's text passes through `redact` when given. The service's own `interceptors` act innermost."""
        self.service_name = service.full_name
        self._credentials = server_credentials(security)
        tokens = security.tokens()
        if tokens:
            log.info("%s: auth on: every call but health needs one of %d bearer token(s)", self.service_name,
                     len(tokens))
        else:
            log.warning("%s: auth OFF: every call is served without a token (set --auth-tokens or "
                        "--auth-token-file to require one)", self.service_name)
        self.metrics = metrics
        self.health = health.HealthServicer()
        self.port = 0
        self.metrics_port: int | None = None
        options = [
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),
            *CONNECTION_OPTIONS,
        ]
        self.admission = AdmissionInterceptor(max_workers, admission, auth_on=bool(tokens))
        self._server = grpc.server(  # the threads beyond max_workers are health's: data calls never take them
            futures.ThreadPoolExecutor(max_workers=max_workers + HEALTH_THREADS, thread_name_prefix=thread_prefix),
            interceptors=[MetricsInterceptor(metrics.requests, metrics.latency),
                          ErrorMappingInterceptor(domain, *([redact] if redact else [])),
                          *([AuthInterceptor(tokens)] if tokens else []), self.admission, *interceptors],
            options=options,
        )
        add_servicer(self._server, service, servicer, decoders)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self._server)
        if security.reflection:
            reflection_pb2_grpc.add_ServerReflectionServicer_to_server(ContractReflection(
                (self.service_name, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME)), self._server)

    def start(self, host: str, port: int, metrics_host: str, metrics_port: int) -> None:
        """Listens (health NOT_SERVING until `set_serving(True)`); metrics_port -1 turns metrics off."""
        self.set_serving(False)
        target = f"{host}:{port}"
        self.port = (self._server.add_secure_port(target, self._credentials) if self._credentials is not None
                     else self._server.add_insecure_port(target))
        if self.port == 0:
            raise OSError(f"cannot listen on {host}:{port}")
        self._server.start()
        if metrics_port >= 0:
            self.metrics_port = self.metrics.serve(metrics_host, metrics_port)

    def set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ("", self.service_name):
            self.health.set(name, status)

    def stop(self, grace: float) -> None:
        """Health NOT_SERVING, refuse new calls, let in-flight ones finish within `grace` seconds, stop."""
        self.set_serving(False)
        self._server.stop(grace).wait()
        self.metrics.stop()

    def wait(self) -> None:
        self._server.wait_for_termination()


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class HostedServer:
    """What every service's server shows of its ServiceHost: where it listens, and waiting for it to end."""

    _host: ServiceHost
    config: Any  # the service's settings; `host` is the address it listens on

    @property
    def port(self) -> int:
        return self._host.port

    @property
    def metrics_port(self) -> int | None:
        return self._host.metrics_port

    @property
    def address(self) -> str:
        return address(self.config.host, self.port)

    def metrics_url(self) -> str:
        port = self.metrics_port
        return f"http://{self.config.metrics_host}:{port}/metrics" if port else "off"

    def wait(self) -> None:
        self._host.wait()
