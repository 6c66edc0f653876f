"""voyageai: Voyage AI's embeddings APIs: texts (POST /v1/embeddings) and, for its multimodal models, texts
and images (POST /v1/multimodalembeddings).

Settings as in LanceDB: `name` (the model), `output_dimension` (models with flexible dimensions),
`truncation`, and `api_key` (`$var:name`, else the service's own VOYAGE_API_KEY; see `http_api`). Rows are
embedded as `document`, queries as `query`.
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

KNOWN_DIMENSIONS = {
    "voyage-3": 1024, "voyage-3-lite": 512, "voyage-3-large": 1024, "voyage-3.5": 1024, "voyage-3.5-lite": 1024,
    "voyage-code-3": 1024, "voyage-code-2": 1536, "voyage-finance-2": 1024, "voyage-law-2": 1024,
    "voyage-multilingual-2": 1024, "voyage-large-2": 1536, "voyage-2": 1024, "voyage-context-3": 1024,
    "voyage-4": 1024, "voyage-4-lite": 1024, "voyage-4-large": 1024, "voyage-multimodal-3": 1024,
    "voyage-multimodal-3.5": 1024,
}
BATCH_SIZE = 1000  # Voyage's limit of inputs per request


def jpeg_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG")
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


@register("voyageai")
class VoyageAIEmbeddings(KeyedApiFunction):
    description = "Voyage AI embeddings: texts, and images for its multimodal models"
    modalities = frozenset({Modality.TEXT, Modality.IMAGE})
    default_url: ClassVar[str] = "https://api.voyageai.com"
    key_variable: ClassVar[str] = "VOYAGE_API_KEY"

    name: str = pydantic.Field(..., max_length=256, description="the model, e.g. voyage-3.5")
    output_dimension: int | None = pydantic.Field(None, ge=1, le=65536,
                                                  description="output dimensions (models that accept it)")
    truncation: bool = pydantic.Field(True, description="cut inputs past the model's context instead of failing")
    batch_size: int = pydantic.Field(128, ge=1, le=BATCH_SIZE, description="inputs per API request")

    @property
    def multimodal(self) -> bool:
        return "multimodal" in self.name

    def ndims(self) -> int:
        return self.output_dimension or KNOWN_DIMENSIONS.get(self.name) or self.probe_ndims()

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        if self.multimodal:
            return self._embed([{"content": [{"type": "text", "text": t}]} for t in texts], purpose)
        return self._embed(list(texts), purpose)

    def embed_images(self, images: list[Image.Image], purpose: Purpose) -> np.ndarray:
        return self._embed([{"content": [{"type": "image_base64", "image_base64": jpeg_data_url(i)}]}
                            for i in images], purpose)

    def _embed(self, inputs: list[Any], purpose: Purpose) -> np.ndarray:
        path, key = ("/v1/multimodalembeddings", "inputs") if self.multimodal else ("/v1/embeddings", "input")
        parts = []
        for chunk in batches(inputs, self.batch_size):
            body: dict[str, Any] = {"model": self.name, key: list(chunk), "truncation": self.truncation,
                                    "input_type": "query" if purpose is Purpose.QUERY else "document"}
            if self.output_dimension is not None:
                body["output_dimension"] = self.output_dimension
            answer = self.post(self.api_root + path, body, headers=self.bearer(), inputs=len(chunk))
            parts.append(self.vectors(indexed(answer, len(chunk)), len(chunk)))
        return np.concatenate(parts)
