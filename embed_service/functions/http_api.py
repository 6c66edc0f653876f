"""What every function behind a provider's HTTP API shares (cohere, jina, voyageai, gemini-text, watsonx,
bedrock-text, ollama): the endpoint, the key, one bounded JSON call, and what its failures mean.

- The endpoint is the provider's, or `base_url` (a proxy, a private deployment, a local test server). A URL
  carrying credentials is refused like a literal key.
- The key is a `$var:` reference resolved by the service; without one, the service's own key from the
  provider's usual variable (`COHERE_API_KEY`, ...). Either goes only to an endpoint `--secret-allowed-hosts`
  admits (scheme, host and port), checked when the function loads.
- One call is a POST of JSON with the function's `timeout`, no redirects followed (a redirect could carry the
  key elsewhere), and an answer read up to MAX_RESPONSE_BYTES: an endpoint cannot make the service buffer
  without bound. Answers are checked for shape (one vector of numbers per input) before use.
- 408, 409, 429, 5xx, connection failures and timeouts are transient (retried by the base class with
  backoff, `max_retries`); 401/403 are UPSTREAM_AUTH_FAILED; other 4xx are UPSTREAM_BAD_REQUEST. The
  provider's error text is passed on, cut to ERROR_TEXT_CHARS and never with the key in it.
"""

from __future__ import annotations

from rpc_common.json_depth import loads_bounded
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pydantic

from embed_service.errors import InvalidSettings, UpstreamAuthFailed, UpstreamRejected, UpstreamUnavailable
from embed_service.functions.base import EmbeddingFunction, Modality, Purpose, secret_host_refused
from embed_service.secret_hosts import carries_credentials, endpoint

MAX_RESPONSE_BYTES = 256 * 1024 * 1024
ANSWER_DIMS = 8192  # dimensions assumed for an answer's size while a function does not know its own
MAX_ANSWER_DEPTH = 64  # JSON nesting of an answer (a list of vectors in an object or two)
ERROR_BODY_BYTES = 64 * 1024  # of an error answer, what is read for its message
ERROR_TEXT_CHARS = 300
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429})


class ApiStatusError(Exception):
    """The endpoint answered with an error status."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"HTTP {status}: {text}")
        self.status = status
        self.text = text


class BadAnswer(Exception):
    """The endpoint answered 2xx with something that is not what its API promises."""


def check_url(value: str | None, *, setting: str, function: str) -> str | None:
    """An http(s) URL with a host and without credentials of its own, or None."""
    if value is None:
        return None
    if endpoint(value) is None:
        raise ValueError("must be an http:// or https:// URL with a host (and a port from 1 to 65535)")
    if carries_credentials(value):
        raise InvalidSettings(f"setting {setting!r} carries credentials (user:password@ or a key in its query); "
                              "give the key as api_key: '$var:name'", reason="LITERAL_SECRET", setting=setting,
                              function=function)
    return value


class HttpApiFunction(EmbeddingFunction):
    """Base of the functions that call an HTTP API: the client, one bounded call, what failures mean."""

    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries", "batch_size", "timeout"})
    needs_key: ClassVar[bool] = False

    timeout: float = pydantic.Field(60.0, gt=0, le=600, description="seconds per API request")

    _client: Any = pydantic.PrivateAttr(None)
    _key: str | None = pydantic.PrivateAttr(None)
    _ndims: int | None = pydantic.PrivateAttr(None)

    @property
    def api_root(self) -> str:
        raise NotImplementedError

    def _load(self) -> None:
        import httpx2

        self.check_endpoint(self.api_root)
        self._key = self.key_for(self.api_root) if self.needs_key else None
        self._client = httpx2.Client(timeout=self.timeout, follow_redirects=False)

    def key_for(self, url: str) -> str | None:
        return None

    # ----- one call ----------------------------------------------------------------------------------------
    def answer_limit(self, inputs: int | None) -> int:
        """The most bytes an answer carrying `inputs` vectors may have: each of at most the function's known
        dimensions (else ANSWER_DIMS) written in at most 32 characters, and a MiB for the rest. Found by the
        hostile pass: 229 MB of vectors for one input took 1.2 GB to decode before it was refused."""
        if inputs is None:
            return MAX_RESPONSE_BYTES
        dims = self._ndims or getattr(self, "dim", None) or ANSWER_DIMS
        return min(MAX_RESPONSE_BYTES, (1 << 20) + inputs * int(dims) * 32)

    def post(self, url: str, body: Any = None, *, headers: Mapping[str, str] | None = None,
             form: Mapping[str, str] | None = None, content: bytes | None = None, inputs: int | None = None) -> Any:
        """POSTs JSON (or a form, or raw bytes) and returns the decoded JSON answer; `inputs` is how many
        vectors the answer carries (0 for none: a token), which bounds its size (`answer_limit`)."""
        kwargs: dict[str, Any] = {"headers": {"Accept": "application/json", **(headers or {})}}
        if form is not None:
            kwargs["data"] = dict(form)
        elif content is not None:
            kwargs["content"] = content
        else:
            kwargs["json"] = body
        limit = self.answer_limit(inputs)
        with self._client.stream("POST", url, **kwargs) as response:
            data = bytearray()
            for chunk in response.iter_bytes():
                data += chunk
                if len(data) > limit:
                    raise BadAnswer(f"the answer is larger than {limit} bytes (what {inputs} vectors can take)"
                                    if inputs is not None else f"the answer is larger than {limit} bytes")
            status = response.status_code
        if status >= 300:
            raise ApiStatusError(status, self._error_text(bytes(data)))
        try:
            return loads_bounded(bytes(data), MAX_ANSWER_DEPTH)
        except (ValueError, RecursionError):
            raise BadAnswer("the answer is not JSON (or nests deeper than "
                            f"{MAX_ANSWER_DEPTH} levels)") from None

    def _error_text(self, data: bytes) -> str:
        try:
            decoded = loads_bounded(data[:ERROR_BODY_BYTES], MAX_ANSWER_DEPTH)
        except (ValueError, RecursionError):
            text = data[:ERROR_BODY_BYTES].decode("utf-8", "replace")
        else:
            text = _message_of(decoded)
        text = " ".join(text.split())[:ERROR_TEXT_CHARS]
        return text.replace(self._key, "[key]") if self._key else text

    def vectors(self, rows: Any, expected: int) -> np.ndarray:
        """The answer's vectors as a float32 matrix, checked: `expected` rows of numbers, all one length."""
        if not isinstance(rows, list) or len(rows) != expected:
            got = len(rows) if isinstance(rows, list) else type(rows).__name__
            raise BadAnswer(f"{got} embeddings for {expected} inputs")
        try:
            matrix = np.asarray(rows, dtype=np.float32)
        except (ValueError, TypeError):
            raise BadAnswer("the embeddings are not lists of numbers of one length") from None
        if matrix.ndim != 2 or (expected and matrix.shape[1] == 0):
            raise BadAnswer("the embeddings are not lists of numbers of one length")
        if not np.isfinite(matrix).all():
            raise BadAnswer("the embeddings hold NaN or infinite numbers")
        return matrix

    def probe_ndims(self) -> int:
        """Dimensions learnt by embedding one text (a model the function has no table for)."""
        if self._ndims is None:
            self._ndims = int(self._with_retry(self.embed_texts, ["dimension probe"], Purpose.QUERY).shape[1])
        return self._ndims

    # ----- failures ----------------------------------------------------------------------------------------
    def is_transient(self, exc: BaseException) -> bool:
        import httpx2

        if isinstance(exc, ApiStatusError):
            return exc.status >= 500 or exc.status in TRANSIENT_STATUSES
        return isinstance(exc, (httpx2.TransportError, httpx2.TimeoutException)) or super().is_transient(exc)

    def translate_error(self, exc: BaseException) -> BaseException:
        name = self.registry_name
        if isinstance(exc, ApiStatusError) and exc.status in (401, 403):
            return UpstreamAuthFailed(f"{name}: the endpoint refused the credentials ({exc.status}): {exc.text}",
                                      function=name, status=exc.status)
        if isinstance(exc, ApiStatusError):
            return UpstreamRejected(f"{name}: the endpoint rejected the request ({exc.status}): {exc.text}",
                                    function=name, status=exc.status)
        if isinstance(exc, BadAnswer):
            return UpstreamUnavailable(f"{name}: the endpoint's answer is not usable: {exc}",
                                       reason="UPSTREAM_BAD_RESPONSE", function=name)
        return exc


