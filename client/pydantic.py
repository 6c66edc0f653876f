"""`LanceModel` and `Vector(n)`: a table's schema as a pydantic model, as in LanceDB.

    class Pets(LanceModel):
        vector: Vector(clip.ndims()) = clip.VectorField()
        image_uri: str = clip.SourceField()

`Pets.to_arrow_schema()` is the Arrow schema (a `Vector(n)` is a fixed-size list of n float32);
`Pets.parse_embedding_functions()` pairs each function's source and vector fields.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from typing import Any

import numpy as np
import pyarrow as pa
import pydantic
from pydantic_core import core_schema

from vectorlane.embeddings.base import SOURCE_KEY, SOURCE_TYPE_KEY, VECTOR_KEY, EmbeddingFunction
from vectorlane.embeddings.config import EmbeddingFunctionConfig


class FixedSizeListMixin:
    dim: int = 0
    value_arrow_type: pa.DataType = pa.float32()


def Vector(dim: int, value_type: pa.DataType = pa.float32()) -> type:  # noqa: N802 - LanceDB's name
    """The type of a vector field: a list of `dim` numbers, stored as a fixed-size list of float32."""
    if not isinstance(dim, int) or dim <= 0:
        raise ValueError(f"a vector needs a positive whole number of dimensions, not {dim!r}")

    class VectorType(FixedSizeListMixin, list):
        @classmethod
        def __get_pydantic_core_schema__(cls, source: Any, handler: pydantic.GetCoreSchemaHandler
                                         ) -> core_schema.CoreSchema:
            def check(value: Any) -> list[float]:
                values = np.asarray(value, dtype=np.float32).reshape(-1).tolist() if not isinstance(value, list) \
                    else [float(v) for v in value]
                if len(values) != dim:
                    raise ValueError(f"a Vector({dim}) needs {dim} values, got {len(values)}")
                return values
            return core_schema.no_info_plain_validator_function(
                check, serialization=core_schema.plain_serializer_function_ser_schema(list))

    VectorType.dim = dim
    VectorType.value_arrow_type = value_type
    VectorType.__name__ = f"Vector({dim})"
    return VectorType


_SCALARS: dict[Any, pa.DataType] = {
    bool: pa.bool_(), int: pa.int64(), float: pa.float64(), str: pa.string(), bytes: pa.binary(),
    dt.datetime: pa.timestamp("us"), dt.date: pa.date32(),
}


def _arrow_type(annotation: Any) -> tuple[pa.DataType, bool]:
    """(Arrow type, nullable) of a field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise TypeError(f"a field may be one type or None, not {annotation}")
        return _arrow_type(args[0])[0], True
    if isinstance(annotation, type) and issubclass(annotation, FixedSizeListMixin):
        return pa.list_(annotation.value_arrow_type, annotation.dim), False
    if annotation in _SCALARS:
        return _SCALARS[annotation], False
    if origin is list:
        (item,) = typing.get_args(annotation) or (str,)
        return pa.list_(_arrow_type(item)[0]), False
    raise TypeError(f"no Arrow type for {annotation!r}")


class LanceModel(pydantic.BaseModel):
    """A table's schema and row type."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    @classmethod
    def to_arrow_schema(cls) -> pa.Schema:
        fields = []
        for name, info in cls.model_fields.items():
            arrow_type, optional = _arrow_type(info.annotation)
            marks = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            nullable = optional or VECTOR_KEY in marks or not info.is_required()
            fields.append(pa.field(name, arrow_type, nullable=nullable))
        return pa.schema(fields)

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


__all__ = ["FixedSizeListMixin", "LanceModel", "Vector"]
