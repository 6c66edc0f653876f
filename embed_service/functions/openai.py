"""openai: the OpenAI embeddings API, or any server that speaks it (vLLM, TEI, Ollama, Infinity).

The API key is a secret: settings carry only a reference (`$var:name`), resolved by the embed service, and
sent only to an endpoint `--secret-allowed-hosts` admits (scheme, host and port). With no `api_key`, the
client falls back to the service's own OPENAI_API_KEY (same rule); a `base_url` server that needs no key (a
local vLLM) gets a placeholder. A `base_url` carrying credentials (`user:pass@`, a key in its query) is
refused like a literal key. The openai client's own retries are off: the base class
retries transient failures with backoff, so `max_retries` means one thing for every function.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

import numpy as np
import pydantic

from embed_service.errors import InvalidSettings, UpstreamAuthFailed, UpstreamRejected, UpstreamUnavailable
from embed_service.functions.base import EmbeddingFunction, Modality, Purpose, secret_host_refused
from embed_service.functions.registry import register
from embed_service.secret_hosts import carries_credentials, endpoint

DEFAULT_BASE_URL = "https://api.openai.com/v1"

KNOWN_DIMENSIONS = {
    "text-embedding-ada-002": 1536,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
}


@register("openai")
class OpenAIEmbeddings(EmbeddingFunction):
    description = "OpenAI embeddings API, or any OpenAI-compatible endpoint through base_url"
    modalities = frozenset({Modality.TEXT})
    secret_settings: ClassVar[tuple[str, ...]] = ("api_key",)
    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries", "batch_size"})

    name: str = pydantic.Field("text-embedding-ada-002", description="the model name the endpoint knows")
    dim: int | None = pydantic.Field(None, ge=1, le=65536,
                                     description="output dimensions (models that accept `dimensions`)")
    base_url: str | None = pydantic.Field(None, max_length=2048,
                                          description="an OpenAI-compatible endpoint, e.g. http://host/v1")
    api_key: str | None = pydantic.Field(None, max_length=256, description="secret reference: $var:name")
    organization: str | None = pydantic.Field(None, description="OpenAI organization id")
    batch_size: int = pydantic.Field(2048, ge=1, le=2048, description="inputs per API request")
    timeout: float = pydantic.Field(60.0, gt=0, le=600, description="seconds per API request")

    _client: Any = pydantic.PrivateAttr(None)
    _ndims: int | None = pydantic.PrivateAttr(None)

    @pydantic.field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        if endpoint(value) is None:
            raise ValueError("must be an http:// or https:// URL with a host (and a port from 1 to 65535)")
        if carries_credentials(value):
            raise InvalidSettings("setting 'base_url' carries credentials (user:password@ or a key in its "
                                  "query); give the key as api_key: '$var:name'", reason="LITERAL_SECRET",
                                  setting="base_url", function="openai")
        return value

    def _load(self) -> None:
        import openai

        url = self.base_url or DEFAULT_BASE_URL
        self.check_endpoint(url)
        trusted = self._runtime.secret_hosts.allows_url(url)
        api_key = self.secret("api_key")
        if api_key is not None and not trusted:
            raise secret_host_refused("openai", url)
        if api_key is None:
            # No key of the caller's: the service's own OPENAI_API_KEY, to trusted endpoints only; servers like
            # vLLM or Ollama take none (the client insists on one). The URL is always explicit, so the client
            # never takes OPENAI_BASE_URL from the environment either.
            own = os.environ.get("OPENAI_API_KEY")
            api_key = own if (trusted and own) else "unused"
        try:
            self._client = openai.OpenAI(api_key=api_key, base_url=url, organization=self.organization,
                                         max_retries=0, timeout=self.timeout)
        except openai.OpenAIError as exc:
            raise UpstreamAuthFailed(f"openai: {exc}", function="openai") from None

    @property
    def normalized(self) -> bool:
        return self.base_url is None and self.name in KNOWN_DIMENSIONS

    def ndims(self) -> int:
        if self._ndims is None:
            self._ndims = self.dim or (KNOWN_DIMENSIONS.get(self.name) if self.base_url is None else None)
        if self._ndims is None:  # an unknown model behind base_url: ask it once
            self._ndims = int(self._with_retry(self.embed_texts, ["dimension probe"], Purpose.QUERY).shape[1])
        return self._ndims

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        extra: dict[str, Any] = {}
        if self.dim is not None and self.name != "text-embedding-ada-002":
            extra["dimensions"] = self.dim
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            chunk = texts[start:start + self.batch_size]
            response = self._client.embeddings.create(input=chunk, model=self.name, encoding_format="float",
                                                      **extra)
            data = sorted(response.data, key=lambda d: d.index)
            if len(data) != len(chunk):
                raise UpstreamUnavailable(
                    f"openai: the endpoint returned {len(data)} embeddings for {len(chunk)} inputs",
                    reason="UPSTREAM_BAD_RESPONSE", function="openai")
            rows.extend(d.embedding for d in data)
        return np.asarray(rows, dtype=np.float32)

    def is_transient(self, exc: BaseException) -> bool:
        import openai

        if isinstance(exc, (openai.RateLimitError, openai.APIConnectionError, openai.InternalServerError)):
            return True  # APITimeoutError is an APIConnectionError
        if isinstance(exc, openai.APIStatusError):
            return exc.status_code >= 500 or exc.status_code in (408, 409)
        return super().is_transient(exc)

    def translate_error(self, exc: BaseException) -> BaseException:
        import openai

        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return UpstreamAuthFailed(f"openai: the endpoint refused the credentials "
                                      f"({exc.status_code}): {exc.message}", function="openai",
                                      status=exc.status_code)
        if isinstance(exc, openai.APIStatusError):
            return UpstreamRejected(f"openai: the endpoint rejected the request ({exc.status_code}): "
                                    f"{exc.message}", function="openai", status=exc.status_code)
        return exc
