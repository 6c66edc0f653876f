"""open-clip: OpenCLIP models for text and images in one vector space.

Text inputs embed through the text tower, images through the vision tower, so a text query finds images.
`name` is an architecture known to open_clip or a custom architecture config (JSON) under the model roots;
`pretrained` is a local checkpoint file (a state dict) under them, or a tag open_clip knows (downloaded, so
only where the operator allows downloads, as for architectures whose text tower or tokenizer comes from a
hub).
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Literal

import numpy as np
import pydantic
from PIL import Image

from embed_service.errors import EmbedError, ModelLoadFailed
from embed_service.functions.base import (EmbeddingFunction, Modality, Purpose, device_setting, resolve_device,
                                          within_window)
from embed_service.functions.model_sources import is_hub_id
from embed_service.functions.registry import register
from embed_service.torchvision_compat import ensure_torchvision_importable

_config_lock = threading.Lock()


@register("open-clip")
class OpenClipEmbeddings(EmbeddingFunction):
    description = "OpenCLIP text and image embeddings (open_clip_torch)"
    modalities = frozenset({Modality.TEXT, Modality.IMAGE})
    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries", "batch_size", "normalize"})

    name: str = pydantic.Field("ViT-B-32", max_length=4096,
                               description="architecture, or a custom architecture JSON file under the model roots")
    pretrained: str | None = pydantic.Field("laion2b_s34b_b79k", max_length=4096,
                                            description="checkpoint file under the model roots, or a pretrained "
                                                        "tag (with downloads)")
    device: str = device_setting()
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
        try:
            with _config_lock:  # a custom config is registered by file name in open_clip's module-level dict
                architecture = self._architecture(open_clip)
                pretrained = self._checkpoint(open_clip, architecture)
                model, _, preprocess = open_clip.create_model_and_transforms(
                    architecture, pretrained=pretrained, device=device, precision=precision)
                tokenizer = open_clip.get_tokenizer(architecture)
        except EmbedError:
            raise
        except Exception as exc:
            raise ModelLoadFailed(f"open-clip could not load {self.name!r} (pretrained={self.pretrained!r}): "
                                  f"{type(exc).__name__}: {exc}", function="open-clip") from exc
        model.eval()
        self._model, self._preprocess, self._tokenizer = model, preprocess, tokenizer
        self._device = device
        with torch.no_grad():
            self._ndims = int(model.encode_text(tokenizer(["probe"]).to(device)).shape[-1])

    def _architecture(self, open_clip: Any) -> str:
        """The architecture to build: a built-in one (refused without downloads if a part of it comes from a
        hub), or a config file under the model roots, registered under its file name."""
        sources = self._runtime.sources
        if self.name in open_clip.list_models():
            text = (open_clip.get_model_config(self.name) or {}).get("text_cfg", {})
            if text.get("hf_model_name") or text.get("hf_tokenizer_name") or "siglip" in self.name.lower():
                sources.hub(self.name, setting="name", function="open-clip", path_first=False)
            return self.name
        path = sources.find_local(self.name)
        if path is None:
            if is_hub_id(self.name):  # not path syntax: a name open_clip does not know
                raise ModelLoadFailed(f"open-clip has no architecture {self.name!r}", function="open-clip",
                                      setting="name")
            raise sources.local_refusal("name")
        try:
            open_clip.add_model_config(path)
        except Exception as exc:
            raise ModelLoadFailed(f"architecture config {self.name!r} is not valid: {exc}",
                                  function="open-clip", setting="name") from exc
        if path.stem not in open_clip.list_models():
            raise ModelLoadFailed(f"architecture config {self.name!r} is not an open_clip model config",
                                  function="open-clip", setting="name")
        return path.stem

    def _checkpoint(self, open_clip: Any, architecture: str) -> str | None:
        """What open_clip loads the weights from: None (random), a file under the model roots, or a tag it
        downloads (with downloads allowed)."""
        if self.pretrained is None:
            return None
        sources = self._runtime.sources
        local = sources.find_local(self.pretrained)
        if local is not None:
            return str(local)
        if self.pretrained in open_clip.list_pretrained_tags_by_model(architecture):
            return sources.hub(self.pretrained, setting="pretrained", function="open-clip", path_first=False)
        raise sources.local_refusal("pretrained")

    def ndims(self) -> int:
        return self._ndims

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        texts = within_window(texts, int(getattr(self._tokenizer, "context_length", 77) or 77))
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
