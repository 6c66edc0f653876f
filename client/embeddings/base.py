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
import pyarrow as pa
import pydantic

from vectorlane.embeddings.retry import retry_with_exponential_backoff
from vectorlane.embeddings.variables import resolve_defaulted_variables, resolve_variables

SOURCE_KEY, VECTOR_KEY = "source_column_for", "vector_column_for"
SOURCE_TYPE_KEY = "source_type"


class EmbeddingFunction(pydantic.BaseModel, ABC):
    """Base of every embedding function; subclass it for a local function with any input type.

    `create(**settings)` resolves `$var:name` / `$var:name:default` settings from the registry's variables
    (`get_registry().set_var`), refuses a literal value for any of `sensitive_keys()`, and remembers the
    settings as given: those (with their `$var:` references, never the values) are what a table records.
    `max_retries` (default 7; 0 disables) retries a failing call with exponential backoff and jitter."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True, extra="forbid")
    registry_name: ClassVar[str] = ""  # set by @register

    max_retries: int = pydantic.Field(7, ge=0, le=100)
    _original_args: dict[str, Any] | None = pydantic.PrivateAttr(None)

    @classmethod
    def create(cls, **settings: Any) -> "EmbeddingFunction":
        instance = cls(**resolve_variables(settings, cls.sensitive_keys()))
        instance._original_args = dict(settings)
        return instance

    @staticmethod
    def sensitive_keys() -> list[str]:
        """Settings that must be given as `$var:` references, never as values (API keys)."""
        return []

    @property
    def function_name(self) -> str:
        """The registry name the table records (`name` is left to the function's own settings: a model
        name, as in LanceDB's functions)."""
        return self.registry_name

    def safe_model_dump(self) -> dict[str, Any]:
        """The settings as given to `create` (`$var:` references unresolved); what the table records."""
        if self._original_args is not None:
            return dict(self._original_args)
        return self.model_dump(exclude_unset=True, mode="json")

    def settings(self) -> dict[str, Any]:
        """The settings the table records: those given to `create`, as LanceDB records them."""
        return self.safe_model_dump()

    def compute_source_embeddings_with_retry(self, inputs: Any) -> list[np.ndarray]:
        return retry_with_exponential_backoff(self.compute_source_embeddings, self.max_retries)(inputs)

    def compute_query_embeddings_with_retry(self, query: Any) -> list[np.ndarray]:
        return retry_with_exponential_backoff(self.compute_query_embeddings, self.max_retries)(query)

    @staticmethod
    def sanitize_input(inputs: Any) -> list[Any]:
        """One value or many (a list, numpy or Arrow array) as a list."""
        if isinstance(inputs, (str, bytes)):
            return [inputs]
        if isinstance(inputs, pa.ChunkedArray):
            return list(inputs.combine_chunks().to_pylist())
        if isinstance(inputs, pa.Array):
            return list(inputs.to_pylist())
        if isinstance(inputs, np.ndarray):
            return list(inputs.tolist())
        return list(inputs)

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

    def compute_source_embeddings(self, inputs: Any) -> list[np.ndarray]:
        """The function's vectors as it gave them (a wrong-length or NaN one is the caller's
        `on_bad_vectors` to handle)."""
        return list(self.generate_embeddings([str(t) for t in self.sanitize_input(inputs)]))

    def compute_query_embeddings(self, query: Any) -> list[np.ndarray]:
        if not isinstance(query, str):
            raise TypeError(f"{self.function_name} embeds text; got {type(query).__name__}")
        return self.compute_source_embeddings([query])


class ServerFunction(EmbeddingFunction):
    """A function the embed service hosts, as `get_registry().get(name).create(**settings)` gives it. Its
    settings are checked, and its dimensions learnt, by asking the store (`DescribeFunction`) on first use."""

    model_config = pydantic.ConfigDict(extra="allow")
    _name: str = pydantic.PrivateAttr("")
    _description: Any = pydantic.PrivateAttr(None)

    @classmethod
    def named(cls, registry_name: str, /, **settings: Any) -> "ServerFunction":
        """The function `registry_name` with `settings`. A `$var:name:default` setting (LanceDB's form for
        runtime choices such as `device="$var:device:cpu"`) is resolved here from `set_var`, since the table
        records what the embed service is asked; a `$var:name` without default stays a reference, which the
        embed service resolves from its mounted secrets (a key never passes through the client)."""
        function = cls(**resolve_defaulted_variables(settings))
        function._name = registry_name
        return function

    @property
    def function_name(self) -> str:
        return self._name

    def settings(self) -> dict[str, Any]:
        retries = {"max_retries": self.max_retries} if "max_retries" in self.model_fields_set else {}
        return {**retries, **(self.model_extra or {})}

    def safe_model_dump(self) -> dict[str, Any]:
        return self.settings()

    @property
    def is_local(self) -> bool:
        return False

    def describe(self) -> Any:
        """The store's `DescribeFunctionResponse` for this function (asked once)."""
        if self._description is None:
            from vectorlane.connection import describe_function
            from vectorlane.errors import NotFoundError
            described = describe_function(self.function_name, self.settings())
            if not described.server_function:
                raise NotFoundError(f"no embedding function named {self.function_name!r}: none is registered in "
                                    "this process (@register) and the embed service does not host one",
                                    reason="UNKNOWN_FUNCTION", metadata={"function": self.function_name})
            self._description = described
        return self._description

    def ndims(self) -> int:
        return int(self.describe().dimensions)

    @property
    def modalities(self) -> tuple[str, ...]:
        return tuple(self.describe().modalities)

    def compute_source_embeddings(self, inputs: Any) -> list[np.ndarray]:
        """The vectors the store would compute for rows (texts, image bytes or PIL images), by asking it. A
        table does not need this: rows added without vectors are embedded by the store."""
        from vectorlane.connection import compute_embeddings
        self.describe()
        return compute_embeddings(self.function_name, self.settings(), self.sanitize_input(inputs), False)

    def compute_query_embeddings(self, query: Any) -> list[np.ndarray]:
        """The vector the store would search with for `query` (a text, image bytes or a PIL image)."""
        from vectorlane.connection import compute_embeddings
        self.describe()
        return compute_embeddings(self.function_name, self.settings(), [query], True)

    def compute_source_embeddings_with_retry(self, inputs: Any) -> list[np.ndarray]:
        return self.compute_source_embeddings(inputs)  # the embed service retries (max_retries) itself

    def compute_query_embeddings_with_retry(self, query: Any) -> list[np.ndarray]:
        return self.compute_query_embeddings(query)

    def __repr__(self) -> str:
        return f"ServerFunction({self.function_name!r}, {self.settings()!r})"
