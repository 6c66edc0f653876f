"""Who may call a service and over what, the same for every vectorlane service: bearer tokens on every data
RPC, TLS, and mutual TLS.

- `SecuritySettings` is the part of a service's settings that says so (flags and `VECTORLANE_*` variables).
  Tokens come from `--auth-tokens` (comma-separated; `VECTORLANE_AUTH_TOKENS`, e.g. from a Kubernetes
  Secret) and/or `--auth-token-file` (one token per line). With neither given, calls need no token; given
  but holding no token (an empty variable, a blank file, `--auth-tokens ,`) the service refuses to start,
  since an operator who configured auth must never get a service open to all. Each service logs at start
  whether auth is on.
- `AuthInterceptor` refuses a call without `authorization: Bearer <one of the tokens>` with UNAUTHENTICATED
  (reason MISSING_CREDENTIALS or INVALID_TOKEN), except the health service, which probes use.
- `server_credentials` / `channel_credentials` build TLS from PEM files; a client CA turns on mTLS.
Tokens are compared in constant time, and never logged or echoed in errors.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from rpc_common import settings
from rpc_common.errors import InvalidArgument, Unauthenticated
from rpc_common.handler_wrapping import Behaviour, rewrap

_opt = settings.setting
HEALTH_SERVICE = "grpc.health.v1.Health"
REFLECTION_SERVICES = ("grpc.reflection.v1alpha.ServerReflection", "grpc.reflection.v1.ServerReflection")


@dataclass(frozen=True)
class SecuritySettings:
    auth_tokens: tuple[str, ...] | None = _opt(None, "bearer tokens accepted on every call but health (secret: "
                                                     "prefer the environment or --auth-token-file); not given: "
                                                     "no auth; given but empty: refuses to start", secret=True)
    auth_token_file: Path | None = _opt(None, "file of accepted bearer tokens, one per line (a mounted Secret)")
    reflection: bool = _opt(True, "serve gRPC reflection (for grpcurl); it needs a token when auth is on")
    tls_cert: Path | None = _opt(None, "PEM certificate chain to serve TLS with (with --tls-key)")
    tls_key: Path | None = _opt(None, "PEM private key of --tls-cert")
    tls_client_ca: Path | None = _opt(None, "PEM CA that client certificates must chain to: mutual TLS")

    def __post_init__(self) -> None:
        self.tokens()  # configured but empty, or an unreadable file: refuse to start (ValueError)

    @property
    def auth_configured(self) -> bool:
        return self.auth_tokens is not None or self.auth_token_file is not None

    def tokens(self) -> frozenset[str]:
        """The accepted tokens (none: auth off). ValueError when auth is configured yet holds no token."""
        found: set[str] = set()
        if self.auth_tokens is not None:
            given = {t.strip() for t in self.auth_tokens if t.strip()}
            if not given:
                raise ValueError("--auth-tokens / VECTORLANE_AUTH_TOKENS is set but holds no token; give at least "
                                 "one, or leave it unset to serve without auth")
            found |= given
        if self.auth_token_file is not None:
            try:
                lines = Path(self.auth_token_file).read_text().splitlines()
            except (OSError, UnicodeDecodeError) as exc:
                raise ValueError(f"--auth-token-file cannot be read ({type(exc).__name__})") from None
            given = {line.strip() for line in lines if line.strip()}
            if not given:
                raise ValueError("--auth-token-file holds no token; give at least one, or leave it unset to serve "
                                 "without auth")
            found |= given
        for token in found:
            if any(ord(c) < 0x21 or ord(c) > 0x7E for c in token):
                raise ValueError("an auth token holds a character that cannot go in an HTTP header (only "
                                 "printable ASCII without spaces)")
        return frozenset(found)


def _read(path: Path | None) -> bytes | None:
    return None if path is None else Path(path).read_bytes()


def server_credentials(config: SecuritySettings) -> grpc.ServerCredentials | None:
    """TLS for the server's port, or None (plaintext) when no certificate is configured."""
    if config.tls_cert is None and config.tls_key is None:
        if config.tls_client_ca is not None:
            raise InvalidArgument("--tls-client-ca needs --tls-cert and --tls-key", reason="INVALID_TLS_SETTINGS")
        return None
    if config.tls_cert is None or config.tls_key is None:
        raise InvalidArgument("--tls-cert and --tls-key go together", reason="INVALID_TLS_SETTINGS")
    client_ca = _read(config.tls_client_ca)
    return grpc.ssl_server_credentials([(_read(config.tls_key), _read(config.tls_cert))],
                                       root_certificates=client_ca, require_client_auth=client_ca is not None)


def channel_credentials(ca: Path | None, cert: Path | None = None, key: Path | None = None
                        ) -> grpc.ChannelCredentials:
    """TLS towards another service: its CA (None: the system's), and our certificate for mTLS."""
    return grpc.ssl_channel_credentials(_read(ca), _read(key), _read(cert))


class AuthInterceptor(grpc.ServerInterceptor):
    """Lets a call through only with `authorization: Bearer <token>` for a configured token (health aside).
    Place it inside the error-mapping interceptor, so refusals become statuses with ErrorInfo."""

    def __init__(self, tokens: Iterable[str], open_services: Iterable[str] = (HEALTH_SERVICE,)) -> None:
        self._tokens = tuple(t.encode() for t in tokens)
        self._open = tuple(f"/{s}/" for s in open_services)

    def _refusal(self, metadata: Iterable[Any]) -> Unauthenticated | None:
        supplied = next((value for key, value in metadata if key == "authorization"), None)
        if supplied is None:
            return Unauthenticated("this service needs 'authorization: Bearer <token>' metadata",
                                   reason="MISSING_CREDENTIALS")
        scheme, _, token = str(supplied).partition(" ")
        given = token.strip().encode()
        valid = False
        for known in self._tokens:  # every token compared, each in constant time
            valid |= hmac.compare_digest(given, known)
        if scheme.lower() != "bearer" or not valid:
            return Unauthenticated("the bearer token is not valid for this service", reason="INVALID_TOKEN")
        return None

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(self._open):
            return handler
        refusal = self._refusal(details.invocation_metadata or ())
        if refusal is None:
            return handler

        def unary(_: Behaviour) -> Behaviour:
            def refuse(request: Any, context: grpc.ServicerContext) -> Any:
                raise refusal

            return refuse

        def streaming(_: Behaviour) -> Behaviour:
            def refuse(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
                raise refusal
                yield  # a generator, like the behaviour it replaces

            return refuse

        return rewrap(handler, unary, streaming)
