"""Embedding functions, one module each, registered by name. Plug-ins subclass EmbeddingFunction."""

from embed_service.functions.base import EmbeddingFunction, FunctionRuntime, Modality, Purpose
from embed_service.functions.registry import ENTRY_POINT_GROUP, Registry, get_registry, register

__all__ = [
    "ENTRY_POINT_GROUP",
    "EmbeddingFunction",
    "FunctionRuntime",
    "Modality",
    "Purpose",
    "Registry",
    "get_registry",
    "register",
]
