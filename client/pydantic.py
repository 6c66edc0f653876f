"""`LanceModel`, `Vector(n)`, `MultiVector(n)` and `pydantic_to_schema`: a table's schema as a pydantic model,
with LanceDB's mapping to Arrow.

    class Pets(LanceModel):
        vector: Vector(clip.ndims()) = clip.VectorField()
        image_uri: str = clip.SourceField()

`Pets.to_arrow_schema()` is the Arrow schema (a `Vector(n)` is a fixed-size list of n float32, nullable unless
`Vector(n, nullable=False)`), with the functions' `embedding_functions` metadata;
`Pets.parse_embedding_functions()` pairs each function's source and vector fields.

The mapping, as LanceDB's: int → int64, float → float64, str → utf8, bool, bytes → binary, date → date32,
datetime → timestamp[us] (with `Field(json_schema_extra={"tz": ...})` its zone), list[T] and tuple[T, ...] →
list<T>, a nested model → struct, a str enum → dictionary<int32, utf8>, another enum → its values' type.
A field is nullable when its annotation admits None (and a vector when it says so), not because it has a
default.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import types
import typing
from typing import Any

import numpy as np
import pyarrow as pa
import pydantic
from pydantic.fields import FieldInfo
from pydantic_core import core_schema

from vectorlane.embeddings.base import SOURCE_KEY, SOURCE_TYPE_KEY, VECTOR_KEY, EmbeddingFunction
from vectorlane.embeddings.config import EmbeddingFunctionConfig


class FixedSizeListMixin:
    """What `Vector(n)` and `MultiVector(n)` types answer about themselves (LanceDB's classmethods)."""

    @staticmethod
    def dim() -> int:
        raise NotImplementedError

    @staticmethod
    def value_arrow_type() -> pa.DataType:
        raise NotImplementedError

    @staticmethod
    def nullable() -> bool:
        return True

    @staticmethod
    def is_multi_vector() -> bool:
        return False


def _as_list(value: Any) -> Any:
    """numpy arrays, ranges, tuples and Arrow list scalars as Python lists (anything else as given, for the
    list schema to refuse)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, pa.Scalar):
        return value.as_py()
    if isinstance(value, (range, tuple)):
        return list(value)
    return value


def _vector_schema(dim: int) -> core_schema.CoreSchema:
    return core_schema.list_schema(core_schema.float_schema(), min_length=dim, max_length=dim)


# A vector field not filled yet (a VectorField's default) is None: serialized as None, not as a list.
_SERIALIZE = core_schema.plain_serializer_function_ser_schema(list, when_used="unless-none")


def _checked_dim(dim: Any, what: str) -> int:
    if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
        raise ValueError(f"{what} needs a positive whole number of dimensions, not {dim!r}")
    return dim


def _vector_type(kind: str, dim: Any, value_type: pa.DataType, nullable: bool, multi: bool) -> type:
    """The class a `Vector(n)` / `MultiVector(n)` annotation is: its Arrow facts and its pydantic schema."""
    size = _checked_dim(dim, f"a {kind}")
    one = core_schema.no_info_before_validator_function(_as_list, _vector_schema(size))
    schema = core_schema.no_info_before_validator_function(
        _as_list, core_schema.list_schema(one) if multi else _vector_schema(size), serialization=_SERIALIZE)

    class VectorType(FixedSizeListMixin, list):  # type: ignore[type-arg]
        @staticmethod
        def dim() -> int:
            return size

        @staticmethod
        def value_arrow_type() -> pa.DataType:
            return value_type

        @staticmethod
        def nullable() -> bool:
            return nullable

        @staticmethod
        def is_multi_vector() -> bool:
            return multi

        @classmethod
        def __get_pydantic_core_schema__(cls, source: Any, handler: pydantic.GetCoreSchemaHandler
                                         ) -> core_schema.CoreSchema:
            return schema

    VectorType.__name__ = VectorType.__qualname__ = f"{kind}({size})"
    return VectorType


def Vector(dim: int, value_type: pa.DataType = pa.float32(), nullable: bool = True) -> type:  # noqa: N802
    """The type of a vector field: `dim` numbers, stored as a fixed-size list of `value_type` (float32)."""
    return _vector_type("Vector", dim, value_type, nullable, multi=False)


def MultiVector(dim: int, value_type: pa.DataType = pa.float32(), nullable: bool = True) -> type:  # noqa: N802
    """The type of a multi-vector field: any number of `dim`-number vectors (list<fixed_size_list>)."""
    return _vector_type("MultiVector", dim, value_type, nullable, multi=True)


def _unparameterized(kind: str) -> Any:
    def refuse(source: Any, handler: Any) -> Any:
        raise TypeError(f"{kind} must be parameterized with its dimensions: write {kind}(128), not a bare {kind}")
    return refuse


# A bare `vector: Vector` names the function, not a type: pydantic asks it for a schema, and it says so.
Vector.__get_pydantic_core_schema__ = _unparameterized("Vector")  # type: ignore[attr-defined]
MultiVector.__get_pydantic_core_schema__ = _unparameterized("MultiVector")  # type: ignore[attr-defined]


def _optional_inner(annotation: Any) -> Any | None:
    """X of `Optional[X]` / `X | None`, else None."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        rest = [a for a in args if a is not type(None)]
        if len(rest) == 1 and len(rest) < len(args):
            return rest[0]
        if len(rest) > 1:
            raise TypeError(f"unsupported type {annotation}: a field may be one type or None")
    return None


def _extra(field: FieldInfo | None, key: str) -> Any:
    extra = field.json_schema_extra if field is not None else None
    return extra.get(key) if isinstance(extra, dict) else None


def _enum_type(annotation: type[enum.Enum], field: FieldInfo | None) -> pa.DataType:
    kinds = {type(member.value) for member in annotation}
    if len(kinds) != 1:
        return pa.utf8()
    (kind,) = kinds
    return pa.dictionary(pa.int32(), pa.utf8()) if kind is str else _arrow_type(kind, field)


def _arrow_type(annotation: Any, field: FieldInfo | None) -> pa.DataType:
    """The Arrow type of an annotation (its nullability is the field's business)."""
    inner = _optional_inner(annotation)
    if inner is not None:
        return _arrow_type(inner, field)
    if inspect.isclass(annotation):
        if issubclass(annotation, FixedSizeListMixin):
            vector = pa.list_(annotation.value_arrow_type(), annotation.dim())
            return pa.list_(vector) if annotation.is_multi_vector() else vector
        if issubclass(annotation, pydantic.BaseModel):
            return pa.struct(_fields(annotation))
        if issubclass(annotation, enum.Enum):
            return _enum_type(annotation, field)
        if annotation is bool:
            return pa.bool_()
        if annotation is int:
            return pa.int64()
        if annotation is float:
            return pa.float64()
        if annotation is str:
            return pa.utf8()
        if annotation is bytes:
            return pa.binary()
        if annotation is dt.datetime:
            return pa.timestamp("us", tz=_extra(field, "tz"))
        if annotation is dt.date:
            return pa.date32()
    origin = typing.get_origin(annotation)
    if origin in (list, tuple) or annotation in (list, tuple, typing.List, typing.Tuple):
        args = typing.get_args(annotation)
        if not args:
            raise TypeError(f"unsupported type {annotation}: give the element type, as list[int] rather than a "
                            "bare list")
        item = args[0]
        item_inner = _optional_inner(item)
        if item_inner is not None:
            return pa.list_(pa.field("item", _arrow_type(item_inner, field), nullable=True))
        return pa.list_(_arrow_type(item, field))
    raise TypeError(f"unsupported type {annotation!r}: no Arrow type for it")


def _nullable(field: FieldInfo) -> bool:
    annotation = field.annotation
    if _optional_inner(annotation) is not None:
        return True
    if inspect.isclass(annotation) and issubclass(annotation, FixedSizeListMixin):
        return annotation.nullable()
    return False


def _fields(model: type[pydantic.BaseModel]) -> list[pa.Field]:
    return [pa.field(name, _arrow_type(info.annotation, info), nullable=_nullable(info))
            for name, info in model.model_fields.items()]


def pydantic_to_schema(model: type[pydantic.BaseModel]) -> pa.Schema:
    """The Arrow schema of a pydantic model's fields (any `BaseModel`; see the module's mapping)."""
    return pa.schema(_fields(model))


class LanceModel(pydantic.BaseModel):
    """A table's schema and row type."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def to_arrow_schema(cls) -> pa.Schema:
        """The Arrow schema, with the `embedding_functions` metadata of the functions its fields name."""
        schema = pydantic_to_schema(cls)
        configs = cls.parse_embedding_functions()
        if configs:
            from vectorlane.embeddings.registry import get_registry
            schema = schema.with_metadata(get_registry().get_table_metadata(configs))
        return schema

    @classmethod
    def field_names(cls) -> list[str]:
        return list(cls.model_fields)

    @classmethod
    def parse_embedding_functions(cls) -> list[EmbeddingFunctionConfig]:
        """One config per function used by the model's fields: its source field and its vector field."""
        sources: dict[int, tuple[EmbeddingFunction, str]] = {}
        vectors: dict[int, tuple[EmbeddingFunction, str]] = {}
        source_types: dict[int, str | None] = {}
        for name, info in cls.model_fields.items():
            marks: dict[str, Any] = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            if marks.get(SOURCE_KEY) is not None:
                source_types[id(marks[SOURCE_KEY])] = marks.get(SOURCE_TYPE_KEY)
            for mark, found in ((SOURCE_KEY, sources), (VECTOR_KEY, vectors)):
                function = marks.get(mark)
                if function is not None:
                    if id(function) in found:
                        raise ValueError(f"{cls.__name__}: two {mark.split('_')[0]} fields for one function "
                                         f"({found[id(function)][1]!r} and {name!r})")
                    found[id(function)] = (function, name)
        configs = []
        for key, (function, vector) in vectors.items():
            if key not in sources:
                raise ValueError(f"{cls.__name__}: vector field {vector!r} has no SourceField of the same function")
            configs.append(EmbeddingFunctionConfig(function, sources[key][1], vector, source_types.get(key)))
        for key, (_, source) in sources.items():
            if key not in vectors:
                raise ValueError(f"{cls.__name__}: source field {source!r} has no VectorField of the same function")
        return configs


__all__ = ["FixedSizeListMixin", "LanceModel", "MultiVector", "Vector", "pydantic_to_schema"]
