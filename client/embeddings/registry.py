"""`get_registry()`: LanceDB's registry of embedding functions. Names registered in this process
(`@register("name")` on an `EmbeddingFunction` subclass) are local functions; any other name is a function
the embed service hosts, resolved through the store.

It also turns functions into a table's `embedding_functions` metadata and back (`get_table_metadata`,
`parse_functions`), in LanceDB's JSON layout, and holds the `$var:` variables local functions read."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from vectorlane.embeddings import variables
from vectorlane.embeddings.base import EmbeddingFunction, ServerFunction

if TYPE_CHECKING:
    from vectorlane.embeddings.config import EmbeddingFunctionConfig

METADATA_KEY = "embedding_functions"


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

    @classmethod
    def get_instance(cls) -> "EmbeddingFunctionRegistry":
        """The process-wide registry (the one `get_registry()` returns)."""
        return _REGISTRY

    def register(self, name: str | None = None) -> Callable[[type[EmbeddingFunction]], type[EmbeddingFunction]]:
        """Class decorator: makes `name` (default: the class's name) a local function implemented by the
        class. Registering a name again replaces the class behind it, as in LanceDB."""
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError("a function's registry name is a non-empty string")

        def decorate(cls: type[EmbeddingFunction]) -> type[EmbeddingFunction]:
            if not (isinstance(cls, type) and issubclass(cls, EmbeddingFunction)):
                raise TypeError(f"@register({name!r}) needs an EmbeddingFunction subclass, not {cls!r}")
            if issubclass(cls, ServerFunction):
                raise TypeError("ServerFunction stands for the embed service's functions; it is not registered")
            key = name or cls.__name__
            with self._lock:
                self._local[key] = cls
            cls.registry_name = key
            return cls
        return decorate

    def unregister(self, name: str) -> None:
        with self._lock:
            self._local.pop(name, None)

    def get(self, name: str) -> type[EmbeddingFunction] | ServerFunctionFactory:
        """The local function class registered as `name`, or else the embed service's function `name`
        (whether the service hosts it is asked when it is first used: `ndims()`, a table, a search)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a function's registry name is a non-empty string, not {name!r}")
        with self._lock:
            local = self._local.get(name)
        return local if local is not None else ServerFunctionFactory(name)

    def local_names(self) -> list[str]:
        with self._lock:
            return sorted(self._local)

    def function_for(self, name: str, settings: dict[str, Any]) -> EmbeddingFunction:
        """The function a table's metadata names, rebuilt with its recorded settings."""
        return self.get(name).create(**settings)

    # ----- variables (local functions' `$var:name` settings) ------------------------------------------
    def set_var(self, name: str, value: str) -> None:
        """Sets `$var:name` for local functions created from now on. Functions the embed service hosts
        resolve their references there (from its mounted secrets), never from this process."""
        variables.set_var(name, value)

    def get_var(self, name: str) -> str:
        return variables.get_var(name)

    # ----- table metadata -----------------------------------------------------------------------------
    def function_to_metadata(self, config: "EmbeddingFunctionConfig") -> dict[str, Any]:
        """One entry of `embedding_functions`: name, model (settings as given), source and vector column."""
        entry = {"name": config.function.function_name, "model": config.function.safe_model_dump(),
                 "source_column": config.source_column, "vector_column": config.vector_column}
        return {**entry, "source_type": config.source_type} if config.source_type else entry

    def get_table_metadata(self, configs: list["EmbeddingFunctionConfig"] | None) -> dict[str, bytes] | None:
        """Arrow schema metadata recording `configs` (None for none), as LanceDB writes it."""
        if not configs:
            return None
        entries = [self.function_to_metadata(c) for c in configs]
        return {METADATA_KEY: json.dumps(entries, indent=2).encode()}

    def parse_functions(self, metadata: Mapping[Any, Any] | None) -> dict[str, "EmbeddingFunctionConfig"]:
        """The functions Arrow schema metadata records, by vector column ({} when it records none)."""
        from vectorlane.embeddings.config import EmbeddingFunctionConfig

        if not metadata:
            return {}
        raw = metadata.get(METADATA_KEY.encode(), metadata.get(METADATA_KEY))
        if raw is None:
            return {}
        try:
            entries = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
            parsed = [(e["name"], dict(e.get("model") or {}), e["source_column"], e["vector_column"],
                       e.get("source_type") or None) for e in entries]
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"the schema's embedding_functions metadata is not a list of "
                             f"{{name, model, source_column, vector_column}} entries ({exc})") from exc
        return {vector: EmbeddingFunctionConfig(self.function_for(name, model), source, vector, source_type)
                for name, model, source, vector, source_type in parsed}


_REGISTRY = EmbeddingFunctionRegistry()


def get_registry() -> EmbeddingFunctionRegistry:
    return _REGISTRY


def register(name: str | None = None) -> Callable[[type[EmbeddingFunction]], type[EmbeddingFunction]]:
    return _REGISTRY.register(name)
