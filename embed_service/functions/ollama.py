"""ollama: an Ollama server's embed API (POST /api/embed), as LanceDB's `ollama` function calls it.

Settings as in LanceDB: `name` (the model the server has pulled), `host`, `options` (the model's runtime
options), `keep_alive`. Ollama takes no key. The dimensions are learnt by embedding one text, as LanceDB does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pydantic

from embed_service.errors import InvalidSettings
from embed_service.functions.base import Modality, Purpose
from embed_service.functions.http_api import HttpApiFunction, batches, check_url
from embed_service.functions.registry import register

MAX_OPTIONS = 64


@register("ollama")
class OllamaEmbeddings(HttpApiFunction):
    description = "an Ollama server's embeddings (POST /api/embed)"
    modalities = frozenset({Modality.TEXT})

    name: str = pydantic.Field("nomic-embed-text", max_length=256, description="a model the server has pulled")
    host: str = pydantic.Field("http://localhost:11434", max_length=2048, description="the Ollama server")
    options: dict[str, Any] | None = pydantic.Field(None, description="the model's runtime options")
    keep_alive: float | str | None = pydantic.Field(None, description="how long the server keeps the model "
                                                                      "loaded (seconds, or '5m')")
    ollama_client_kwargs: dict[str, Any] = pydantic.Field(
        default_factory=dict, description="LanceDB passes these to its client; only {} is taken here")
    batch_size: int = pydantic.Field(256, ge=1, le=4096, description="texts per API request")

    @pydantic.field_validator("host")
    @classmethod
    def _host_url(cls, value: str) -> str:
        return check_url(value, setting="host", function="ollama") or value

    @pydantic.field_validator("options")
    @classmethod
    def _few_options(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and len(value) > MAX_OPTIONS:
            raise ValueError(f"at most {MAX_OPTIONS} options")
        return value

    @pydantic.field_validator("ollama_client_kwargs")
    @classmethod
    def _no_client_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            raise InvalidSettings("function 'ollama': ollama_client_kwargs configure a client in LanceDB's "
                                  "process; the embed service's client takes host and timeout only",
                                  function="ollama", setting="ollama_client_kwargs")
        return value

    @property
    def api_root(self) -> str:
        return self.host.rstrip("/")

    def ndims(self) -> int:
        return self.probe_ndims()

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        parts = []
        for chunk in batches(texts, self.batch_size):
            body: dict[str, Any] = {"model": self.name, "input": list(chunk)}
            if self.options is not None:
                body["options"] = self.options
            if self.keep_alive is not None:
                body["keep_alive"] = self.keep_alive
            answer = self.post(f"{self.api_root}/api/embed", body, inputs=len(chunk))
            parts.append(self.vectors(answer.get("embeddings") if isinstance(answer, dict) else None, len(chunk)))
        return np.concatenate(parts)
