"""Small models with random weights, made where a test or a benchmark needs them, loaded through the real
library code paths (no download): a 2-layer BERT cross-encoder for the `cross-encoder` rerank function."""

from __future__ import annotations

from pathlib import Path

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
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

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
    BertTokenizerFast(vocab_file=str(vocabulary), do_lower_case=True).save_pretrained(folder)
    return folder
