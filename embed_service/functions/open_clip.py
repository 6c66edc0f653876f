"""open-clip: OpenCLIP models for text and images in one vector space.

Text inputs embed through the text tower, images through the vision tower, so a text query finds images.
`name` is an architecture known to open_clip or a path to a custom architecture config (JSON) under the
model roots; `pretrained` is a tag open_clip knows or a local checkpoint file (a state dict) under them.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydantic
from PIL import Image

from embed_service.errors import ModelLoadFailed
from embed_service.functions.base import (EmbeddingFunction, Modality, Purpose, looks_like_path,
                                          resolve_device)
from embed_service.functions.registry import register
from embed_service.torchvision_compat import ensure_torchvision_importable

_config_lock = threading.Lock()


@register("open-clip")
class OpenClipEmbeddings(EmbeddingFunction):
    description = "OpenCLIP text and image embeddings (open_clip_torch)"
    modalities = frozenset({Modality.TEXT, Modality.IMAGE})

    name: str = pydantic.Field("ViT-B-32", description="architecture, or a custom architecture JSON file")
    pretrained: str | None = pydantic.Field("laion2b_s34b_b79k",
                                            description="pretrained tag, or a local checkpoint file")
    device: str = pydantic.Field("auto", description="auto (CUDA when present, else CPU), cpu, cuda, cuda:N")
    batch_size: int = pydantic.Field(64, ge=1, le=4096, description="inputs per forward pass")
    normalize: bool = pydantic.Field(True, description="return unit-length vectors")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = pydantic.Field(
        "auto", description="auto is fp16 on CUDA and fp32 on CPU")

    _model: Any = pydantic.PrivateAttr(None)
    _preprocess: Any = pydantic.PrivateAttr(None)
    _tokenizer: Any = pydantic.PrivateAttr(None)
    _device: str = pydantic.PrivateAttr("cpu")
    _ndims: int = pydantic.PrivateAttr(0)

    def _load(self) -> None:
        ensure_torchvision_importable()
        import open_clip
        import torch

        device = resolve_device(self.device)
        precision = self.precision
        if precision == "auto":
            precision = "fp16" if device.startswith("cuda") else "fp32"
        architecture = self._architecture(open_clip)
        pretrained = self.pretrained
        if pretrained is not None and looks_like_path(pretrained):
            pretrained = str(self._runtime.local_model_file(pretrained, setting="pretrained"))
        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                architecture, pretrained=pretrained, device=device, precision=precision)
            tokenizer = open_clip.get_tokenizer(architecture)
        except Exception as exc:
            raise ModelLoadFailed(f"open-clip could not load {self.name!r} (pretrained={self.pretrained!r}): "
                                  f"{type(exc).__name__}: {exc}", function="open-clip") from exc
        model.eval()
        self._model, self._preprocess, self._tokenizer = model, preprocess, tokenizer
        self._device = device
        with torch.no_grad():
            self._ndims = int(model.encode_text(tokenizer(["probe"]).to(device)).shape[-1])

    def _architecture(self, open_clip: Any) -> str:
        if not looks_like_path(self.name):
            if self.name not in open_clip.list_models():
                raise ModelLoadFailed(f"open-clip has no architecture {self.name!r}", function="open-clip",
                                      setting="name")
            return self.name
        path = self._runtime.local_model_file(self.name, setting="name")
        if not path.is_file():
            raise ModelLoadFailed(f"architecture config {self.name!r} does not exist", function="open-clip",
                                  setting="name")
        with _config_lock:  # open_clip's config registry is a module-level dict
            try:
                open_clip.add_model_config(path)
            except Exception as exc:
                raise ModelLoadFailed(f"architecture config {self.name!r} is not valid: {exc}",
                                      function="open-clip", setting="name") from exc
        return Path(path).stem

    def ndims(self) -> int:
        return self._ndims

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        return self._encode(texts, lambda chunk: self._tokenizer(chunk), self._model.encode_text)

    def embed_images(self, images: list[Image.Image], purpose: Purpose) -> np.ndarray:
        import torch

        def prepare(chunk: list[Image.Image]) -> Any:
            return torch.stack([self._preprocess(image.convert("RGB")) for image in chunk])

        return self._encode(images, prepare, self._model.encode_image)

    def _encode(self, items: list[Any], prepare: Any, encode: Any) -> np.ndarray:
        import torch

        parts = []
        with torch.no_grad():
            for start in range(0, len(items), self.batch_size):
                batch = prepare(items[start:start + self.batch_size]).to(self._device)
                vectors = encode(batch).float()
                if self.normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
                parts.append(vectors.cpu().numpy())
        return np.concatenate(parts).astype(np.float32, copy=False)
