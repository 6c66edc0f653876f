"""`get_registry()`: LanceDB's registry of embedding functions. Names registered in this process
(`@register("name")` on an `EmbeddingFunction` subclass) are local functions; any other name is a function
the embed service hosts, resolved through the store."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from vectorlane.embeddings.base import EmbeddingFunction, ServerFunction


class ServerFunctionFactory:
    """What `get_registry().get(name)` gives for a name not registered here: `.create(**settings)`."""

    def __init__(self, name: str) -> None:
        self.name = name

    def create(self, **settings: Any) -> ServerFunction:
        return ServerFunction.named(self.name, **settings)

    def __repr__(self) -> str:
        return f"ServerFunctionFactory({self.name!r})"


class EmbeddingFunctionRegistry:
    def __init__(self) -> None:
        self._local: dict[str, type[EmbeddingFunction]] = {}
        self._lock = threading.Lock()

    def register(self, name: str) -> Callable[[type[EmbeddingFunction]], type[EmbeddingFunction]]:
        """Class decorator: makes `name` a local function implemented by the class."""
        if not name:
            raise ValueError("a function needs a registry name")

        def decorate(cls: type[EmbeddingFunction]) -> type[EmbeddingFunction]:
            if not (isinstance(cls, type) and issubclass(cls, EmbeddingFunction)):
                raise TypeError(f"@register({name!r}) needs an EmbeddingFunction subclass, not {cls!r}")
            with self._lock:
                if name in self._local and self._local[name] is not cls:
                    raise ValueError(f"{name!r} is already registered by {self._local[name].__name__}")
                self._local[name] = cls
            cls.registry_name = name
            return cls
        return decorate

    def unregister(self, name: str) -> None:
        with self._lock:
            self._local.pop(name, None)

    def get(self, name: str) -> type[EmbeddingFunction] | ServerFunctionFactory:
        """The local function class registered as `name`, or else the embed service's function `name`."""
        with self._lock:
            local = self._local.get(name)
        return local if local is not None else ServerFunctionFactory(name)

    def local_names(self) -> list[str]:
        with self._lock:
            return sorted(self._local)

    def function_for(self, name: str, settings: dict[str, Any]) -> EmbeddingFunction:
        """The function a table's metadata names, rebuilt with its recorded settings."""
        return self.get(name).create(**settings)


_REGISTRY = EmbeddingFunctionRegistry()


def get_registry() -> EmbeddingFunctionRegistry:
    return _REGISTRY


def register(name: str) -> Callable[[type[EmbeddingFunction]], type[EmbeddingFunction]]:
    return _REGISTRY.register(name)
