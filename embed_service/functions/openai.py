"""openai: the OpenAI embeddings API, or any server that speaks it (vLLM, TEI, Ollama, Infinity).

The request is the API's own (`POST {base_url}/embeddings` with `input`, `model`, `encoding_format: float`,
and `dimensions` for models that take it), sent through the path every HTTP provider shares (`http_api`):
only to endpoints the operator allowed, no redirects followed (a 307 could carry the texts and the key
elsewhere), an answer read up to its cap and checked for shape, the provider's error text passed on without
the key. The OpenAI SDK's own HTTP client followed redirects and echoed the endpoint's message whole; it is
not used here.

The API key is a secret: settings carry only a reference (`$var:name`), resolved by the embed service, and
sent only to an endpoint `--secret-allowed-hosts` admits (scheme, host and port). With no `api_key`, the
service's own OPENAI_API_KEY goes to trusted endpoints; a `base_url` server that needs no key (a local vLLM)
gets no Authorization header. A `base_url` carrying credentials (`user:pass@`, a key in its query) is
refused like a literal key.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pydantic

from embed_service.functions.base import Modality, Purpose
from embed_service.functions.http_api import KeyedApiFunction, batches, indexed
from embed_service.functions.registry import register

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_INPUTS = 2048  # the API's limit per request

KNOWN_DIMENSIONS = {
    "text-embedding-ada-002": 1536,
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
}


@register("openai")
class OpenAIEmbeddings(KeyedApiFunction):
    description = "OpenAI embeddings API, or any OpenAI-compatible endpoint through base_url"
    modalities = frozenset({Modality.TEXT})
    default_url: ClassVar[str] = DEFAULT_BASE_URL
    key_variable: ClassVar[str] = "OPENAI_API_KEY"

    name: str = pydantic.Field("text-embedding-ada-002", max_length=256,
                               description="the model name the endpoint knows")
    dim: int | None = pydantic.Field(None, ge=1, le=65536,
                                     description="output dimensions (models that accept `dimensions`)")
    organization: str | None = pydantic.Field(None, max_length=256, pattern=r"^[A-Za-z0-9_-]*$",
                                              description="OpenAI organization id")
    batch_size: int = pydantic.Field(MAX_INPUTS, ge=1, le=MAX_INPUTS, description="inputs per API request")

    @property
    def normalized(self) -> bool:
        return self.base_url is None and self.name in KNOWN_DIMENSIONS

    def ndims(self) -> int:
        known = self.dim or (KNOWN_DIMENSIONS.get(self.name) if self.base_url is None else None)
        return known or self.probe_ndims()  # an unknown model behind base_url: asked once

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        body: dict[str, Any] = {"model": self.name, "encoding_format": "float"}
        if self.dim is not None and self.name != "text-embedding-ada-002":
            body["dimensions"] = self.dim
        headers = self.bearer()
        if self.organization:
            headers["OpenAI-Organization"] = self.organization
        parts = []
        for chunk in batches(texts, self.batch_size):
            answer = self.post(f"{self.api_root}/embeddings", {**body, "input": list(chunk)}, headers=headers,
                               inputs=len(chunk))
            parts.append(self.vectors(indexed(answer, len(chunk)), len(chunk)))
        return np.concatenate(parts)