class KeyedApiFunction(HttpApiFunction):
    """A provider's API that takes a key: its own endpoint or `base_url`, the key from `api_key`."""

    secret_settings: ClassVar[tuple[str, ...]] = ("api_key",)
    default_url: ClassVar[str] = ""
    key_variable: ClassVar[str] = ""  # the provider's usual environment variable, for the service's own key
    needs_key: ClassVar[bool] = True

    api_key: str | None = pydantic.Field(None, max_length=256, description="secret reference: $var:name")
    base_url: str | None = pydantic.Field(None, max_length=2048,
                                          description="the API's root URL, if not the provider's own")

    @pydantic.field_validator("base_url")
    @classmethod
    def _root_url(cls, value: str | None) -> str | None:
        return check_url(value, setting="base_url", function=cls.registry_name)

    @property
    def api_root(self) -> str:
        return (self.base_url or self.default_url).rstrip("/")

    @property
    def multimodal(self) -> bool:
        """Whether the model these settings name embeds images too (a provider's CLIP-style models)."""
        return Modality.IMAGE in self.modalities

    def embeds(self) -> frozenset[Modality]:
        return self.modalities if self.multimodal else self.modalities - {Modality.IMAGE}

    def key_for(self, url: str) -> str | None:
        """The key to send to `url`: the caller's reference resolved, else the service's own; only to an
        endpoint the operator allowed."""
        trusted = self._runtime.secret_hosts.allows_url(url)
        key = self.secret("api_key")
        if key is not None and not trusted:
            raise secret_host_refused(self.registry_name, url)
        if key is None and trusted and self.key_variable:
            key = self._runtime.secrets.environment(self.key_variable)
        return key

    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"} if self._key else {}


def _message_of(decoded: Any) -> str:
    """The human part of a provider's error body ({"message": ...}, {"error": {"message": ...}}, ...)."""
    if isinstance(decoded, dict):
        for key in ("message", "error", "detail", "errors", "Message"):
            if key in decoded:
                return _message_of(decoded[key])
    if isinstance(decoded, list) and decoded:
        return _message_of(decoded[0])
    return str(decoded)


def batches(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[start:start + size] for start in range(0, len(items), size)]


def indexed(answer: Any, expected: int) -> list[Any]:
    """The vectors of an OpenAI-shaped answer (`{"data": [{"index": i, "embedding": [...]}]}`) in input order."""
    data = answer.get("data") if isinstance(answer, dict) else None
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise BadAnswer("no list of embeddings under 'data'")
    if len(data) != expected:
        raise BadAnswer(f"{len(data)} embeddings for {expected} inputs")
    ordered: list[Any] = [None] * expected
    for position, item in enumerate(data):
        index = item.get("index", position)
        if not isinstance(index, int) or not 0 <= index < expected or ordered[index] is not None:
            raise BadAnswer("the embeddings' indexes are not one per input")
        ordered[index] = item.get("embedding")
    return ordered
