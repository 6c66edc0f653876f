"""LanceDB's `tokenize`: a text split into the tokens a full-text index with given settings would keep.

`vectorlane.tokenize(...)` runs Lance's tokenizer in this process, as `lancedb.tokenize` does, when pylance is
installed here; `db.tokenize(...)` asks the store (which needs nothing here, and uses the store's language
models); `table.tokenize(text, column=...)` uses an existing index's own settings.
"""

from __future__ import annotations

from typing import Any

from vectorlane.index import FTS
from vectorlane.results import FtsToken


def settings(*, base_tokenizer: str = "simple", language: str = "English", max_token_length: int | None = 40,
             lower_case: bool = True, stem: bool = True, remove_stop_words: bool = True,
             custom_stop_words: list[str] | None = None, ascii_folding: bool = True, ngram_min_length: int = 3,
             ngram_max_length: int = 3, prefix_only: bool = False) -> FTS:
    """LanceDB's tokenizer options (its defaults) as an FTS configuration."""
    return FTS(base_tokenizer=base_tokenizer, language=language, max_token_length=max_token_length,
               lower_case=lower_case, stem=stem, remove_stop_words=remove_stop_words,
               custom_stop_words=custom_stop_words, ascii_folding=ascii_folding, ngram_min_length=ngram_min_length,
               ngram_max_length=ngram_max_length, prefix_only=prefix_only)


def tokenize(query: str, **options: Any) -> list[FtsToken]:
    """`query`'s tokens with LanceDB's tokenizer options (see `settings`), by Lance's tokenizer in this process
    (ImportError without pylance: use `db.tokenize`, which asks the store)."""
    config = settings(**options)
    config.tokenizer_proto()  # LanceDB's checks, with its errors
    try:
        import lance
    except ImportError:
        raise ImportError("vectorlane.tokenize runs Lance's tokenizer in this process: pip install pylance, or "
                          "call db.tokenize(...) to tokenize in the store") from None
    found = lance.tokenize(
        query, base_tokenizer=config.base_tokenizer, language=config.language.capitalize(),
        max_token_length=config.max_token_length, lower_case=config.lower_case, stem=config.stem,
        remove_stop_words=config.remove_stop_words, custom_stop_words=config.custom_stop_words,
        ascii_folding=config.ascii_folding, min_ngram_length=config.ngram_min_length,
        max_ngram_length=config.ngram_max_length, prefix_only=config.prefix_only)
    return [FtsToken(str(t.text), int(t.position)) for t in found]


__all__ = ["settings", "tokenize"]
