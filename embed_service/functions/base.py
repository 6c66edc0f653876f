"""The one small interface every embedding function implements, and what they all share.

A function is a pydantic model of its settings (what `create(**kwargs)` takes in LanceDB). The service
creates it with `create(settings)`, calls `load(runtime)` once, then `embed(items, purpose)` from a
batching worker thread; items are `str` for text and `PIL.Image.Image` for images.

Retry lives here so every function has it: transient failures (as `is_transient` judges them) are retried
with exponential backoff and jitter up to `max_retries` times (0 disables); anything else fails at once.
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pydantic
import tenacity
from PIL import Image

from embed_service.errors import EmbedError, InvalidSettings, ModelLoadFailed, PermissionDenied, UpstreamUnavailable
from embed_service.functions.model_sources import ModelSources
from embed_service.secret_hosts import LOCAL_MODEL_SERVERS, PROVIDER_HOSTS, SecretHosts, where
from embed_service.secret_refs import SecretRef, SecretResolver

log = logging.getLogger(__name__)


class Modality(enum.Enum):
    TEXT = "text"
    IMAGE = "image"


class Purpose(enum.Enum):
    SOURCE = "source"
    QUERY = "query"


Item = str | Image.Image
RetryHook = Callable[[str, int, float, BaseException], None]


@dataclass(frozen=True)
class FunctionRuntime:
    """What the service lends a function: its secrets, where model files may come from, retry pacing."""

    secrets: SecretResolver = field(default_factory=SecretResolver)
    sources: ModelSources = field(default_factory=ModelSources)
    secret_hosts: SecretHosts = field(default_factory=lambda: SecretHosts.parse(PROVIDER_HOSTS))
    endpoint_hosts: SecretHosts = field(
        default_factory=lambda: SecretHosts.parse(PROVIDER_HOSTS + LOCAL_MODEL_SERVERS))
    retry_initial_delay: float = 1.0
    retry_max_delay: float = 60.0
    on_retry: RetryHook | None = None


DEVICES = r"^(auto|cpu|mps|cuda(:[0-9]{1,2})?)$"


def device_setting() -> Any:
    return pydantic.Field("auto", pattern=DEVICES,
                          description="auto (CUDA when present, else CPU), cpu, cuda, cuda:N or mps")


CHARS_PER_TOKEN_KEPT = 64


def within_window(texts: list[str], tokens: int) -> list[str]:
    """Each text cut to CHARS_PER_TOKEN_KEPT characters per token of the model's window: the model drops what
    lies past its window anyway, and tokenizing it first cost ~160 bytes and ~1 µs a character (measured with
    MiniLM: a 10 MB text took 13 s and 1.6 GB). The cut changes a vector only for a text whose first
    `64 x window` characters hold fewer tokens than the window (runs of whitespace)."""
    keep = max(1, tokens) * CHARS_PER_TOKEN_KEPT
    return [text if len(text) <= keep else text[:keep] for text in texts]


def resolve_device(requested: str) -> str:
    """`auto` is CUDA when torch sees a GPU, else CPU; an explicit device that is absent is an error."""
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelLoadFailed(f"device {requested!r} was asked for but torch sees no CUDA device",
                                  setting="device")
        index = int(requested.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ModelLoadFailed(f"device {requested!r} was asked for but torch sees "
                                  f"{torch.cuda.device_count()} CUDA device(s)", setting="device")
    if requested == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadFailed("device 'mps' was asked for but torch sees no MPS device", setting="device")
    return requested


class EmbeddingFunction(pydantic.BaseModel):
    """Base of every embedding function. Subclasses declare settings as pydantic fields."""

    model_config = pydantic.ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    registry_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    modalities: ClassVar[frozenset[Modality]] = frozenset({Modality.TEXT})
    secret_settings: ClassVar[tuple[str, ...]] = ()
    # Settings that change how the loaded model is called, not what is loaded: variants of a function that
    # differ only in these share one loaded model (see `embed_service.loaded`).
    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries"})

    max_retries: int = pydantic.Field(7, ge=0, le=100, description="retries of transient failures; 0 disables")

    _runtime: FunctionRuntime = pydantic.PrivateAttr(default_factory=FunctionRuntime)

    # ----- creation -------------------------------------------------------------------------------
    @classmethod
    def create(cls, settings: dict[str, Any]) -> "EmbeddingFunction":
        """Validates settings; unknown or malformed ones raise InvalidSettings naming the setting."""
        try:
            return cls(**settings)
        except pydantic.ValidationError as exc:
            first = exc.errors()[0]
            setting = ".".join(str(p) for p in first["loc"]) or "?"
            if first["type"] == "extra_forbidden":
                raise InvalidSettings(f"function {cls.registry_name!r} has no setting {setting!r}",
                                      reason="UNKNOWN_SETTING", function=cls.registry_name,
                                      setting=setting) from None
            raise InvalidSettings(f"function {cls.registry_name!r}, setting {setting!r}: {first['msg']}",
                                  function=cls.registry_name, setting=setting) from None
        except EmbedError:
            raise

    @pydantic.model_validator(mode="after")
    def _secrets_are_references(self) -> "EmbeddingFunction":
        for name in self.secret_settings:
            value = getattr(self, name)
            if value is not None:
                SecretRef.parse(value, setting=name)
        return self

    def settings(self) -> dict[str, Any]:
        """Every setting with defaults filled in; secrets stay references."""
        return self.model_dump(mode="json")

    def given_settings(self) -> dict[str, Any]:
        """Only the settings the caller gave (what LanceDB stores as the function's `model`)."""
        return self.model_dump(mode="json", exclude_unset=True)

    @classmethod
    def settings_schema(cls) -> dict[str, Any]:
        return cls.model_json_schema()

    def model_key(self) -> str:
        """What identifies the loaded model: the function and the settings outside `call_settings`."""
        chosen = {k: v for k, v in self.settings().items() if k not in self.call_settings}
        return self.registry_name + " " + json.dumps(chosen, sort_keys=True)

    def share_model(self, loaded: "EmbeddingFunction") -> None:
        """Takes what `loaded` (a loaded function with the same model key) built in `load`, instead of loading
        it again. `_load` must therefore set only state that its model settings determine."""
        if loaded.model_key() != self.model_key():
            raise RuntimeError("this is a bug: a model shared between functions with different model keys")
        self.__pydantic_private__ = dict(loaded.__pydantic_private__ or {})

    # ----- lifecycle -------------------------------------------------------------------------------
    def load(self, runtime: FunctionRuntime) -> None:
        """Loads the model (once; the service caches the loaded function per settings). A function with a
        `trust_remote_code` setting runs a model's own code only where the operator allows it."""
        runtime.sources.check_remote_code(bool(getattr(self, "trust_remote_code", False)),
                                          function=self.registry_name)
        self._runtime = runtime
        self._load()

    def _load(self) -> None:
        """Subclasses load their model here, importing optional packages inside."""

    def release(self) -> None:
        """Frees what `load` started beside the model (threads) when the model's last variant is evicted;
        the model itself goes with the last reference to it."""

    def model_source(self, name: str) -> str:
        """Where a model named by a setting is loaded from: a folder under the model roots, else the hub id
        (refused unless the operator allows downloads)."""
        sources = self._runtime.sources
        local = sources.find_local(name, folder=True)
        return str(local) if local is not None else sources.hub(name, setting="name", function=self.registry_name)

    def check_endpoint(self, url: str) -> None:
        """Refuses an endpoint the operator did not allow functions to call (--endpoint-allowed-hosts)."""
        if not self._runtime.endpoint_hosts.allows_url(url):
            raise _refused(self.registry_name, url, "calls only the endpoints", "--endpoint-allowed-hosts",
                           "ENDPOINT_NOT_ALLOWED")

    def secret(self, name: str) -> str | None:
        value = getattr(self, name)
        return None if value is None else self._runtime.secrets.resolve(value, setting=name)

    def ndims(self) -> int:
        raise NotImplementedError

    def embeds(self) -> frozenset[Modality]:
        """What this function, with its settings, embeds: its class's modalities, or fewer (a provider's
        text-only models beside its multimodal ones)."""
        return self.modalities

    @property
    def normalized(self) -> bool:
        return bool(getattr(self, "normalize", False))

    def health(self) -> bool:
        return True

    # ----- embedding --------------------------------------------------------------------------------
    def embed(self, items: Sequence[Item], purpose: Purpose) -> np.ndarray:
        """Embeds a mixed batch, texts and images each in one call, rows back in the order of `items`."""
        out = np.empty((len(items), self.ndims()), dtype=np.float32)
        texts = [i for i, item in enumerate(items) if isinstance(item, str)]
        images = [i for i, item in enumerate(items) if not isinstance(item, str)]
        if texts:
            out[texts] = self._checked(self._with_retry(self.embed_texts, [items[i] for i in texts], purpose),
                                       len(texts))
        if images:
            out[images] = self._checked(self._with_retry(self.embed_images, [items[i] for i in images], purpose),
                                        len(images))
        return out

    def _checked(self, vectors: np.ndarray, count: int) -> np.ndarray:
        """What a model or an endpoint gave, if it is one vector of the function's dimensions per input."""
        if vectors.shape != (count, self.ndims()):
            raise UpstreamUnavailable(
                f"{self.registry_name}: gave vectors of shape {vectors.shape} for {count} inputs; the function "
                f"gives {self.ndims()} dimensions (is the model the one its settings name?)",
                reason="UPSTREAM_BAD_RESPONSE", function=self.registry_name)
        return vectors

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        raise NotImplementedError(f"{self.registry_name} does not embed text")  # the core checks first

    def embed_images(self, images: list[Image.Image], purpose: Purpose) -> np.ndarray:
        raise NotImplementedError(f"{self.registry_name} does not embed images")  # the core checks first

    # ----- retry --------------------------------------------------------------------------------------
    def is_transient(self, exc: BaseException) -> bool:
        """Whether a failure may pass if tried again (rate limits, 5xx, connection errors, timeouts)."""
        return isinstance(exc, (ConnectionError, TimeoutError))

    def translate_error(self, exc: BaseException) -> BaseException:
        """A permanent failure as the domain error the caller should see; unknown ones pass through."""
        return exc

    def _with_retry(self, call: Callable[..., np.ndarray], *args: Any) -> np.ndarray:
        runtime = self._runtime
        attempts = self.max_retries + 1

        def before_sleep(state: tenacity.RetryCallState) -> None:
            delay = state.next_action.sleep if state.next_action else 0.0
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s: attempt %d of %d failed (%s: %s); retrying in %.2fs", self.registry_name,
                        state.attempt_number, attempts, type(exc).__name__, exc, delay)
            if runtime.on_retry is not None and exc is not None:
                runtime.on_retry(self.registry_name, state.attempt_number, delay, exc)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=tenacity.wait_exponential_jitter(initial=runtime.retry_initial_delay,
                                                  max=runtime.retry_max_delay,
                                                  jitter=runtime.retry_initial_delay),
            retry=tenacity.retry_if_exception(self.is_transient),
            before_sleep=before_sleep,
            reraise=True,
        )
        try:
            result = retrying(call, *args)
        except EmbedError:
            raise
        except Exception as exc:
            if self.is_transient(exc):
                raise UpstreamUnavailable(
                    f"{self.registry_name}: gave up after {attempts} attempt(s); last cause: "
                    f"{type(exc).__name__}: {exc}",
                    function=self.registry_name, attempts=attempts) from exc
            raise self.translate_error(exc) from exc
        return np.asarray(result, dtype=np.float32)


def secret_host_refused(function: str, url: str) -> PermissionDenied:
    """The refusal to send a secret to `url`, outside --secret-allowed-hosts."""
    return _refused(function, url, "sends secrets only to endpoints", "--secret-allowed-hosts",
                    "SECRET_HOST_NOT_ALLOWED")


def _refused(function: str, url: str, rule: str, flag: str, reason: str) -> PermissionDenied:
    place = where(url)  # scheme, host and port only: a path or query may hold what must not be echoed
    return PermissionDenied(f"{function}: the embed service {rule} the operator allowed ({flag}); {place} is not "
                            "one", reason=reason, function=function, host=place.partition("://")[2])
