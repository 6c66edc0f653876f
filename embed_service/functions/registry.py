"""The registry of embedding functions: `@register("name")`, look-up, and plug-in discovery.

Plug-ins add functions without editing the service: a distribution declares an entry point in the group
`vectorlane.embeddings` naming a module (or an object in one); importing it runs its `@register`.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import TypeVar

from embed_service.errors import UnknownFunction
from embed_service.functions.base import EmbeddingFunction

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "vectorlane.embeddings"
BUILT_IN_MODULES = (
    "embed_service.functions.open_clip",
    "embed_service.functions.openai",
    "embed_service.functions.sentence_transformers",
    "embed_service.functions.transformers",
    "embed_service.functions.ollama",
    "embed_service.functions.cohere",
    "embed_service.functions.jina",
    "embed_service.functions.voyageai",
    "embed_service.functions.gemini_text",
    "embed_service.functions.bedrock",
    "embed_service.functions.watsonx",
    "embed_service.functions.cross_encoder",
    "embed_service.functions.colbert",
    "embed_service.functions.rerank_apis",
)

F = TypeVar("F", bound=type[EmbeddingFunction])


class Registry:
    def __init__(self) -> None:
        self._functions: dict[str, type[EmbeddingFunction]] = {}
        self._lock = threading.Lock()
        self._discovery_lock = threading.RLock()
        self._discovered = False

    def register(self, name: str) -> Callable[[F], F]:
        def decorate(cls: F) -> F:
            with self._lock:
                existing = self._functions.get(name)
                if existing is not None and existing is not cls:
                    log.warning("function %r from %s replaces %s", name, cls.__module__, existing.__module__)
                cls.registry_name = name
                self._functions[name] = cls
            return cls

        return decorate

    def unregister(self, name: str) -> None:
        with self._lock:
            self._functions.pop(name, None)

    def get(self, name: str) -> type[EmbeddingFunction]:
        self.discover()
        try:
            return self._functions[name]
        except KeyError:
            raise UnknownFunction(
                f"no embedding function named {name!r}; registered: {', '.join(self.names())}",
                function=name) from None

    def names(self) -> list[str]:
        self.discover()
        return sorted(self._functions)

    def discover(self) -> None:
        """Imports the built-in functions and every plug-in entry point, once."""
        if self._discovered:
            return
        with self._discovery_lock:  # callers on other threads wait for the whole registry, not a part
            if self._discovered:
                return
            for module in BUILT_IN_MODULES:
                importlib.import_module(module)
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    ep.load()
                    log.info("loaded embedding-function plug-in %s (%s)", ep.name, ep.value)
                except Exception:
                    log.exception("plug-in %s (%s) failed to load; skipping it", ep.name, ep.value)
            self._discovered = True

    def rediscover(self) -> None:
        self._discovered = False
        self.discover()


_REGISTRY = Registry()


def get_registry() -> Registry:
    return _REGISTRY


def register(name: str) -> Callable[[F], F]:
    """Class decorator adding an EmbeddingFunction subclass to the registry under `name`."""
    return _REGISTRY.register(name)
