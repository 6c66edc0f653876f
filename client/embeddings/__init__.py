"""Embedding functions, as in LanceDB: `get_registry().get(name).create(**settings)`, `@register`,
`EmbeddingFunction`, `TextEmbeddingFunction`, and `EmbeddingFunctionConfig` (what a table records)."""

from vectorlane.embeddings.base import EmbeddingFunction, ServerFunction, TextEmbeddingFunction
from vectorlane.embeddings.config import EmbeddingFunctionConfig
from vectorlane.embeddings.registry import EmbeddingFunctionRegistry, get_registry, register

__all__ = ["EmbeddingFunction", "EmbeddingFunctionConfig", "EmbeddingFunctionRegistry", "ServerFunction",
           "TextEmbeddingFunction", "get_registry", "register"]
