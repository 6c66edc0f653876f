from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Modality(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODALITY_UNSPECIFIED: _ClassVar[Modality]
    MODALITY_TEXT: _ClassVar[Modality]
    MODALITY_IMAGE: _ClassVar[Modality]

class InputPurpose(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INPUT_PURPOSE_UNSPECIFIED: _ClassVar[InputPurpose]
    INPUT_PURPOSE_SOURCE: _ClassVar[InputPurpose]
    INPUT_PURPOSE_QUERY: _ClassVar[InputPurpose]
MODALITY_UNSPECIFIED: Modality
MODALITY_TEXT: Modality
MODALITY_IMAGE: Modality
INPUT_PURPOSE_UNSPECIFIED: InputPurpose
INPUT_PURPOSE_SOURCE: InputPurpose
INPUT_PURPOSE_QUERY: InputPurpose

class FunctionSpec(_message.Message):
    __slots__ = ("name", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class EmbedInput(_message.Message):
    __slots__ = ("text", "image_bytes", "image_uri")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    text: str
    image_bytes: bytes
    image_uri: str
    def __init__(self, text: _Optional[str] = ..., image_bytes: _Optional[bytes] = ..., image_uri: _Optional[str] = ...) -> None: ...

class Embedding(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class ListFunctionsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class FunctionInfo(_message.Message):
    __slots__ = ("name", "modalities", "settings_schema", "description", "secret_settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SECRET_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    modalities: _containers.RepeatedScalarFieldContainer[Modality]
    settings_schema: _struct_pb2.Struct
    description: str
    secret_settings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., modalities: _Optional[_Iterable[_Union[Modality, str]]] = ..., settings_schema: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., description: _Optional[str] = ..., secret_settings: _Optional[_Iterable[str]] = ...) -> None: ...

class ListFunctionsResponse(_message.Message):
    __slots__ = ("functions", "next_page_token")
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[FunctionInfo]
    next_page_token: str
    def __init__(self, functions: _Optional[_Iterable[_Union[FunctionInfo, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DescribeFunctionRequest(_message.Message):
    __slots__ = ("function",)
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    function: FunctionSpec
    def __init__(self, function: _Optional[_Union[FunctionSpec, _Mapping]] = ...) -> None: ...

class DescribeFunctionResponse(_message.Message):
    __slots__ = ("name", "dimensions", "modalities", "normalized", "secret_settings", "settings")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    NORMALIZED_FIELD_NUMBER: _ClassVar[int]
    SECRET_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    name: str
    dimensions: int
    modalities: _containers.RepeatedScalarFieldContainer[Modality]
    normalized: bool
    secret_settings: _containers.RepeatedScalarFieldContainer[str]
    settings: _struct_pb2.Struct
    def __init__(self, name: _Optional[str] = ..., dimensions: _Optional[int] = ..., modalities: _Optional[_Iterable[_Union[Modality, str]]] = ..., normalized: _Optional[bool] = ..., secret_settings: _Optional[_Iterable[str]] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("function", "inputs", "purpose")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    function: FunctionSpec
    inputs: _containers.RepeatedCompositeFieldContainer[EmbedInput]
    purpose: InputPurpose
    def __init__(self, function: _Optional[_Union[FunctionSpec, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[EmbedInput, _Mapping]]] = ..., purpose: _Optional[_Union[InputPurpose, str]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("embeddings", "dimensions")
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dimensions: int
    def __init__(self, embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dimensions: _Optional[int] = ...) -> None: ...

class StreamEmbedRequest(_message.Message):
    __slots__ = ("sequence", "function", "inputs", "purpose")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    function: FunctionSpec
    inputs: _containers.RepeatedCompositeFieldContainer[EmbedInput]
    purpose: InputPurpose
    def __init__(self, sequence: _Optional[int] = ..., function: _Optional[_Union[FunctionSpec, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[EmbedInput, _Mapping]]] = ..., purpose: _Optional[_Union[InputPurpose, str]] = ...) -> None: ...

class StreamEmbedResponse(_message.Message):
    __slots__ = ("sequence", "embeddings", "dimensions")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    EMBEDDINGS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    embeddings: _containers.RepeatedCompositeFieldContainer[Embedding]
    dimensions: int
    def __init__(self, sequence: _Optional[int] = ..., embeddings: _Optional[_Iterable[_Union[Embedding, _Mapping]]] = ..., dimensions: _Optional[int] = ...) -> None: ...

class RerankRequest(_message.Message):
    __slots__ = ("function", "query", "documents")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    function: FunctionSpec
    query: str
    documents: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, function: _Optional[_Union[FunctionSpec, _Mapping]] = ..., query: _Optional[str] = ..., documents: _Optional[_Iterable[str]] = ...) -> None: ...

class RerankResponse(_message.Message):
    __slots__ = ("scores",)
    SCORES_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, scores: _Optional[_Iterable[float]] = ...) -> None: ...
