import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_BOOL: _ClassVar[DataType]
    DATA_TYPE_INT32: _ClassVar[DataType]
    DATA_TYPE_INT64: _ClassVar[DataType]
    DATA_TYPE_FLOAT32: _ClassVar[DataType]
    DATA_TYPE_FLOAT64: _ClassVar[DataType]
    DATA_TYPE_STRING: _ClassVar[DataType]
    DATA_TYPE_BINARY: _ClassVar[DataType]
    DATA_TYPE_TIMESTAMP: _ClassVar[DataType]
    DATA_TYPE_VECTOR: _ClassVar[DataType]

class SourceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOURCE_TYPE_UNSPECIFIED: _ClassVar[SourceType]
    SOURCE_TYPE_TEXT: _ClassVar[SourceType]
    SOURCE_TYPE_IMAGE: _ClassVar[SourceType]

class RowFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROW_FORMAT_UNSPECIFIED: _ClassVar[RowFormat]
    ROW_FORMAT_JSON: _ClassVar[RowFormat]
    ROW_FORMAT_ARROW: _ClassVar[RowFormat]

class CreateMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CREATE_MODE_UNSPECIFIED: _ClassVar[CreateMode]
    CREATE_MODE_CREATE: _ClassVar[CreateMode]
    CREATE_MODE_OVERWRITE: _ClassVar[CreateMode]
    CREATE_MODE_EXIST_OK: _ClassVar[CreateMode]

class BadVectorPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BAD_VECTOR_POLICY_UNSPECIFIED: _ClassVar[BadVectorPolicy]
    BAD_VECTOR_POLICY_ERROR: _ClassVar[BadVectorPolicy]
    BAD_VECTOR_POLICY_DROP: _ClassVar[BadVectorPolicy]
    BAD_VECTOR_POLICY_FILL: _ClassVar[BadVectorPolicy]
    BAD_VECTOR_POLICY_NULL: _ClassVar[BadVectorPolicy]

class AddMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ADD_MODE_UNSPECIFIED: _ClassVar[AddMode]
    ADD_MODE_APPEND: _ClassVar[AddMode]
    ADD_MODE_OVERWRITE: _ClassVar[AddMode]

