"""LanceDB's embedding-function classes. A function is a pydantic model whose fields are its settings:

- `ServerFunction`: one the embed service hosts (open-clip, sentence-transformers, openai, ...). The client
  holds only its name and settings; the store computes its vectors, for rows and for queries.
- A *local* function: subclass `EmbeddingFunction` (or `TextEmbeddingFunction`) and decorate it with
  `@register("name")`; it runs in this process and the client sends the vectors it computes.

Either kind marks a model's fields with `SourceField()` / `VectorField()` and is recorded in the table's
metadata as `{"name", "model", "source_column", "vector_column"}`, as LanceDB records it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar, cast

import numpy as np
import pydantic

SOURCE_KEY, VECTOR_KEY = "source_column_for", "vector_column_for"
SOURCE_TYPE_KEY = "source_type"


class EmbeddingFunction(pydantic.BaseModel, ABC):
    """Base of every embedding function; subclass it for a local function with any input type."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True, extra="forbid")
    registry_name: ClassVar[str] = ""  # set by @register

    @classmethod
    def create(cls, **settings: Any) -> "EmbeddingFunction":
        return cls(**settings)

    @property
    def name(self) -> str:
        """The registry name the table records."""
        return self.registry_name

    def settings(self) -> dict[str, Any]:
        """The settings the table records: those given to `create`, as LanceDB records them."""
        return self.model_dump(exclude_unset=True, mode="json")

    @abstractmethod
    def ndims(self) -> int:
        """The length of the vectors."""

    @abstractmethod
    def compute_source_embeddings(self, inputs: list[Any]) -> list[np.ndarray]:
        """One vector per source value (rows being added)."""

    @abstractmethod
    def compute_query_embeddings(self, query: Any) -> list[np.ndarray]:
        """The vector(s) for a search query."""

    @property
    def is_local(self) -> bool:
        return True

    def SourceField(self, source_type: str | None = None, **kwargs: Any) -> Any:  # noqa: N802 - LanceDB's name
        """Marks a model field as this function's input; `source_type="text"` makes a function that embeds
        images too (open-clip) embed the field's strings as text rather than as image URIs."""
        marks: dict[str, Any] = {SOURCE_KEY: self}
        if source_type is not None:
            marks[SOURCE_TYPE_KEY] = source_type
        return pydantic.Field(json_schema_extra=cast(Any, marks), **kwargs)

    def VectorField(self, **kwargs: Any) -> Any:  # noqa: N802 - LanceDB's name
        """Marks a model field as the vectors this function fills (None until the store or client fills it)."""
        kwargs.setdefault("default", None)
        return pydantic.Field(json_schema_extra=cast(Any, {VECTOR_KEY: self}), **kwargs)

    def __hash__(self) -> int:
        return id(self)


class TextEmbeddingFunction(EmbeddingFunction):
    """A local function of text: implement `generate_embeddings(texts)`."""

    @abstractmethod
    def generate_embeddings(self, texts: list[str]) -> list[np.ndarray] | np.ndarray:
        """One vector per text."""

    def compute_source_embeddings(self, inputs: list[Any]) -> list[np.ndarray]:
        return list(np.asarray(self.generate_embeddings([str(t) for t in inputs]), dtype=np.float32))

    def compute_query_embeddings(self, query: Any) -> list[np.ndarray]:
        if not isinstance(query, str):
            raise TypeError(f"{self.name} embeds text; got {type(query).__name__}")
        return self.compute_source_embeddings([query])


class ServerFunction(EmbeddingFunction):
    """A function the embed service hosts, as `get_registry().get(name).create(**settings)` gives it. Its
    settings are checked, and its dimensions learnt, by asking the store (`DescribeFunction`) on first use."""

    model_config = pydantic.ConfigDict(extra="allow")
    _name: str = pydantic.PrivateAttr("")
    _description: Any = pydantic.PrivateAttr(None)

    @classmethod
    def named(cls, registry_name: str, /, **settings: Any) -> "ServerFunction":
        function = cls(**settings)
        function._name = registry_name
        return function

    @property
    def name(self) -> str:
        return self._name

    def settings(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def is_local(self) -> bool:
        return False

    def describe(self) -> Any:
        """The store's `DescribeFunctionResponse` for this function (asked once)."""
        if self._description is None:
            from vectorlane.connection import describe_function
            self._description = describe_function(self.name, self.settings())
        return self._description

    def ndims(self) -> int:
        return self.describe().dimensions

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.describe().modalities)

    def compute_source_embeddings(self, inputs: list[Any]) -> list[np.ndarray]:
        raise TypeError(f"{self.name!r} runs in the embed service: the store computes its vectors when rows "
                        "arrive without them")

    def compute_query_embeddings(self, query: Any) -> list[np.ndarray]:
        raise TypeError(f"{self.name!r} runs in the embed service: the store embeds text and image queries")

    def __repr__(self) -> str:
        return f"ServerFunction({self.name!r}, {self.settings()!r})"
