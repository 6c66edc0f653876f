"""Protobuf <-> domain conversions for the embed service: the only module that knows both sides."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from google.protobuf import struct_pb2

from embed_service.core import FunctionDescription, FunctionInfo, FunctionSpec, StreamItem
from embed_service.functions.base import Modality, Purpose
from embed_service.inputs import EmbedInput, ImageBytes, ImageUri, TextInput
from rpc_common.errors import InvalidArgument
from rpc_common.structs import struct_to_python
from vectorlane_contract.embed.v1 import embed_service_pb2 as pb

_MODALITY_TO_PB = {Modality.TEXT: pb.MODALITY_TEXT, Modality.IMAGE: pb.MODALITY_IMAGE}
_MODALITY_FROM_PB = {v: k for k, v in _MODALITY_TO_PB.items()}
_PURPOSE_FROM_PB = {
    pb.INPUT_PURPOSE_UNSPECIFIED: Purpose.SOURCE,
    pb.INPUT_PURPOSE_SOURCE: Purpose.SOURCE,
    pb.INPUT_PURPOSE_QUERY: Purpose.QUERY,
}
_PURPOSE_TO_PB = {Purpose.SOURCE: pb.INPUT_PURPOSE_SOURCE, Purpose.QUERY: pb.INPUT_PURPOSE_QUERY}


# ----- requests -------------------------------------------------------------------------------------------
def function_spec(message: pb.FunctionSpec) -> FunctionSpec:
    return FunctionSpec(message.name, struct_to_python(message.settings))


def purpose(value: int) -> Purpose:
    if value not in _PURPOSE_FROM_PB:
        raise InvalidArgument(f"purpose {value} is not one of the defined values", reason="INVALID_ENUM",
                              field="purpose")
    return _PURPOSE_FROM_PB[value]


def embed_input(message: pb.EmbedInput) -> EmbedInput | None:
    which = message.WhichOneof("value")
    if which == "text":
        return TextInput(message.text)
    if which == "image_bytes":
        return ImageBytes(message.image_bytes)
    if which == "image_uri":
        return ImageUri(message.image_uri)
    return None


def embed_inputs(messages: Iterable[pb.EmbedInput]) -> list[EmbedInput | None]:
    return [embed_input(m) for m in messages]


def stream_items(messages: Iterable[pb.StreamEmbedRequest]) -> Iterator[StreamItem]:
    for m in messages:
        spec = function_spec(m.function) if m.HasField("function") else None
        yield StreamItem(m.sequence, spec, embed_inputs(m.inputs), purpose(m.purpose))


# ----- responses ------------------------------------------------------------------------------------------
def settings_struct(settings: dict[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(settings)
    return struct


def embeddings(vectors: np.ndarray) -> list[pb.Embedding]:
    return [pb.Embedding(values=row) for row in vectors.tolist()]


def embed_response(dims: int, vectors: np.ndarray) -> pb.EmbedResponse:
    return pb.EmbedResponse(embeddings=embeddings(vectors), dimensions=dims)


def stream_response(sequence: int, dims: int, vectors: np.ndarray) -> pb.StreamEmbedResponse:
    return pb.StreamEmbedResponse(sequence=sequence, embeddings=embeddings(vectors), dimensions=dims)


def function_info(info: FunctionInfo) -> pb.FunctionInfo:
    return pb.FunctionInfo(name=info.name, description=info.description,
                           modalities=[_MODALITY_TO_PB[m] for m in info.modalities],
                           settings_schema=settings_struct(info.settings_schema),
                           secret_settings=list(info.secret_settings))


def list_functions_response(infos: list[FunctionInfo], next_token: str) -> pb.ListFunctionsResponse:
    return pb.ListFunctionsResponse(functions=[function_info(i) for i in infos], next_page_token=next_token)


def describe_response(d: FunctionDescription) -> pb.DescribeFunctionResponse:
    return pb.DescribeFunctionResponse(name=d.name, dimensions=d.dimensions,
                                       modalities=[_MODALITY_TO_PB[m] for m in d.modalities],
                                       normalized=d.normalized, secret_settings=list(d.secret_settings),
                                       settings=settings_struct(d.settings))


# ----- the reverse direction, for clients of the service ----------------------------------------------------
def to_pb_spec(spec: FunctionSpec) -> pb.FunctionSpec:
    return pb.FunctionSpec(name=spec.name, settings=settings_struct(spec.settings))


def to_pb_input(value: EmbedInput) -> pb.EmbedInput:
    if isinstance(value, TextInput):
        return pb.EmbedInput(text=value.text)
    if isinstance(value, ImageBytes):
        return pb.EmbedInput(image_bytes=value.data)
    return pb.EmbedInput(image_uri=value.uri)


def to_pb_purpose(value: Purpose) -> int:
    return _PURPOSE_TO_PB[value]


def from_pb_modalities(values: Iterable[int]) -> tuple[Modality, ...]:
    return tuple(_MODALITY_FROM_PB[v] for v in values if v in _MODALITY_FROM_PB)


def vectors_of(response: pb.EmbedResponse | pb.StreamEmbedResponse) -> np.ndarray:
    if not response.embeddings:
        return np.empty((0, response.dimensions), dtype=np.float32)
    return np.asarray([e.values for e in response.embeddings], dtype=np.float32)
