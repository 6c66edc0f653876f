"""jina: Jina AI's embeddings API (POST /v1/embeddings), texts and, for its CLIP models, images.

Settings as in LanceDB: `name` (default jina-clip-v1) and `api_key` (`$var:name`, else the service's own
JINA_API_KEY; see `http_api`). A CLIP model (`jina-clip-*`) embeds texts and images, each input sent as
`{"text": ...}` or `{"image": <base64 PNG>}`; the other models embed texts.
"""

from __future__ import annotations

import base64
import io
from typing import Any, ClassVar

import numpy as np
import pydantic
from PIL import Image

from embed_service.functions.base import Modality, Purpose
from embed_service.functions.http_api import KeyedApiFunction, batches, indexed
from embed_service.functions.registry import register

KNOWN_DIMENSIONS = {"jina-clip-v1": 768, "jina-clip-v2": 1024, "jina-embeddings-v2-base-en": 768,
                    "jina-embeddings-v2-small-en": 512, "jina-embeddings-v3": 1024, "jina-embeddings-v4": 2048}


def png_base64(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


@register("jina")
class JinaEmbeddings(KeyedApiFunction):
    description = "Jina AI embeddings API: texts, and images for its CLIP models"
    modalities = frozenset({Modality.TEXT, Modality.IMAGE})
    default_url: ClassVar[str] = "https://api.jina.ai"
    key_variable: ClassVar[str] = "JINA_API_KEY"

    name: str = pydantic.Field("jina-clip-v1", max_length=256, description="the model")
    batch_size: int = pydantic.Field(128, ge=1, le=2048, description="inputs per API request")

    @property
    def multimodal(self) -> bool:
        return "clip" in self.name

    def ndims(self) -> int:
        return KNOWN_DIMENSIONS.get(self.name) or self.probe_ndims()

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        return self._embed([{"text": t} for t in texts] if self.multimodal else list(texts))

    def embed_images(self, images: list[Image.Image], purpose: Purpose) -> np.ndarray:
        return self._embed([{"image": png_base64(image)} for image in images])

    def _embed(self, inputs: list[Any]) -> np.ndarray:
        parts = []
        for chunk in batches(inputs, self.batch_size):
            answer = self.post(f"{self.api_root}/v1/embeddings", {"model": self.name, "input": list(chunk)},
                               headers=self.bearer(), inputs=len(chunk))
            parts.append(self.vectors(indexed(answer, len(chunk)), len(chunk)))
        return np.concatenate(parts)

