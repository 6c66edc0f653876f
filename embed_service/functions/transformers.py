"""huggingface: any model `transformers.AutoModel` loads, as LanceDB's `huggingface` function uses it: the
mean of the last hidden state over each text's tokens.

`name` is a model folder under the operator's model roots (or a hub id, where downloads are allowed);
`device` and `trust_remote_code` as in LanceDB (remote code only where the operator allows it). Texts are
embedded in batches of `batch_size`; the mean counts only each text's own tokens (padding masked), which
gives what LanceDB's one-text-at-a-time loop gives.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pydantic

from embed_service.errors import ModelLoadFailed
from embed_service.functions.base import (EmbeddingFunction, Modality, Purpose, device_setting, resolve_device,
                                          within_window)
from embed_service.functions.registry import register
from embed_service.torchvision_compat import ensure_torchvision_importable

DEFAULT_WINDOW = 512


@register("huggingface")
class TransformersEmbeddings(EmbeddingFunction):
    description = "a transformers model's mean-pooled last hidden state (LanceDB's huggingface function)"
    modalities = frozenset({Modality.TEXT})
    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries", "batch_size"})

    name: str = pydantic.Field("colbert-ir/colbertv2.0", max_length=4096,
                               description="model folder under the model roots, or a hub id (with downloads)")
    device: str = device_setting()
    trust_remote_code: bool = pydantic.Field(False, description="let the model folder run its own code")
    batch_size: int = pydantic.Field(32, ge=1, le=1024, description="texts per forward pass")

    _model: Any = pydantic.PrivateAttr(None)
    _tokenizer: Any = pydantic.PrivateAttr(None)
    _device: str = pydantic.PrivateAttr("cpu")

    def _load(self) -> None:
        ensure_torchvision_importable()
        import transformers

        self._device = resolve_device(self.device)
        sources = self._runtime.sources
        local = sources.find_local(self.name, folder=True)
        source = str(local) if local is not None else sources.hub(self.name, setting="name", function="huggingface")
        try:
            self._tokenizer = transformers.AutoTokenizer.from_pretrained(
                source, trust_remote_code=self.trust_remote_code)
            model = transformers.AutoModel.from_pretrained(source, trust_remote_code=self.trust_remote_code)
        except Exception as exc:
            raise ModelLoadFailed(f"huggingface could not load {self.name!r}: {type(exc).__name__}: {exc}",
                                  function="huggingface") from exc
        self._model = model.to(self._device).eval()

    def ndims(self) -> int:
        return int(self._model.config.hidden_size)

    def _window(self) -> int:
        limit = getattr(self._tokenizer, "model_max_length", DEFAULT_WINDOW) or DEFAULT_WINDOW
        positions = getattr(self._model.config, "max_position_embeddings", limit) or limit
        return int(min(limit, positions, 8192))

    def embed_texts(self, texts: list[str], purpose: Purpose) -> np.ndarray:
        import torch

        window = self._window()
        texts = within_window(texts, window)
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                encoded = self._tokenizer(texts[start:start + self.batch_size], return_tensors="pt", padding=True,
                                          truncation=True, max_length=window).to(self._device)
                hidden = self._model(**encoded).last_hidden_state
                mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
                out.append(mean.float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)
