"""colbert: ColBERT's late interaction (LanceDB's ColbertReranker, and AnswerdotaiRerankers with
model_type="colbert"), hosted by the service.

The query and each document are encoded token by token (a BERT encoder, then the checkpoint's `linear`
projection, each token's vector normalized); a document's score is the sum over the query's tokens of the best
dot product with any of the document's tokens (MaxSim). As ColBERT does, the query's tokens follow the query
marker `[unused0]` and are padded with `[MASK]` to `query_max_length` (those count: query augmentation), and
the document's follow the document marker `[unused1]`.

`name` is a ColBERT checkpoint in the Hugging Face layout (`bert.*` and `linear.weight`; colbert-ir/colbertv2.0
and answerdotai/answerai-colbert-small-v1 are such): a folder under the model roots, or a hub id (with
downloads). Its weights are read as tensors only (safetensors, or `torch.load(weights_only=True)`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pydantic

from embed_service.errors import ModelLoadFailed
from embed_service.functions.base import device_setting, resolve_device, within_window
from embed_service.functions.registry import register
from embed_service.functions.rerank import RerankFunction
from embed_service.torchvision_compat import ensure_torchvision_importable

QUERY_MARKER, DOCUMENT_MARKER = "[unused0]", "[unused1]"


@register("colbert")
class ColbertRerank(RerankFunction):
    description = "ColBERT late-interaction reranker (LanceDB's ColbertReranker)"
    call_settings: ClassVar[frozenset[str]] = frozenset({"max_retries", "batch_size"})

    name: str = pydantic.Field("colbert-ir/colbertv2.0", max_length=4096,
                               description="ColBERT checkpoint folder under the model roots, or a hub id")
    device: str = device_setting()
    batch_size: int = pydantic.Field(32, ge=1, le=256, description="documents per forward pass")
    query_max_length: int = pydantic.Field(32, ge=4, le=512, description="query tokens, padded with [MASK]")
    document_max_length: int = pydantic.Field(256, ge=8, le=512, description="document tokens kept")
    precision: Literal["auto", "fp32", "fp16"] = pydantic.Field(
        "auto", description="auto is fp16 on CUDA and fp32 on CPU")

    _encoder: Any = pydantic.PrivateAttr(None)
    _linear: Any = pydantic.PrivateAttr(None)
    _tokenizer: Any = pydantic.PrivateAttr(None)
    _device: str = pydantic.PrivateAttr("cpu")
    _positions: int = pydantic.PrivateAttr(512)  # the encoder's position embeddings: the most tokens it takes

    def _load(self) -> None:
        ensure_torchvision_importable()
        import torch
        from transformers import AutoModel, AutoTokenizer

        device = resolve_device(self.device)
        source = self.model_source(self.name)
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            encoder = AutoModel.from_pretrained(source)
            projection = _linear_weight(source)
        except Exception as exc:  # its text may name the model roots or the hub cache: the type only
            raise ModelLoadFailed(f"colbert could not load {self.name!r} ({type(exc).__name__}); a ColBERT "
                                  "checkpoint is one model.safetensors or pytorch_model.bin with bert.* and "
                                  "linear.weight", function="colbert") from exc
        missing = [t for t in (QUERY_MARKER, DOCUMENT_MARKER, tokenizer.mask_token)
                   if t is None or tokenizer.convert_tokens_to_ids(t) == tokenizer.unk_token_id]
        if missing or projection.shape[1] != encoder.config.hidden_size:
            raise ModelLoadFailed(f"colbert: {self.name!r} is not a ColBERT checkpoint (its vocabulary lacks "
                                  f"{missing} or its linear layer does not fit the encoder)", function="colbert")
        linear = torch.nn.Linear(projection.shape[1], projection.shape[0], bias=False)
        linear.weight.data.copy_(projection)
        half = self.precision == "fp16" or (self.precision == "auto" and device.startswith("cuda"))
        for module in (encoder, linear):
            module.eval()
            module.to(device)
            if half:
                module.half()
        self._encoder, self._linear, self._tokenizer, self._device = encoder, linear, tokenizer, device
        self._positions = int(getattr(encoder.config, "max_position_embeddings", 512))

    def score_pairs(self, query: str, documents: list[str]) -> np.ndarray:
        import torch

        query_length = min(self.query_max_length, self._positions)
        document_length = min(self.document_max_length, self._positions)
        query = within_window([query], query_length)[0]
        documents = within_window(documents, document_length)
        with torch.inference_mode():
            query_vectors, _ = self._encode([query], QUERY_MARKER, query_length, augment=True)
            scores = []
            for start in range(0, len(documents), self.batch_size):
                vectors, valid = self._encode(documents[start:start + self.batch_size], DOCUMENT_MARKER,
                                              document_length, augment=False)
                similarity = torch.einsum("qd,btd->bqt", query_vectors[0], vectors)
                similarity = similarity.masked_fill(~valid[:, None, :], float("-inf"))
                scores.append(similarity.max(dim=2).values.sum(dim=1).float().cpu().numpy())
        return np.concatenate(scores).astype(np.float32)

    def _encode(self, texts: list[str], marker: str, length: int, *, augment: bool) -> tuple[Any, Any]:
        """Each text's token vectors (normalized) and which of them are real tokens: `[CLS] marker text
        [SEP]`, cut to `length`; with `augment`, padded with `[MASK]` to `length` (and attended to)."""
        import torch

        tokenizer = self._tokenizer
        encoded = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=length - 3)["input_ids"]
        marker_id = tokenizer.convert_tokens_to_ids(marker)
        rows = [[tokenizer.cls_token_id, marker_id, *ids, tokenizer.sep_token_id] for ids in encoded]
        width = length if augment else max(len(r) for r in rows)
        filler = tokenizer.mask_token_id if augment else tokenizer.pad_token_id
        ids = torch.tensor([r + [filler] * (width - len(r)) for r in rows], device=self._device)
        valid = torch.tensor([[True] * len(r) + [augment] * (width - len(r)) for r in rows], device=self._device)
        hidden = self._encoder(input_ids=ids, attention_mask=valid.long()).last_hidden_state
        vectors = torch.nn.functional.normalize(self._linear(hidden), p=2, dim=-1)
        return vectors, valid


def _linear_weight(source: str) -> Any:
    """The checkpoint's `linear.weight` (the projection to ColBERT's token vectors), read as a tensor only."""
    import torch

    folder = Path(source)
    if not folder.is_dir():  # a hub id: the files of its snapshot
        from huggingface_hub import snapshot_download

        folder = Path(snapshot_download(source, allow_patterns=["*.safetensors", "*.bin", "*.json", "*.txt"]))
    safetensors = folder / "model.safetensors"
    if not safetensors.is_file() and not (folder / "pytorch_model.bin").is_file():
        raise FileNotFoundError("no model.safetensors or pytorch_model.bin (a sharded checkpoint is not read)")
    if safetensors.is_file():
        from safetensors import safe_open

        with safe_open(str(safetensors), framework="pt") as weights:
            return weights.get_tensor("linear.weight")
    return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)["linear.weight"]
