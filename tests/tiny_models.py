"""Small models with random weights, made where a test or a benchmark needs them, loaded through the real
library code paths (no download): a 2-layer BERT cross-encoder for the `cross-encoder` rerank function, and a
ColBERT checkpoint for `colbert`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CROSS_ENCODER_WORDS = ("the a of and to in is apple banana cherry dog fox puppy quick river sun tiger red blue green "
                       "car pie whale song lake fast slow tart night ocean").split()


def tiny_cross_encoder(folder: Path, words: list[str] | None = None, *, hidden: int = 32, layers: int = 2,
                       heads: int = 2) -> Path:
    """A BERT cross-encoder (by default 32 hidden units and 2 layers; `hidden=384, layers=6, heads=12` is
    ms-marco-MiniLM-L-6's shape) with one relevance logit and `words` as its vocabulary, saved in `folder` for
    sentence-transformers' CrossEncoder; returns `folder`."""
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    if folder.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    vocabulary = folder.parent / f"{folder.name}-vocab.txt"
    chosen = list(words or CROSS_ENCODER_WORDS)
    vocabulary.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chosen]))
    torch.manual_seed(4321)
    config = BertConfig(vocab_size=5 + len(chosen), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=hidden * 4 if hidden > 32 else 64,
                        max_position_embeddings=512 if hidden > 32 else 128, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    _tokenizer(vocabulary).save_pretrained(folder)
    return folder


def _tokenizer(vocabulary: Path) -> Any:
    """A lower-casing WordPiece tokenizer of the words in `vocabulary` (one per line), given as a mapping:
    transformers 5 builds a tokenizer of its special tokens alone from a `vocab_file`."""
    from transformers import BertTokenizerFast

    words = vocabulary.read_text().split("\n")
    return BertTokenizerFast(vocab={word: i for i, word in enumerate(words)}, do_lower_case=True)


def tiny_colbert(folder: Path, words: list[str] | None = None, *, hidden: int = 32, layers: int = 2, heads: int = 2,
                 dims: int = 16) -> Path:
    """A ColBERT checkpoint in the Hugging Face layout ColBERT's own are in (`bert.*` and a `linear` projection
    to `dims`-wide token vectors, in model.safetensors), with random weights and `words` (and ColBERT's query
    and document markers, `[unused0]` and `[unused1]`) as its vocabulary; returns `folder`."""
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig, BertModel

    if folder.exists():
        return folder
    folder.mkdir(parents=True)
    vocabulary = folder.parent / f"{folder.name}-vocab.txt"
    chosen = list(words or CROSS_ENCODER_WORDS)
    vocabulary.write_text("\n".join(["[PAD]", "[unused0]", "[unused1]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chosen]))
    torch.manual_seed(2468)
    config = BertConfig(vocab_size=7 + len(chosen), hidden_size=hidden, num_hidden_layers=layers,
                        num_attention_heads=heads, intermediate_size=64, max_position_embeddings=512)
    encoder = BertModel(config, add_pooling_layer=False)
    weights = {f"bert.{name}": tensor.contiguous() for name, tensor in encoder.state_dict().items()}
    weights["linear.weight"] = torch.nn.Linear(hidden, dims, bias=False).weight.detach().contiguous()
    config.save_pretrained(folder)
    save_file(weights, str(folder / "model.safetensors"))
    _tokenizer(vocabulary).save_pretrained(folder)
    return folder