class Metric(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    METRIC_UNSPECIFIED: _ClassVar[Metric]
    METRIC_L2: _ClassVar[Metric]
    METRIC_COSINE: _ClassVar[Metric]
    METRIC_DOT: _ClassVar[Metric]

class FusionMethod(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_METHOD_UNSPECIFIED: _ClassVar[FusionMethod]
    FUSION_METHOD_RRF: _ClassVar[FusionMethod]
    FUSION_METHOD_LINEAR: _ClassVar[FusionMethod]
    FUSION_METHOD_MRR: _ClassVar[FusionMethod]

class Normalization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZATION_UNSPECIFIED: _ClassVar[Normalization]
    NORMALIZATION_SCORE: _ClassVar[Normalization]
    NORMALIZATION_RANK: _ClassVar[Normalization]

class FullTextOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FULL_TEXT_OPERATOR_UNSPECIFIED: _ClassVar[FullTextOperator]
    FULL_TEXT_OPERATOR_OR: _ClassVar[FullTextOperator]
    FULL_TEXT_OPERATOR_AND: _ClassVar[FullTextOperator]

class Occur(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OCCUR_UNSPECIFIED: _ClassVar[Occur]
    OCCUR_SHOULD: _ClassVar[Occur]
    OCCUR_MUST: _ClassVar[Occur]
    OCCUR_MUST_NOT: _ClassVar[Occur]

class IndexType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INDEX_TYPE_UNSPECIFIED: _ClassVar[IndexType]
    INDEX_TYPE_FLAT: _ClassVar[IndexType]
    INDEX_TYPE_IVF_FLAT: _ClassVar[IndexType]
    INDEX_TYPE_IVF_PQ: _ClassVar[IndexType]
    INDEX_TYPE_HNSW: _ClassVar[IndexType]
    INDEX_TYPE_FTS: _ClassVar[IndexType]

class OperationKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_KIND_UNSPECIFIED: _ClassVar[OperationKind]
    OPERATION_KIND_CHANGE_FUNCTION: _ClassVar[OperationKind]
    OPERATION_KIND_ADD_FUNCTION: _ClassVar[OperationKind]
    OPERATION_KIND_DROP_FUNCTION: _ClassVar[OperationKind]

class OperationState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OPERATION_STATE_UNSPECIFIED: _ClassVar[OperationState]
    OPERATION_STATE_RUNNING: _ClassVar[OperationState]
    OPERATION_STATE_PAUSED: _ClassVar[OperationState]
    OPERATION_STATE_SUCCEEDED: _ClassVar[OperationState]
    OPERATION_STATE_FAILED: _ClassVar[OperationState]
    OPERATION_STATE_CANCELLED: _ClassVar[OperationState]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_BOOL: DataType
DATA_TYPE_INT32: DataType
DATA_TYPE_INT64: DataType
DATA_TYPE_FLOAT32: DataType
DATA_TYPE_FLOAT64: DataType
DATA_TYPE_STRING: DataType
DATA_TYPE_BINARY: DataType
DATA_TYPE_TIMESTAMP: DataType
DATA_TYPE_VECTOR: DataType
SOURCE_TYPE_UNSPECIFIED: SourceType
SOURCE_TYPE_TEXT: SourceType
SOURCE_TYPE_IMAGE: SourceType
ROW_FORMAT_UNSPECIFIED: RowFormat
ROW_FORMAT_JSON: RowFormat
ROW_FORMAT_ARROW: RowFormat
CREATE_MODE_UNSPECIFIED: CreateMode
CREATE_MODE_CREATE: CreateMode
CREATE_MODE_OVERWRITE: CreateMode
CREATE_MODE_EXIST_OK: CreateMode
BAD_VECTOR_POLICY_UNSPECIFIED: BadVectorPolicy
BAD_VECTOR_POLICY_ERROR: BadVectorPolicy
BAD_VECTOR_POLICY_DROP: BadVectorPolicy
BAD_VECTOR_POLICY_FILL: BadVectorPolicy
BAD_VECTOR_POLICY_NULL: BadVectorPolicy
ADD_MODE_UNSPECIFIED: AddMode
ADD_MODE_APPEND: AddMode
ADD_MODE_OVERWRITE: AddMode
METRIC_UNSPECIFIED: Metric
METRIC_L2: Metric
METRIC_COSINE: Metric
METRIC_DOT: Metric
FUSION_METHOD_UNSPECIFIED: FusionMethod
FUSION_METHOD_RRF: FusionMethod
FUSION_METHOD_LINEAR: FusionMethod
FUSION_METHOD_MRR: FusionMethod
NORMALIZATION_UNSPECIFIED: Normalization
NORMALIZATION_SCORE: Normalization
NORMALIZATION_RANK: Normalization
FULL_TEXT_OPERATOR_UNSPECIFIED: FullTextOperator
FULL_TEXT_OPERATOR_OR: FullTextOperator
FULL_TEXT_OPERATOR_AND: FullTextOperator
OCCUR_UNSPECIFIED: Occur
OCCUR_SHOULD: Occur
OCCUR_MUST: Occur
OCCUR_MUST_NOT: Occur
INDEX_TYPE_UNSPECIFIED: IndexType
INDEX_TYPE_FLAT: IndexType
INDEX_TYPE_IVF_FLAT: IndexType
INDEX_TYPE_IVF_PQ: IndexType
INDEX_TYPE_HNSW: IndexType
INDEX_TYPE_FTS: IndexType
OPERATION_KIND_UNSPECIFIED: OperationKind
OPERATION_KIND_CHANGE_FUNCTION: OperationKind
OPERATION_KIND_ADD_FUNCTION: OperationKind
OPERATION_KIND_DROP_FUNCTION: OperationKind
OPERATION_STATE_UNSPECIFIED: OperationState
OPERATION_STATE_RUNNING: OperationState
OPERATION_STATE_PAUSED: OperationState
OPERATION_STATE_SUCCEEDED: OperationState
OPERATION_STATE_FAILED: OperationState
OPERATION_STATE_CANCELLED: OperationState

class Field(_message.Message):
    __slots__ = ("name", "type", "dimensions", "nullable")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    name: str
    type: DataType
    dimensions: int
    nullable: bool
    def __init__(self, name: _Optional[str] = ..., type: _Optional[_Union[DataType, str]] = ..., dimensions: _Optional[int] = ..., nullable: _Optional[bool] = ...) -> None: ...

class Schema(_message.Message):
    __slots__ = ("fields", "arrow_schema")
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    ARROW_SCHEMA_FIELD_NUMBER: _ClassVar[int]
    fields: _containers.RepeatedCompositeFieldContainer[Field]
    arrow_schema: bytes
    def __init__(self, fields: _Optional[_Iterable[_Union[Field, _Mapping]]] = ..., arrow_schema: _Optional[bytes] = ...) -> None: ...

class EmbeddingFunctionConfig(_message.Message):
    __slots__ = ("name", "model", "source_column", "vector_column", "source_type")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_COLUMN_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: _struct_pb2.Struct
    source_column: str
    vector_column: str
    source_type: SourceType
    def __init__(self, name: _Optional[str] = ..., model: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., source_column: _Optional[str] = ..., vector_column: _Optional[str] = ..., source_type: _Optional[_Union[SourceType, str]] = ...) -> None: ...

class Rows(_message.Message):
    __slots__ = ("json", "arrow_ipc")
    JSON_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    json: JsonRows
    arrow_ipc: bytes
    def __init__(self, json: _Optional[_Union[JsonRows, _Mapping]] = ..., arrow_ipc: _Optional[bytes] = ...) -> None: ...

class JsonRows(_message.Message):
    __slots__ = ("rows",)
    ROWS_FIELD_NUMBER: _ClassVar[int]
    rows: _containers.RepeatedCompositeFieldContainer[_struct_pb2.Struct]
    def __init__(self, rows: _Optional[_Iterable[_Union[_struct_pb2.Struct, _Mapping]]] = ...) -> None: ...

class Table(_message.Message):
    __slots__ = ("name", "schema", "embedding_functions", "version", "num_rows", "indexes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    name: str
    schema: Schema
    embedding_functions: _containers.RepeatedCompositeFieldContainer[EmbeddingFunctionConfig]
    version: int
    num_rows: int
    indexes: _containers.RepeatedCompositeFieldContainer[Index]
    def __init__(self, name: _Optional[str] = ..., schema: _Optional[_Union[Schema, _Mapping]] = ..., embedding_functions: _Optional[_Iterable[_Union[EmbeddingFunctionConfig, _Mapping]]] = ..., version: _Optional[int] = ..., num_rows: _Optional[int] = ..., indexes: _Optional[_Iterable[_Union[Index, _Mapping]]] = ...) -> None: ...

class CreateTableRequest(_message.Message):
    __slots__ = ("name", "schema", "embedding_functions", "rows", "mode", "on_bad_vectors", "fill_value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SCHEMA_FIELD_NUMBER: _ClassVar[int]
    EMBEDDING_FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ON_BAD_VECTORS_FIELD_NUMBER: _ClassVar[int]
    FILL_VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    schema: Schema
    embedding_functions: _containers.RepeatedCompositeFieldContainer[EmbeddingFunctionConfig]
    rows: Rows
    mode: CreateMode
    on_bad_vectors: BadVectorPolicy
    fill_value: float
    def __init__(self, name: _Optional[str] = ..., schema: _Optional[_Union[Schema, _Mapping]] = ..., embedding_functions: _Optional[_Iterable[_Union[EmbeddingFunctionConfig, _Mapping]]] = ..., rows: _Optional[_Union[Rows, _Mapping]] = ..., mode: _Optional[_Union[CreateMode, str]] = ..., on_bad_vectors: _Optional[_Union[BadVectorPolicy, str]] = ..., fill_value: _Optional[float] = ...) -> None: ...

class CreateTableResponse(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: Table
    def __init__(self, table: _Optional[_Union[Table, _Mapping]] = ...) -> None: ...

class GetTableRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class GetTableResponse(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: Table
    def __init__(self, table: _Optional[_Union[Table, _Mapping]] = ...) -> None: ...

class ListTablesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListTablesResponse(_message.Message):
    __slots__ = ("names", "next_page_token")
    NAMES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    next_page_token: str
    def __init__(self, names: _Optional[_Iterable[str]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DropTableRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropTableResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AddRowsRequest(_message.Message):
    __slots__ = ("table", "mode", "on_bad_vectors", "fill_value", "rows", "images")
    class ImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    ON_BAD_VECTORS_FIELD_NUMBER: _ClassVar[int]
    FILL_VALUE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    table: str
    mode: AddMode
    on_bad_vectors: BadVectorPolicy
    fill_value: float
    rows: Rows
    images: _containers.ScalarMap[str, bytes]
    def __init__(self, table: _Optional[str] = ..., mode: _Optional[_Union[AddMode, str]] = ..., on_bad_vectors: _Optional[_Union[BadVectorPolicy, str]] = ..., fill_value: _Optional[float] = ..., rows: _Optional[_Union[Rows, _Mapping]] = ..., images: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class AddRowsResponse(_message.Message):
    __slots__ = ("version", "rows_added")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_ADDED_FIELD_NUMBER: _ClassVar[int]
    version: int
    rows_added: int
    def __init__(self, version: _Optional[int] = ..., rows_added: _Optional[int] = ...) -> None: ...

class DistanceRange(_message.Message):
    __slots__ = ("lower", "upper")
    LOWER_FIELD_NUMBER: _ClassVar[int]
    UPPER_FIELD_NUMBER: _ClassVar[int]
    lower: float
    upper: float
    def __init__(self, lower: _Optional[float] = ..., upper: _Optional[float] = ...) -> None: ...

class Vector(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedScalarFieldContainer[float]
    def __init__(self, values: _Optional[_Iterable[float]] = ...) -> None: ...

class Vectors(_message.Message):
    __slots__ = ("vectors",)
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("table", "vector", "text", "image_bytes", "image_uri", "vectors", "vector_column", "where", "postfilter", "select", "limit", "offset", "distance_range", "metric", "nprobes", "ef", "refine_factor", "version", "format", "computed_columns", "bypass_vector_index", "full_text", "fast_search", "fusion", "rerank", "order_by")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    POSTFILTER_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_RANGE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    NPROBES_FIELD_NUMBER: _ClassVar[int]
    EF_FIELD_NUMBER: _ClassVar[int]
    REFINE_FACTOR_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    BYPASS_VECTOR_INDEX_FIELD_NUMBER: _ClassVar[int]
    FULL_TEXT_FIELD_NUMBER: _ClassVar[int]
    FAST_SEARCH_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    table: str
    vector: Vector
    text: str
    image_bytes: bytes
    image_uri: str
    vectors: Vectors
    vector_column: str
    where: str
    postfilter: bool
    select: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    offset: int
    distance_range: DistanceRange
    metric: Metric
    nprobes: int
    ef: int
    refine_factor: int
    version: int
    format: RowFormat
    computed_columns: _containers.RepeatedCompositeFieldContainer[ColumnExpression]
    bypass_vector_index: bool
    full_text: FullTextQuery
    fast_search: bool
    fusion: Fusion
    rerank: Rerank
    order_by: _containers.RepeatedCompositeFieldContainer[ColumnOrdering]
    def __init__(self, table: _Optional[str] = ..., vector: _Optional[_Union[Vector, _Mapping]] = ..., text: _Optional[str] = ..., image_bytes: _Optional[bytes] = ..., image_uri: _Optional[str] = ..., vectors: _Optional[_Union[Vectors, _Mapping]] = ..., vector_column: _Optional[str] = ..., where: _Optional[str] = ..., postfilter: _Optional[bool] = ..., select: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., distance_range: _Optional[_Union[DistanceRange, _Mapping]] = ..., metric: _Optional[_Union[Metric, str]] = ..., nprobes: _Optional[int] = ..., ef: _Optional[int] = ..., refine_factor: _Optional[int] = ..., version: _Optional[int] = ..., format: _Optional[_Union[RowFormat, str]] = ..., computed_columns: _Optional[_Iterable[_Union[ColumnExpression, _Mapping]]] = ..., bypass_vector_index: _Optional[bool] = ..., full_text: _Optional[_Union[FullTextQuery, _Mapping]] = ..., fast_search: _Optional[bool] = ..., fusion: _Optional[_Union[Fusion, _Mapping]] = ..., rerank: _Optional[_Union[Rerank, _Mapping]] = ..., order_by: _Optional[_Iterable[_Union[ColumnOrdering, _Mapping]]] = ...) -> None: ...

class ColumnOrdering(_message.Message):
    __slots__ = ("column", "descending", "nulls_first")
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    DESCENDING_FIELD_NUMBER: _ClassVar[int]
    NULLS_FIRST_FIELD_NUMBER: _ClassVar[int]
    column: str
    descending: bool
    nulls_first: bool
    def __init__(self, column: _Optional[str] = ..., descending: _Optional[bool] = ..., nulls_first: _Optional[bool] = ...) -> None: ...

class ExplainSearchRequest(_message.Message):
    __slots__ = ("search", "verbose", "analyze")
    SEARCH_FIELD_NUMBER: _ClassVar[int]
    VERBOSE_FIELD_NUMBER: _ClassVar[int]
    ANALYZE_FIELD_NUMBER: _ClassVar[int]
    search: SearchRequest
    verbose: bool
    analyze: bool
    def __init__(self, search: _Optional[_Union[SearchRequest, _Mapping]] = ..., verbose: _Optional[bool] = ..., analyze: _Optional[bool] = ...) -> None: ...

class ExplainSearchResponse(_message.Message):
    __slots__ = ("plan",)
    PLAN_FIELD_NUMBER: _ClassVar[int]
    plan: str
    def __init__(self, plan: _Optional[str] = ...) -> None: ...

class Rerank(_message.Message):
    __slots__ = ("name", "settings", "column", "query", "return_all_scores")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    RETURN_ALL_SCORES_FIELD_NUMBER: _ClassVar[int]
    name: str
    settings: _struct_pb2.Struct
    column: str
    query: str
    return_all_scores: bool
    def __init__(self, name: _Optional[str] = ..., settings: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., column: _Optional[str] = ..., query: _Optional[str] = ..., return_all_scores: _Optional[bool] = ...) -> None: ...

class Fusion(_message.Message):
    __slots__ = ("method", "k", "weight", "fill", "weight_vector", "weight_fts", "normalize", "return_all_scores")
    METHOD_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    FILL_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_VECTOR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FTS_FIELD_NUMBER: _ClassVar[int]
    NORMALIZE_FIELD_NUMBER: _ClassVar[int]
    RETURN_ALL_SCORES_FIELD_NUMBER: _ClassVar[int]
    method: FusionMethod
    k: float
    weight: float
    fill: float
    weight_vector: float
    weight_fts: float
    normalize: Normalization
    return_all_scores: bool
    def __init__(self, method: _Optional[_Union[FusionMethod, str]] = ..., k: _Optional[float] = ..., weight: _Optional[float] = ..., fill: _Optional[float] = ..., weight_vector: _Optional[float] = ..., weight_fts: _Optional[float] = ..., normalize: _Optional[_Union[Normalization, str]] = ..., return_all_scores: _Optional[bool] = ...) -> None: ...

class FullTextQuery(_message.Message):
    __slots__ = ("text", "match", "phrase", "boost", "multi_match", "boolean", "columns")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    PHRASE_FIELD_NUMBER: _ClassVar[int]
    BOOST_FIELD_NUMBER: _ClassVar[int]
    MULTI_MATCH_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    text: str
    match: MatchQuery
    phrase: PhraseQuery
    boost: BoostQuery
    multi_match: MultiMatchQuery
    boolean: BooleanQuery
    columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., match: _Optional[_Union[MatchQuery, _Mapping]] = ..., phrase: _Optional[_Union[PhraseQuery, _Mapping]] = ..., boost: _Optional[_Union[BoostQuery, _Mapping]] = ..., multi_match: _Optional[_Union[MultiMatchQuery, _Mapping]] = ..., boolean: _Optional[_Union[BooleanQuery, _Mapping]] = ..., columns: _Optional[_Iterable[str]] = ...) -> None: ...

class MatchQuery(_message.Message):
    __slots__ = ("terms", "column", "boost", "fuzziness", "max_expansions", "operator", "prefix_length")
    TERMS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    BOOST_FIELD_NUMBER: _ClassVar[int]
    FUZZINESS_FIELD_NUMBER: _ClassVar[int]
    MAX_EXPANSIONS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    PREFIX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    terms: str
    column: str
    boost: float
    fuzziness: int
    max_expansions: int
    operator: FullTextOperator
    prefix_length: int
    def __init__(self, terms: _Optional[str] = ..., column: _Optional[str] = ..., boost: _Optional[float] = ..., fuzziness: _Optional[int] = ..., max_expansions: _Optional[int] = ..., operator: _Optional[_Union[FullTextOperator, str]] = ..., prefix_length: _Optional[int] = ...) -> None: ...

class PhraseQuery(_message.Message):
    __slots__ = ("terms", "column", "slop")
    TERMS_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    SLOP_FIELD_NUMBER: _ClassVar[int]
    terms: str
    column: str
    slop: int
    def __init__(self, terms: _Optional[str] = ..., column: _Optional[str] = ..., slop: _Optional[int] = ...) -> None: ...

class BoostQuery(_message.Message):
    __slots__ = ("positive", "negative", "negative_boost")
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_BOOST_FIELD_NUMBER: _ClassVar[int]
    positive: FullTextQuery
    negative: FullTextQuery
    negative_boost: float
    def __init__(self, positive: _Optional[_Union[FullTextQuery, _Mapping]] = ..., negative: _Optional[_Union[FullTextQuery, _Mapping]] = ..., negative_boost: _Optional[float] = ...) -> None: ...

class MultiMatchQuery(_message.Message):
    __slots__ = ("terms", "columns", "boosts", "operator")
    TERMS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    BOOSTS_FIELD_NUMBER: _ClassVar[int]
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    terms: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    boosts: _containers.RepeatedScalarFieldContainer[float]
    operator: FullTextOperator
    def __init__(self, terms: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., boosts: _Optional[_Iterable[float]] = ..., operator: _Optional[_Union[FullTextOperator, str]] = ...) -> None: ...

class BooleanClause(_message.Message):
    __slots__ = ("occur", "query")
    OCCUR_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    occur: Occur
    query: FullTextQuery
    def __init__(self, occur: _Optional[_Union[Occur, str]] = ..., query: _Optional[_Union[FullTextQuery, _Mapping]] = ...) -> None: ...

class BooleanQuery(_message.Message):
    __slots__ = ("clauses",)
    CLAUSES_FIELD_NUMBER: _ClassVar[int]
    clauses: _containers.RepeatedCompositeFieldContainer[BooleanClause]
    def __init__(self, clauses: _Optional[_Iterable[_Union[BooleanClause, _Mapping]]] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("rows", "version")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    rows: Rows
    version: int
    def __init__(self, rows: _Optional[_Union[Rows, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ReadRowsRequest(_message.Message):
    __slots__ = ("table", "where", "select", "limit", "offset", "version", "format", "offsets", "row_ids", "computed_columns", "order_by")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    SELECT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OFFSETS_FIELD_NUMBER: _ClassVar[int]
    ROW_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPUTED_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    table: str
    where: str
    select: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    offset: int
    version: int
    format: RowFormat
    offsets: _containers.RepeatedScalarFieldContainer[int]
    row_ids: _containers.RepeatedScalarFieldContainer[int]
    computed_columns: _containers.RepeatedCompositeFieldContainer[ColumnExpression]
    order_by: _containers.RepeatedCompositeFieldContainer[ColumnOrdering]
    def __init__(self, table: _Optional[str] = ..., where: _Optional[str] = ..., select: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ..., version: _Optional[int] = ..., format: _Optional[_Union[RowFormat, str]] = ..., offsets: _Optional[_Iterable[int]] = ..., row_ids: _Optional[_Iterable[int]] = ..., computed_columns: _Optional[_Iterable[_Union[ColumnExpression, _Mapping]]] = ..., order_by: _Optional[_Iterable[_Union[ColumnOrdering, _Mapping]]] = ...) -> None: ...

class ReadRowsResponse(_message.Message):
    __slots__ = ("rows", "version", "next_offset")
    ROWS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NEXT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    rows: Rows
    version: int
    next_offset: int
    def __init__(self, rows: _Optional[_Union[Rows, _Mapping]] = ..., version: _Optional[int] = ..., next_offset: _Optional[int] = ...) -> None: ...

class CountRowsRequest(_message.Message):
    __slots__ = ("table", "where", "version")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    table: str
    where: str
    version: int
    def __init__(self, table: _Optional[str] = ..., where: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CountRowsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class DeleteRowsRequest(_message.Message):
    __slots__ = ("table", "where")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    table: str
    where: str
    def __init__(self, table: _Optional[str] = ..., where: _Optional[str] = ...) -> None: ...

class DeleteRowsResponse(_message.Message):
    __slots__ = ("version", "rows_deleted")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_DELETED_FIELD_NUMBER: _ClassVar[int]
    version: int
    rows_deleted: int
    def __init__(self, version: _Optional[int] = ..., rows_deleted: _Optional[int] = ...) -> None: ...

class UpdateRowsRequest(_message.Message):
    __slots__ = ("table", "where", "values", "values_sql", "value_row")
    class ValuesSqlEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    WHERE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    VALUES_SQL_FIELD_NUMBER: _ClassVar[int]
    VALUE_ROW_FIELD_NUMBER: _ClassVar[int]
    table: str
    where: str
    values: _struct_pb2.Struct
    values_sql: _containers.ScalarMap[str, str]
    value_row: Rows
    def __init__(self, table: _Optional[str] = ..., where: _Optional[str] = ..., values: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., values_sql: _Optional[_Mapping[str, str]] = ..., value_row: _Optional[_Union[Rows, _Mapping]] = ...) -> None: ...

class UpdateRowsResponse(_message.Message):
    __slots__ = ("version", "rows_updated")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    version: int
    rows_updated: int
    def __init__(self, version: _Optional[int] = ..., rows_updated: _Optional[int] = ...) -> None: ...

class MergeInsertRequest(_message.Message):
    __slots__ = ("table", "on", "when_matched_update_all", "when_not_matched_insert_all", "when_not_matched_by_source_delete", "when_not_matched_by_source_delete_where", "rows", "on_bad_vectors", "fill_value", "images", "when_matched_update_where")
    class ImagesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ON_FIELD_NUMBER: _ClassVar[int]
    WHEN_MATCHED_UPDATE_ALL_FIELD_NUMBER: _ClassVar[int]
    WHEN_NOT_MATCHED_INSERT_ALL_FIELD_NUMBER: _ClassVar[int]
    WHEN_NOT_MATCHED_BY_SOURCE_DELETE_FIELD_NUMBER: _ClassVar[int]
    WHEN_NOT_MATCHED_BY_SOURCE_DELETE_WHERE_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    ON_BAD_VECTORS_FIELD_NUMBER: _ClassVar[int]
    FILL_VALUE_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    WHEN_MATCHED_UPDATE_WHERE_FIELD_NUMBER: _ClassVar[int]
    table: str
    on: _containers.RepeatedScalarFieldContainer[str]
    when_matched_update_all: bool
    when_not_matched_insert_all: bool
    when_not_matched_by_source_delete: bool
    when_not_matched_by_source_delete_where: str
    rows: Rows
    on_bad_vectors: BadVectorPolicy
    fill_value: float
    images: _containers.ScalarMap[str, bytes]
    when_matched_update_where: str
    def __init__(self, table: _Optional[str] = ..., on: _Optional[_Iterable[str]] = ..., when_matched_update_all: _Optional[bool] = ..., when_not_matched_insert_all: _Optional[bool] = ..., when_not_matched_by_source_delete: _Optional[bool] = ..., when_not_matched_by_source_delete_where: _Optional[str] = ..., rows: _Optional[_Union[Rows, _Mapping]] = ..., on_bad_vectors: _Optional[_Union[BadVectorPolicy, str]] = ..., fill_value: _Optional[float] = ..., images: _Optional[_Mapping[str, bytes]] = ..., when_matched_update_where: _Optional[str] = ...) -> None: ...

class MergeInsertResponse(_message.Message):
    __slots__ = ("version", "rows_inserted", "rows_updated", "rows_deleted")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ROWS_INSERTED_FIELD_NUMBER: _ClassVar[int]
    ROWS_UPDATED_FIELD_NUMBER: _ClassVar[int]
    ROWS_DELETED_FIELD_NUMBER: _ClassVar[int]
    version: int
    rows_inserted: int
    rows_updated: int
    rows_deleted: int
    def __init__(self, version: _Optional[int] = ..., rows_inserted: _Optional[int] = ..., rows_updated: _Optional[int] = ..., rows_deleted: _Optional[int] = ...) -> None: ...

class Index(_message.Message):
    __slots__ = ("name", "vector_column", "index_type", "metric", "version", "parameters", "columns", "index_version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    INDEX_VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    vector_column: str
    index_type: IndexType
    metric: Metric
    version: int
    parameters: _struct_pb2.Struct
    columns: _containers.RepeatedScalarFieldContainer[str]
    index_version: int
    def __init__(self, name: _Optional[str] = ..., vector_column: _Optional[str] = ..., index_type: _Optional[_Union[IndexType, str]] = ..., metric: _Optional[_Union[Metric, str]] = ..., version: _Optional[int] = ..., parameters: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., columns: _Optional[_Iterable[str]] = ..., index_version: _Optional[int] = ...) -> None: ...

class CreateIndexRequest(_message.Message):
    __slots__ = ("table", "vector_column", "index_type", "metric", "num_partitions", "num_sub_vectors", "m", "ef_construction", "replace", "name", "column", "fts")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    NUM_PARTITIONS_FIELD_NUMBER: _ClassVar[int]
    NUM_SUB_VECTORS_FIELD_NUMBER: _ClassVar[int]
    M_FIELD_NUMBER: _ClassVar[int]
    EF_CONSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    FTS_FIELD_NUMBER: _ClassVar[int]
    table: str
    vector_column: str
    index_type: IndexType
    metric: Metric
    num_partitions: int
    num_sub_vectors: int
    m: int
    ef_construction: int
    replace: bool
    name: str
    column: str
    fts: FtsParams
    def __init__(self, table: _Optional[str] = ..., vector_column: _Optional[str] = ..., index_type: _Optional[_Union[IndexType, str]] = ..., metric: _Optional[_Union[Metric, str]] = ..., num_partitions: _Optional[int] = ..., num_sub_vectors: _Optional[int] = ..., m: _Optional[int] = ..., ef_construction: _Optional[int] = ..., replace: _Optional[bool] = ..., name: _Optional[str] = ..., column: _Optional[str] = ..., fts: _Optional[_Union[FtsParams, _Mapping]] = ...) -> None: ...

class FtsParams(_message.Message):
    __slots__ = ("with_position", "base_tokenizer", "language", "max_token_length", "lower_case", "stem", "remove_stop_words", "ascii_folding", "ngram_min_length", "ngram_max_length", "prefix_only", "custom_stop_words", "block_size", "memory_limit", "num_workers")
    WITH_POSITION_FIELD_NUMBER: _ClassVar[int]
    BASE_TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKEN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    LOWER_CASE_FIELD_NUMBER: _ClassVar[int]
    STEM_FIELD_NUMBER: _ClassVar[int]
    REMOVE_STOP_WORDS_FIELD_NUMBER: _ClassVar[int]
    ASCII_FOLDING_FIELD_NUMBER: _ClassVar[int]
    NGRAM_MIN_LENGTH_FIELD_NUMBER: _ClassVar[int]
    NGRAM_MAX_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PREFIX_ONLY_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_STOP_WORDS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    MEMORY_LIMIT_FIELD_NUMBER: _ClassVar[int]
    NUM_WORKERS_FIELD_NUMBER: _ClassVar[int]
    with_position: bool
    base_tokenizer: str
    language: str
    max_token_length: int
    lower_case: bool
    stem: bool
    remove_stop_words: bool
    ascii_folding: bool
    ngram_min_length: int
    ngram_max_length: int
    prefix_only: bool
    custom_stop_words: _containers.RepeatedScalarFieldContainer[str]
    block_size: int
    memory_limit: int
    num_workers: int
    def __init__(self, with_position: _Optional[bool] = ..., base_tokenizer: _Optional[str] = ..., language: _Optional[str] = ..., max_token_length: _Optional[int] = ..., lower_case: _Optional[bool] = ..., stem: _Optional[bool] = ..., remove_stop_words: _Optional[bool] = ..., ascii_folding: _Optional[bool] = ..., ngram_min_length: _Optional[int] = ..., ngram_max_length: _Optional[int] = ..., prefix_only: _Optional[bool] = ..., custom_stop_words: _Optional[_Iterable[str]] = ..., block_size: _Optional[int] = ..., memory_limit: _Optional[int] = ..., num_workers: _Optional[int] = ...) -> None: ...

class CreateIndexResponse(_message.Message):
    __slots__ = ("index", "version")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    index: Index
    version: int
    def __init__(self, index: _Optional[_Union[Index, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ListIndexesRequest(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: str
    def __init__(self, table: _Optional[str] = ...) -> None: ...

class ListIndexesResponse(_message.Message):
    __slots__ = ("indexes",)
    INDEXES_FIELD_NUMBER: _ClassVar[int]
    indexes: _containers.RepeatedCompositeFieldContainer[Index]
    def __init__(self, indexes: _Optional[_Iterable[_Union[Index, _Mapping]]] = ...) -> None: ...

class TokenizeRequest(_message.Message):
    __slots__ = ("text", "table", "column", "index_name", "fts", "version")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    COLUMN_FIELD_NUMBER: _ClassVar[int]
    INDEX_NAME_FIELD_NUMBER: _ClassVar[int]
    FTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    text: str
    table: str
    column: str
    index_name: str
    fts: FtsParams
    version: int
    def __init__(self, text: _Optional[str] = ..., table: _Optional[str] = ..., column: _Optional[str] = ..., index_name: _Optional[str] = ..., fts: _Optional[_Union[FtsParams, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class Token(_message.Message):
    __slots__ = ("text", "position")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    text: str
    position: int
    def __init__(self, text: _Optional[str] = ..., position: _Optional[int] = ...) -> None: ...

class TokenizeResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[Token]
    def __init__(self, tokens: _Optional[_Iterable[_Union[Token, _Mapping]]] = ...) -> None: ...

class DropIndexRequest(_message.Message):
    __slots__ = ("table", "name")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    table: str
    name: str
    def __init__(self, table: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class DropIndexResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class Version(_message.Message):
    __slots__ = ("version", "timestamp", "operation", "num_rows")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    version: int
    timestamp: float
    operation: str
    num_rows: int
    def __init__(self, version: _Optional[int] = ..., timestamp: _Optional[float] = ..., operation: _Optional[str] = ..., num_rows: _Optional[int] = ...) -> None: ...

class ListVersionsRequest(_message.Message):
    __slots__ = ("table", "page_size", "page_token")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    table: str
    page_size: int
    page_token: str
    def __init__(self, table: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[Version]
    next_page_token: str
    def __init__(self, versions: _Optional[_Iterable[_Union[Version, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RestoreVersionRequest(_message.Message):
    __slots__ = ("table", "version")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    table: str
    version: int
    def __init__(self, table: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RestoreVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class OptimizeTableRequest(_message.Message):
    __slots__ = ("table", "cleanup_older_than_seconds")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    CLEANUP_OLDER_THAN_SECONDS_FIELD_NUMBER: _ClassVar[int]
    table: str
    cleanup_older_than_seconds: float
    def __init__(self, table: _Optional[str] = ..., cleanup_older_than_seconds: _Optional[float] = ...) -> None: ...

class OptimizeTableResponse(_message.Message):
    __slots__ = ("version", "fragments_removed", "fragments_added", "indexes_caught_up", "versions_removed", "bytes_removed")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FRAGMENTS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    FRAGMENTS_ADDED_FIELD_NUMBER: _ClassVar[int]
    INDEXES_CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    VERSIONS_REMOVED_FIELD_NUMBER: _ClassVar[int]
    BYTES_REMOVED_FIELD_NUMBER: _ClassVar[int]
    version: int
    fragments_removed: int
    fragments_added: int
    indexes_caught_up: int
    versions_removed: int
    bytes_removed: int
    def __init__(self, version: _Optional[int] = ..., fragments_removed: _Optional[int] = ..., fragments_added: _Optional[int] = ..., indexes_caught_up: _Optional[int] = ..., versions_removed: _Optional[int] = ..., bytes_removed: _Optional[int] = ...) -> None: ...

class GetTableStatsRequest(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: str
    def __init__(self, table: _Optional[str] = ...) -> None: ...

class FragmentLengths(_message.Message):
    __slots__ = ("min", "max", "mean", "p25", "p50", "p75", "p99")
    MIN_FIELD_NUMBER: _ClassVar[int]
    MAX_FIELD_NUMBER: _ClassVar[int]
    MEAN_FIELD_NUMBER: _ClassVar[int]
    P25_FIELD_NUMBER: _ClassVar[int]
    P50_FIELD_NUMBER: _ClassVar[int]
    P75_FIELD_NUMBER: _ClassVar[int]
    P99_FIELD_NUMBER: _ClassVar[int]
    min: int
    max: int
    mean: float
    p25: int
    p50: int
    p75: int
    p99: int
    def __init__(self, min: _Optional[int] = ..., max: _Optional[int] = ..., mean: _Optional[float] = ..., p25: _Optional[int] = ..., p50: _Optional[int] = ..., p75: _Optional[int] = ..., p99: _Optional[int] = ...) -> None: ...

class GetTableStatsResponse(_message.Message):
    __slots__ = ("version", "num_rows", "num_deleted_rows", "num_fragments", "num_small_fragments", "total_bytes", "num_indices", "fragment_lengths")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    NUM_ROWS_FIELD_NUMBER: _ClassVar[int]
    NUM_DELETED_ROWS_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAGMENTS_FIELD_NUMBER: _ClassVar[int]
    NUM_SMALL_FRAGMENTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    NUM_INDICES_FIELD_NUMBER: _ClassVar[int]
    FRAGMENT_LENGTHS_FIELD_NUMBER: _ClassVar[int]
    version: int
    num_rows: int
    num_deleted_rows: int
    num_fragments: int
    num_small_fragments: int
    total_bytes: int
    num_indices: int
    fragment_lengths: FragmentLengths
    def __init__(self, version: _Optional[int] = ..., num_rows: _Optional[int] = ..., num_deleted_rows: _Optional[int] = ..., num_fragments: _Optional[int] = ..., num_small_fragments: _Optional[int] = ..., total_bytes: _Optional[int] = ..., num_indices: _Optional[int] = ..., fragment_lengths: _Optional[_Union[FragmentLengths, _Mapping]] = ...) -> None: ...

class Tag(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CreateTagRequest(_message.Message):
    __slots__ = ("table", "tag", "version")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    table: str
    tag: str
    version: int
    def __init__(self, table: _Optional[str] = ..., tag: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CreateTagResponse(_message.Message):
    __slots__ = ("tag",)
    TAG_FIELD_NUMBER: _ClassVar[int]
    tag: Tag
    def __init__(self, tag: _Optional[_Union[Tag, _Mapping]] = ...) -> None: ...

class ListTagsRequest(_message.Message):
    __slots__ = ("table",)
    TABLE_FIELD_NUMBER: _ClassVar[int]
    table: str
    def __init__(self, table: _Optional[str] = ...) -> None: ...

class ListTagsResponse(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedCompositeFieldContainer[Tag]
    def __init__(self, tags: _Optional[_Iterable[_Union[Tag, _Mapping]]] = ...) -> None: ...

class DeleteTagRequest(_message.Message):
    __slots__ = ("table", "tag")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    table: str
    tag: str
    def __init__(self, table: _Optional[str] = ..., tag: _Optional[str] = ...) -> None: ...

class DeleteTagResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ColumnExpression(_message.Message):
    __slots__ = ("name", "expression")
    NAME_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    expression: str
    def __init__(self, name: _Optional[str] = ..., expression: _Optional[str] = ...) -> None: ...

class AddColumnsRequest(_message.Message):
    __slots__ = ("table", "expressions", "null_columns")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    EXPRESSIONS_FIELD_NUMBER: _ClassVar[int]
    NULL_COLUMNS_FIELD_NUMBER: _ClassVar[int]
    table: str
    expressions: _containers.RepeatedCompositeFieldContainer[ColumnExpression]
    null_columns: Schema
    def __init__(self, table: _Optional[str] = ..., expressions: _Optional[_Iterable[_Union[ColumnExpression, _Mapping]]] = ..., null_columns: _Optional[_Union[Schema, _Mapping]] = ...) -> None: ...

class AddColumnsResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class MergeColumnsRequest(_message.Message):
    __slots__ = ("table", "arrow_ipc", "left_on", "right_on")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    LEFT_ON_FIELD_NUMBER: _ClassVar[int]
    RIGHT_ON_FIELD_NUMBER: _ClassVar[int]
    table: str
    arrow_ipc: bytes
    left_on: str
    right_on: str
    def __init__(self, table: _Optional[str] = ..., arrow_ipc: _Optional[bytes] = ..., left_on: _Optional[str] = ..., right_on: _Optional[str] = ...) -> None: ...

class MergeColumnsResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class ColumnAlteration(_message.Message):
    __slots__ = ("path", "rename", "nullable", "data_type", "metadata", "metadata_removed", "metadata_replace")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PATH_FIELD_NUMBER: _ClassVar[int]
    RENAME_FIELD_NUMBER: _ClassVar[int]
    NULLABLE_FIELD_NUMBER: _ClassVar[int]
    DATA_TYPE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    METADATA_REMOVED_FIELD_NUMBER: _ClassVar[int]
    METADATA_REPLACE_FIELD_NUMBER: _ClassVar[int]
    path: str
    rename: str
    nullable: bool
    data_type: str
    metadata: _containers.ScalarMap[str, str]
    metadata_removed: _containers.RepeatedScalarFieldContainer[str]
    metadata_replace: bool
    def __init__(self, path: _Optional[str] = ..., rename: _Optional[str] = ..., nullable: _Optional[bool] = ..., data_type: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., metadata_removed: _Optional[_Iterable[str]] = ..., metadata_replace: _Optional[bool] = ...) -> None: ...

class AlterColumnsRequest(_message.Message):
    __slots__ = ("table", "alterations")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    ALTERATIONS_FIELD_NUMBER: _ClassVar[int]
    table: str
    alterations: _containers.RepeatedCompositeFieldContainer[ColumnAlteration]
    def __init__(self, table: _Optional[str] = ..., alterations: _Optional[_Iterable[_Union[ColumnAlteration, _Mapping]]] = ...) -> None: ...

class AlterColumnsResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class DropColumnsRequest(_message.Message):
    __slots__ = ("table", "columns")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    table: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, table: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ...) -> None: ...

class DropColumnsResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class DescribeFunctionRequest(_message.Message):
    __slots__ = ("function",)
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    function: EmbeddingFunctionConfig
    def __init__(self, function: _Optional[_Union[EmbeddingFunctionConfig, _Mapping]] = ...) -> None: ...

class DescribeFunctionResponse(_message.Message):
    __slots__ = ("server_function", "dimensions", "modalities", "secret_settings")
    SERVER_FUNCTION_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    MODALITIES_FIELD_NUMBER: _ClassVar[int]
    SECRET_SETTINGS_FIELD_NUMBER: _ClassVar[int]
    server_function: bool
    dimensions: int
    modalities: _containers.RepeatedScalarFieldContainer[str]
    secret_settings: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, server_function: _Optional[bool] = ..., dimensions: _Optional[int] = ..., modalities: _Optional[_Iterable[str]] = ..., secret_settings: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbeddingInput(_message.Message):
    __slots__ = ("text", "image_bytes", "image_uri")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_URI_FIELD_NUMBER: _ClassVar[int]
    text: str
    image_bytes: bytes
    image_uri: str
    def __init__(self, text: _Optional[str] = ..., image_bytes: _Optional[bytes] = ..., image_uri: _Optional[str] = ...) -> None: ...

class ComputeEmbeddingsRequest(_message.Message):
    __slots__ = ("function", "inputs", "query")
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    function: EmbeddingFunctionConfig
    inputs: _containers.RepeatedCompositeFieldContainer[EmbeddingInput]
    query: bool
    def __init__(self, function: _Optional[_Union[EmbeddingFunctionConfig, _Mapping]] = ..., inputs: _Optional[_Iterable[_Union[EmbeddingInput, _Mapping]]] = ..., query: _Optional[bool] = ...) -> None: ...

class ComputeEmbeddingsResponse(_message.Message):
    __slots__ = ("vectors", "dimensions")
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    DIMENSIONS_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedCompositeFieldContainer[Vector]
    dimensions: int
    def __init__(self, vectors: _Optional[_Iterable[_Union[Vector, _Mapping]]] = ..., dimensions: _Optional[int] = ...) -> None: ...

class AlterEmbeddingFunctionRequest(_message.Message):
    __slots__ = ("table", "function")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    table: str
    function: EmbeddingFunctionConfig
    def __init__(self, table: _Optional[str] = ..., function: _Optional[_Union[EmbeddingFunctionConfig, _Mapping]] = ...) -> None: ...

class AddEmbeddingFunctionRequest(_message.Message):
    __slots__ = ("table", "function")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    table: str
    function: EmbeddingFunctionConfig
    def __init__(self, table: _Optional[str] = ..., function: _Optional[_Union[EmbeddingFunctionConfig, _Mapping]] = ...) -> None: ...

class DropEmbeddingFunctionRequest(_message.Message):
    __slots__ = ("table", "vector_column")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    table: str
    vector_column: str
    def __init__(self, table: _Optional[str] = ..., vector_column: _Optional[str] = ...) -> None: ...

class Operation(_message.Message):
    __slots__ = ("name", "table", "kind", "state", "done", "vector_column", "function", "rows_done", "rows_total", "rows_per_second", "eta_seconds", "error", "result_version", "base_version", "create_time", "update_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TABLE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    VECTOR_COLUMN_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_FIELD_NUMBER: _ClassVar[int]
    ROWS_DONE_FIELD_NUMBER: _ClassVar[int]
    ROWS_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ROWS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESULT_VERSION_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    table: str
    kind: OperationKind
    state: OperationState
    done: bool
    vector_column: str
    function: EmbeddingFunctionConfig
    rows_done: int
    rows_total: int
    rows_per_second: float
    eta_seconds: float
    error: OperationError
    result_version: int
    base_version: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., table: _Optional[str] = ..., kind: _Optional[_Union[OperationKind, str]] = ..., state: _Optional[_Union[OperationState, str]] = ..., done: _Optional[bool] = ..., vector_column: _Optional[str] = ..., function: _Optional[_Union[EmbeddingFunctionConfig, _Mapping]] = ..., rows_done: _Optional[int] = ..., rows_total: _Optional[int] = ..., rows_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., error: _Optional[_Union[OperationError, _Mapping]] = ..., result_version: _Optional[int] = ..., base_version: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class OperationError(_message.Message):
    __slots__ = ("code", "reason", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: str
    reason: str
    message: str
    def __init__(self, code: _Optional[str] = ..., reason: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListOperationsRequest(_message.Message):
    __slots__ = ("table", "page_size", "page_token")
    TABLE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    table: str
    page_size: int
    page_token: str
    def __init__(self, table: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListOperationsResponse(_message.Message):
    __slots__ = ("operations", "next_page_token")
    OPERATIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    operations: _containers.RepeatedCompositeFieldContainer[Operation]
    next_page_token: str
    def __init__(self, operations: _Optional[_Iterable[_Union[Operation, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ResumeOperationRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...
