"""`EmbeddingFunctionConfig`: which function fills which vector column from which source column — one entry
of a table's `embedding_functions` metadata."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf import json_format, struct_pb2

from vectorlane.embeddings.base import EmbeddingFunction
from vectorlane.embeddings.registry import get_registry
from vectorlane_contract.store.v1 import store_service_pb2 as pb


SOURCE_TYPES = {None: pb.SOURCE_TYPE_UNSPECIFIED, "text": pb.SOURCE_TYPE_TEXT, "image": pb.SOURCE_TYPE_IMAGE}


@dataclass(frozen=True)
class EmbeddingFunctionConfig:
    function: EmbeddingFunction
    source_column: str
    vector_column: str
    # "text" or "image"; None lets the store infer it (bytes and, for a function that embeds images such as
    # open-clip, strings are images; strings are text otherwise).
    source_type: str | None = None

    def __post_init__(self) -> None:
        if not self.function.function_name:
            raise ValueError(f"{type(self.function).__name__} has no registry name: decorate the class with "
                             "@register(\"name\") so a table can record it")
        if self.source_type not in SOURCE_TYPES:
            raise ValueError(f"source_type must be 'text', 'image' or None, not {self.source_type!r}")

    def to_proto(self) -> pb.EmbeddingFunctionConfig:
        model = struct_pb2.Struct()
        model.update(self.function.settings())
        return pb.EmbeddingFunctionConfig(name=self.function.function_name, model=model,
                                          source_column=self.source_column, vector_column=self.vector_column,
                                          source_type=SOURCE_TYPES[self.source_type])

    @classmethod
    def from_proto(cls, message: pb.EmbeddingFunctionConfig) -> "EmbeddingFunctionConfig":
        settings = {k: _whole(v) for k, v in json_format.MessageToDict(message.model).items()}
        source_type = next((k for k, v in SOURCE_TYPES.items() if v == message.source_type), None)
        return cls(get_registry().function_for(message.name, settings), message.source_column,
                   message.vector_column, source_type)


def _whole(value: object) -> object:
    """JSON numbers come back as floats; settings like dims=16 are the integers the user wrote."""
    return int(value) if isinstance(value, float) and value.is_integer() else value
