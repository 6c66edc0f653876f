"""cross-encoder: a sentence-transformers CrossEncoder scoring (query, document) pairs, LanceDB's
CrossEncoderReranker model hosted by the service (CPU or CUDA, fp16 on CUDA by default).

`name` is a model folder under the model roots, or a hub id (which needs the hub to be reachable); LanceDB's
default, cross-encoder/ms-marco-TinyBERT-L-6, is such an id. Texts are cut to the model's window first.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pydantic

from embed_service.errors import ModelLoadFailed
from embed_service.functions.base import device_setting, resolve_device, within_window
from embed_service.functions.registry import register
from embed_service.functions.rerank import RerankFunction
from embed_service.torchvision_compat import ensure_torchvision_importable


@register("cross-encoder")
class CrossEncoderRerank(RerankFunction):
    description = "sentence-transformers CrossEncoder reranker (LanceDB's CrossEncoderReranker)"
    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries", "batch_size"})

    name: str = pydantic.Field("cross-encoder/ms-marco-TinyBERT-L-6", max_length=4096,
                               description="model folder under the model roots, or a hub id (with downloads)")
    device: str = device_setting()
    batch_size: int = pydantic.Field(32, ge=1, le=256, description="pairs per forward pass")
    precision: Literal["auto", "fp32", "fp16"] = pydantic.Field(
        "auto", description="auto is fp16 on CUDA and fp32 on CPU")
    trust_remote_code: bool = pydantic.Field(False, description="let the model folder run its own code")

    _model: Any = pydantic.PrivateAttr(None)

    def _load(self) -> None:
        ensure_torchvision_importable()
        from sentence_transformers import CrossEncoder

        device = resolve_device(self.device)
        source = self.model_source(self.name)
        try:
            model = CrossEncoder(source, device=device, trust_remote_code=self.trust_remote_code)
        except Exception as exc:
            raise ModelLoadFailed(f"cross-encoder could not load {self.name!r}: {type(exc).__name__}: {exc}",
                                  function="cross-encoder") from exc
        if self.precision == "fp16" or (self.precision == "auto" and device.startswith("cuda")):
            model.model.half()
        self._model = model

    def score_pairs(self, query: str, documents: list[str]) -> np.ndarray:
        window = int(getattr(self._model, "max_length", None) or 512)
        query = within_window([query], window)[0]
        pairs = [(query, text) for text in within_window(documents, window)]
        scores = self._model.predict(pairs, batch_size=self.batch_size, convert_to_numpy=True,
                                     show_progress_bar=False)
        return np.asarray(scores, dtype=np.float32)
