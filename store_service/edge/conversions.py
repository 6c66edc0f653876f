"""Protobuf <-> Arrow for the store service: schemas, and rows as JSON objects or Arrow IPC bytes.

The only module that knows both sides. Bad bytes or rows that do not fit the schema are InvalidArgument
with a precise reason; nothing here touches storage.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import pyarrow as pa
from google.protobuf import struct_pb2

from rpc_common.structs import struct_to_python
from store_service.edge import arrow_ipc
from store_service.ingest.bad_vectors import BadVectorPolicy
from store_service.core import DEFAULT_RETENTION_S, Optimized, TableInfo, TableStats
from store_service.embedder import FunctionInfo, Query
from store_service.errors import FailedPrecondition, InvalidArgument
from store_service.indexes.catalog import IndexEntry
from store_service.indexes import text_index
from store_service.indexes.text_index import BuildResources, TextIndexEntry, TextIndexParams
from store_service.ingest.rows import BadVectors
from store_service.ingest.merge import MergeRules
from store_service.functions.operations import Operation
from store_service.schema_changes import Alteration
from store_service.schema import IMAGE, TEXT, FunctionConfig, is_vector, vector_dimensions, vector_type
from store_service.search import full_text as ft
from store_service.search import ordering
from store_service.search.hybrid import Fusion
from store_service.search.reranking import Reranking
from store_service.search.vector_search import VectorSearch
from store_service.storage.manifest import Manifest
from store_service.indexes.vector_index import INDEX_BOUNDS, SEARCH_BOUNDS, IndexParams, SearchParams
from vectorlane_contract.store.v1 import store_service_pb2 as pb
from vectorlane_contract.wire import Decoded

_SCALARS = {
    pb.DATA_TYPE_BOOL: pa.bool_(), pb.DATA_TYPE_INT32: pa.int32(), pb.DATA_TYPE_INT64: pa.int64(),
    pb.DATA_TYPE_FLOAT32: pa.float32(), pb.DATA_TYPE_FLOAT64: pa.float64(), pb.DATA_TYPE_STRING: pa.string(),
    pb.DATA_TYPE_BINARY: pa.binary(), pb.DATA_TYPE_TIMESTAMP: pa.timestamp("us", tz="UTC"),
}


# ----- schemas ------------------------------------------------------------------------------------------
def schema_from_proto(message: pb.Schema, vector_dims: dict[str, int] | None = None) -> pa.Schema:
    """The Arrow schema a request describes. `vector_dims` fills vector columns given without dimensions
    (taken from their embedding functions)."""
    if message.arrow_schema:
        try:
            return pa.ipc.read_schema(pa.py_buffer(message.arrow_schema))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError) as exc:
            raise InvalidArgument(f"arrow_schema is not a serialized Arrow schema ({str(exc)[:300]})",
                                  reason="INVALID_ARROW_SCHEMA") from None
    fields = []
    for f in message.fields:
        if not f.name:
            raise InvalidArgument("a field has no name", reason="INVALID_SCHEMA")
        if f.type == pb.DATA_TYPE_VECTOR:
            dims = f.dimensions or (vector_dims or {}).get(f.name, 0)
            if dims <= 0:
                raise InvalidArgument(f"vector column {f.name!r} needs dimensions (or an embedding function)",
                                      reason="INVALID_SCHEMA", column=f.name)
            fields.append(pa.field(f.name, vector_type(dims), nullable=f.nullable))
        elif f.type in _SCALARS:
            fields.append(pa.field(f.name, _SCALARS[f.type], nullable=f.nullable))
        else:
            raise InvalidArgument(f"field {f.name!r} has no type", reason="INVALID_SCHEMA", column=f.name)
    if len({f.name for f in fields}) != len(fields):
        raise InvalidArgument("column names repeat", reason="INVALID_SCHEMA")
    return pa.schema(fields)


def _scalar_enum(type_: pa.DataType) -> int:
    """The proto's name for a scalar type, UNSPECIFIED for the rest (the Arrow schema beside it has them).
    Compared, not hashed: some extension types cannot be hashed."""
    return next((enum for enum, scalar in _SCALARS.items() if type_ == scalar), pb.DATA_TYPE_UNSPECIFIED)


def schema_to_proto(schema: pa.Schema) -> pb.Schema:
    fields = []
    for f in schema:
        if is_vector(f):
            fields.append(pb.Field(name=f.name, type=pb.DATA_TYPE_VECTOR, dimensions=vector_dimensions(f),
                                   nullable=f.nullable))
        else:
            fields.append(pb.Field(name=f.name, type=_scalar_enum(f.type), nullable=f.nullable))
    return pb.Schema(fields=fields, arrow_schema=schema.serialize().to_pybytes())


def function_configs(messages: Any) -> list[FunctionConfig]:
    return [FunctionConfig(m.name, _whole_numbers(struct_to_python(m.model)), m.source_column, m.vector_column,
                           _SOURCE_TYPES.get(m.source_type, ""))
            for m in messages]


_SOURCE_TYPES = {pb.SOURCE_TYPE_TEXT: TEXT, pb.SOURCE_TYPE_IMAGE: IMAGE}
_SOURCE_TYPE_ENUMS = {kind: enum for enum, kind in _SOURCE_TYPES.items()}


def _whole_numbers(value: Any) -> Any:
    """JSON has one number type; settings like dims=16 are stored as the integers the user wrote."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def function_info_to_proto(info: FunctionInfo | None) -> pb.DescribeFunctionResponse:
    if info is None:
        return pb.DescribeFunctionResponse(server_function=False)
    return pb.DescribeFunctionResponse(server_function=True, dimensions=info.dimensions,
                                       modalities=sorted(info.modalities), secret_settings=info.secret_settings)


def function_config_to_proto(config: FunctionConfig) -> pb.EmbeddingFunctionConfig:
    model = struct_pb2.Struct()
    model.update(config.model)
    source_type = _SOURCE_TYPE_ENUMS.get(config.source_type, pb.SOURCE_TYPE_UNSPECIFIED)
    return pb.EmbeddingFunctionConfig(name=config.name, model=model, source_column=config.source_column,
                                      vector_column=config.vector_column, source_type=source_type)


# ----- rows ---------------------------------------------------------------------------------------------
def _read_ipc(data: bytes | memoryview) -> pa.Table:
    """An Arrow IPC stream's rows, validated in full (`store_service.edge.arrow_ipc`)."""
    return arrow_ipc.read_stream(data)


def merged_table(request: pb.MergeColumnsRequest) -> pa.Table:
    """The other table of a MergeColumns request."""
    if not request.arrow_ipc:
        raise InvalidArgument("merge needs the other table (arrow_ipc)", reason="MISSING_ROWS")
    if not request.left_on:
        raise InvalidArgument("merge needs left_on, the table's key column", reason="MISSING_KEY")
    return _read_ipc(request.arrow_ipc)


def request_rows(request: Decoded, schema: pa.Schema | None) -> pa.Table | None:
    """The rows of a request decoded by `vectorlane.wire.decode` (Arrow IPC left in the received bytes) as
    an Arrow table; None when there are none."""
    if request.arrow_ipc is not None:
        return _read_ipc(request.arrow_ipc)
    return rows_to_arrow(request.message.rows, schema)


def rows_to_arrow(message: pb.Rows, schema: pa.Schema | None) -> pa.Table | None:
    """The rows of a request as an Arrow table (in `schema`'s types when given); None when there are none."""
    which = message.WhichOneof("format")
    if which is None:
        return None
    if which == "arrow_ipc":
        return _read_ipc(message.arrow_ipc)
    rows = [struct_to_python(r) for r in message.json.rows]
    if not rows:
        return None
    if schema is None:
        return _infer(rows)
    known = set(schema.names)
    for index, row in enumerate(rows):
        for key in row:
            if key not in known:
                raise InvalidArgument(f"row {index}: column {key!r} is not in the table's schema",
                                      reason="UNKNOWN_COLUMN", column=key, row=index)
    present = [f for f in schema if any(f.name in r for r in rows)]
    columns = {}
    for f in present:
        values = [_json_value(r.get(f.name), f, i) for i, r in enumerate(rows)]
        columns[f.name] = _array(values, f)
    return pa.table(columns)  # vectors of a wrong length stay variable-length lists: the caller decides


def _array(values: list[Any], f: pa.Field) -> pa.Array:
    try:
        if is_vector(f):
            return pa.array(values, type=pa.list_(pa.float32())).cast(f.type) if _uniform(values, f) else \
                pa.array(values, type=pa.list_(pa.float32()))
        return pa.array(values, type=f.type)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise InvalidArgument(f"column {f.name!r}: values do not fit {f.type} ({exc})", reason="SCHEMA_MISMATCH",
                              column=f.name) from None


def _uniform(values: list[Any], f: pa.Field) -> bool:
    size = vector_dimensions(f)
    return all(v is None or (isinstance(v, list) and len(v) == size) for v in values)


def _json_value(value: Any, f: pa.Field, row: int) -> Any:
    if value is None:
        return None
    t = f.type
    if pa.types.is_integer(t) and isinstance(value, float):
        if not value.is_integer():
            raise InvalidArgument(f"row {row}: column {f.name!r} is an integer column; got {value}",
                                  reason="SCHEMA_MISMATCH", column=f.name, row=row)
        return int(value)
    if (pa.types.is_binary(t) or pa.types.is_large_binary(t)) and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except ValueError:
            raise InvalidArgument(f"row {row}: column {f.name!r} holds bytes; give them base64-encoded",
                                  reason="SCHEMA_MISMATCH", column=f.name, row=row) from None
    if pa.types.is_timestamp(t) and isinstance(value, str):
        return _parsed(lambda: dt.datetime.fromisoformat(value.replace("Z", "+00:00")), f, row, "an RFC 3339 timestamp")
    if pa.types.is_date(t) and isinstance(value, str):
        return _parsed(lambda: dt.date.fromisoformat(value), f, row, "an ISO 8601 date")
    if pa.types.is_time(t) and isinstance(value, str):
        return _parsed(lambda: dt.time.fromisoformat(value), f, row, "an ISO 8601 time of day")
    if pa.types.is_duration(t) and isinstance(value, (int, float)) and not isinstance(value, bool):
        return _parsed(lambda: dt.timedelta(seconds=value), f, row, "a duration in seconds")
    if pa.types.is_decimal(t) and isinstance(value, (int, float, str)) and not isinstance(value, bool):
        return _parsed(lambda: decimal.Decimal(str(value)), f, row, "a decimal number")
    if pa.types.is_map(t) and isinstance(value, dict):
        return list(value.items())
    return value


def _parsed(parse: Any, f: pa.Field, row: int, what: str) -> Any:
    try:
        return parse()
    except (ValueError, OverflowError, decimal.InvalidOperation):
        raise InvalidArgument(f"row {row}: column {f.name!r}: not {what}", reason="SCHEMA_MISMATCH", column=f.name,
                              row=row) from None


def _infer(rows: list[dict[str, Any]]) -> pa.Table:
    """Schema from first rows: lists of numbers of one length become float32 vectors."""
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    columns = {}
    for name in names:
        values = [r.get(name) for r in rows]
        lists = [v for v in values if v is not None]
        if lists and all(isinstance(v, list) and v and all(isinstance(x, (int, float)) for x in v) for v in lists) \
                and len({len(v) for v in lists}) == 1:
            columns[name] = pa.array(values, type=vector_type(len(lists[0])))
        elif lists and all(isinstance(v, float) and v.is_integer() for v in lists):
            columns[name] = pa.array([None if v is None else int(v) for v in values], type=pa.int64())
        else:
            try:
                columns[name] = pa.array(values)
            except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
                raise InvalidArgument(f"column {name!r}: cannot infer one type ({exc})", reason="INVALID_DATA",
                                      column=name) from None
    return pa.table(columns)


def arrow_to_rows(table: pa.Table, row_format: int) -> pb.Rows:
    if row_format == pb.ROW_FORMAT_ARROW:
        return pb.Rows(arrow_ipc=arrow_ipc.write_stream(table))
    names = table.column_names
    structs = []
    for values in zip(*(_python_values(name, table.column(name)) for name in names)) if names else ():
        struct = struct_pb2.Struct()
        struct.update({k: _to_json(v) for k, v in zip(names, values)})
        structs.append(struct)
    return pb.Rows(json=pb.JsonRows(rows=structs))


def _python_values(name: str, column: pa.ChunkedArray) -> list[Any]:
    """A column's cells as Python values. A date or time Python cannot hold (a timestamp of 2^62 seconds, a
    date past year 9999: found by the hostile pass, every JSON read of such a table was INTERNAL) is written
    as Arrow writes it as text."""
    try:
        return column.to_pylist()
    except (OverflowError, ValueError, pa.ArrowException):
        pass
    textual = _temporal_as_text(column.type)
    values = []
    for cell in column:
        try:
            values.append(cell.as_py())
        except (OverflowError, ValueError, pa.ArrowException):
            try:
                values.append(pa.array([cell], column.type).cast(textual)[0].as_py())
            except (OverflowError, ValueError, pa.ArrowException) as exc:
                raise FailedPrecondition(f"column {name!r} holds values JSON rows cannot carry ({str(exc)[:120]}); "
                                         "read it with format ARROW", reason="UNREPRESENTABLE_VALUE",
                                         column=name) from None
    return values


def _temporal_as_text(kind: pa.DataType) -> pa.DataType:
    if pa.types.is_temporal(kind):
        return pa.string()
    if pa.types.is_struct(kind):
        fields = [kind.field(i) for i in range(kind.num_fields)]
        return pa.struct([f.with_type(_temporal_as_text(f.type)) for f in fields])
    if pa.types.is_list(kind):
        return pa.list_(kind.value_field.with_type(_temporal_as_text(kind.value_type)))
    if pa.types.is_large_list(kind):
        return pa.large_list(kind.value_field.with_type(_temporal_as_text(kind.value_type)))
    if pa.types.is_fixed_size_list(kind):
        return pa.list_(kind.value_field.with_type(_temporal_as_text(kind.value_type)), kind.list_size)
    return kind


def _to_json(value: Any) -> Any:
    """A cell as JSON: bytes in base64, dates and times in ISO 8601, durations in seconds, decimals as exact
    strings, maps as lists of {key, value}, NaN and infinities as null."""
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, tuple) and len(value) == 2:  # a map entry
        return {"key": _to_json(value[0]), "value": _to_json(value[1])}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2 ** 53:
        return str(value)  # JSON numbers are doubles: past 2^53 an integer would silently change
    return value


# ----- requests -> domain -------------------------------------------------------------------------------
_CREATE_MODES = {pb.CREATE_MODE_UNSPECIFIED: "create", pb.CREATE_MODE_CREATE: "create",
                 pb.CREATE_MODE_OVERWRITE: "overwrite", pb.CREATE_MODE_EXIST_OK: "exist_ok"}
_ADD_MODES = {pb.ADD_MODE_UNSPECIFIED: "append", pb.ADD_MODE_APPEND: "append", pb.ADD_MODE_OVERWRITE: "overwrite"}
_POLICIES = {pb.BAD_VECTOR_POLICY_UNSPECIFIED: BadVectorPolicy.ERROR, pb.BAD_VECTOR_POLICY_ERROR: BadVectorPolicy.ERROR,
             pb.BAD_VECTOR_POLICY_DROP: BadVectorPolicy.DROP, pb.BAD_VECTOR_POLICY_FILL: BadVectorPolicy.FILL,
             pb.BAD_VECTOR_POLICY_NULL: BadVectorPolicy.NULL}
_METRICS = {pb.METRIC_UNSPECIFIED: "", pb.METRIC_L2: "l2", pb.METRIC_COSINE: "cosine", pb.METRIC_DOT: "dot"}
_INDEX_TYPES = {pb.INDEX_TYPE_FLAT: "FLAT", pb.INDEX_TYPE_IVF_FLAT: "IVF_FLAT", pb.INDEX_TYPE_IVF_PQ: "IVF_PQ",
                pb.INDEX_TYPE_HNSW: "HNSW"}


def _enum(table: dict[int, Any], value: int, what: str) -> Any:
    if value not in table:
        raise InvalidArgument(f"{what} {value} is not one of the defined values", reason="INVALID_ENUM",
                              field=what)
    return table[value]


def create_mode(value: int) -> str:
    return _enum(_CREATE_MODES, value, "mode")


def add_mode(value: int) -> str:
    return _enum(_ADD_MODES, value, "mode")


def bad_vectors(policy: int, fill_value: float) -> BadVectors:
    if not math.isfinite(fill_value):
        raise InvalidArgument("fill_value must be a finite number", reason="INVALID_FILL_VALUE")
    return BadVectors(_enum(_POLICIES, policy, "on_bad_vectors"), fill_value)


def index_params(request: pb.CreateIndexRequest) -> IndexParams:
    if request.index_type == pb.INDEX_TYPE_UNSPECIFIED:
        raise InvalidArgument("index_type is required (FLAT, IVF_FLAT, IVF_PQ or HNSW)", reason="INVALID_INDEX")
    for name, most in INDEX_BOUNDS.items():
        if not 0 <= getattr(request, name) <= most:
            raise InvalidArgument(f"{name} must be from 0 (the default) to {most}; got {getattr(request, name)}",
                                  reason="INVALID_INDEX_PARAMETERS", field=name, limit=most)
    return IndexParams(kind=_enum(_INDEX_TYPES, request.index_type, "index_type"),
                       metric=_enum(_METRICS, request.metric, "metric") or "l2",
                       num_partitions=request.num_partitions, num_sub_vectors=request.num_sub_vectors,
                       m=request.m or 32, ef_construction=request.ef_construction or 200)


def is_text_index(request: pb.CreateIndexRequest) -> bool:
    return request.index_type == pb.INDEX_TYPE_FTS


def text_index_params(request: pb.CreateIndexRequest) -> TextIndexParams:
    """CreateIndex's FTS settings, LanceDB's defaults where not set (checked by the index module)."""
    if request.vector_column or request.metric or request.num_partitions or request.num_sub_vectors or request.m \
            or request.ef_construction:
        raise InvalidArgument("an FTS index takes `column` and `fts` settings, not vector index ones",
                              reason="INVALID_INDEX_PARAMETERS")
    if not request.column:
        raise InvalidArgument("an FTS index needs the string column to index (`column`)", reason="MISSING_COLUMN")
    return tokenizer_params(request.fts)


def tokenizer_params(fts: pb.FtsParams) -> TextIndexParams:
    """FTS settings, LanceDB's defaults where not set (checked by the index module)."""
    if len(fts.custom_stop_words) > text_index.MAX_STOP_WORDS:
        raise InvalidArgument(f"custom_stop_words holds at most {text_index.MAX_STOP_WORDS} words",
                              reason="INVALID_FTS_PARAMS", field="custom_stop_words")

    def flag(name: str) -> bool:
        return getattr(fts, name) if fts.HasField(name) else True

    return TextIndexParams(
        with_position=fts.with_position, base_tokenizer=fts.base_tokenizer or "simple",
        language=_language(fts.language), block_size=fts.block_size or 128,
        max_token_length=None if fts.max_token_length == -1 else fts.max_token_length or 40,
        lower_case=flag("lower_case"), stem=flag("stem"), remove_stop_words=flag("remove_stop_words"),
        ascii_folding=flag("ascii_folding"), ngram_min_length=fts.ngram_min_length or 3,
        ngram_max_length=fts.ngram_max_length or 3, prefix_only=fts.prefix_only,
        custom_stop_words=tuple(fts.custom_stop_words) or None).check()


def text_index_resources(request: pb.CreateIndexRequest) -> BuildResources:
    fts = request.fts
    return BuildResources(memory_limit_mib=fts.memory_limit if fts.HasField("memory_limit") else None,
                          num_workers=fts.num_workers).check()


def _language(name: str) -> str:
    """A tokenizer language as Lance spells it ("french" is "French"); empty is English."""
    return next((known for known in text_index.LANGUAGES if known.lower() == name.lower()), name) if name \
        else "English"


_OPERATORS = {pb.FULL_TEXT_OPERATOR_UNSPECIFIED: "OR", pb.FULL_TEXT_OPERATOR_OR: "OR",
              pb.FULL_TEXT_OPERATOR_AND: "AND"}
_OCCURS = {pb.OCCUR_UNSPECIFIED: "SHOULD", pb.OCCUR_SHOULD: "SHOULD", pb.OCCUR_MUST: "MUST",
           pb.OCCUR_MUST_NOT: "MUST_NOT"}


def full_text_query(message: pb.FullTextQuery) -> ft.TextQuery:
    """A FullTextQuery as the search's domain query, refused past its bounds as it is read (depth, count)."""
    seen = [0]
    query = _full_text(message, 1, seen)
    ft.check(query)
    return query


def _full_text(message: pb.FullTextQuery, depth: int, seen: list[int]) -> ft.TextQuery:
    seen[0] += 1
    if seen[0] > ft.MAX_QUERIES or depth > ft.MAX_DEPTH:
        raise InvalidArgument(f"a full-text query holds at most {ft.MAX_QUERIES} queries, nested at most "
                              f"{ft.MAX_DEPTH} deep", reason="FULL_TEXT_QUERY_TOO_LARGE")
    which = message.WhichOneof("query")
    if which != "text" and message.columns:
        raise InvalidArgument("`columns` goes with a string query (`text`); query objects name their own",
                              reason="INVALID_FULL_TEXT_QUERY")
    if which == "text":
        return ft.Terms(message.text, tuple(message.columns))
    if which == "match":
        m = message.match
        return ft.Match(m.terms, m.column, boost=m.boost if m.HasField("boost") else 1.0, fuzziness=m.fuzziness,
                        max_expansions=m.max_expansions or 50, operator=_enum(_OPERATORS, m.operator, "operator"),
                        prefix_length=m.prefix_length)
    if which == "phrase":
        return ft.Phrase(message.phrase.terms, message.phrase.column, slop=message.phrase.slop)
    if which == "boost":
        b = message.boost
        if not b.HasField("positive") or not b.HasField("negative"):
            raise InvalidArgument("a boost query needs a positive and a negative query",
                                  reason="INVALID_FULL_TEXT_QUERY")
        return ft.Boost(_full_text(b.positive, depth + 1, seen), _full_text(b.negative, depth + 1, seen),
                        negative_boost=b.negative_boost if b.HasField("negative_boost") else 0.5)
    if which == "multi_match":
        mm = message.multi_match
        if len(mm.columns) > ft.MAX_COLUMNS or len(mm.boosts) > ft.MAX_COLUMNS:
            raise InvalidArgument(f"a multi-match query names at most {ft.MAX_COLUMNS} columns",
                                  reason="FULL_TEXT_QUERY_TOO_LARGE", limit=ft.MAX_COLUMNS)
        return ft.MultiMatch(mm.terms, tuple(mm.columns), tuple(mm.boosts),
                             operator=_enum(_OPERATORS, mm.operator, "operator"))
    if which == "boolean":
        if len(message.boolean.clauses) > ft.MAX_QUERIES:
            raise InvalidArgument(f"a full-text query holds at most {ft.MAX_QUERIES} queries",
                                  reason="FULL_TEXT_QUERY_TOO_LARGE", limit=ft.MAX_QUERIES)
        return ft.Boolean(tuple((_enum(_OCCURS, c.occur, "occur"), _full_text(c.query, depth + 1, seen))
                                for c in message.boolean.clauses))
    raise InvalidArgument("a full-text query needs one of text, match, phrase, boost, multi_match or boolean",
                          reason="INVALID_FULL_TEXT_QUERY")


def text_search(request: pb.SearchRequest) -> ft.TextSearch:
    """A full-text search's options; vector options without a vector query are refused."""
    for name in ("limit", "offset"):
        if getattr(request, name) < 0:
            raise InvalidArgument(f"{name} must not be negative", reason="OUT_OF_RANGE", field=name)
    given = [name for name in ("vector_column", "nprobes", "ef", "refine_factor", "metric", "bypass_vector_index")
             if getattr(request, name)] + (["distance_range"] if request.HasField("distance_range") else [])
    if given:
        raise InvalidArgument(f"{', '.join(given)}: vector search options need a vector query",
                              reason="VECTOR_OPTIONS_WITHOUT_QUERY", field=given[0])
    return ft.TextSearch(where=request.where, postfilter=request.postfilter, select=tuple(request.select),
                         limit=request.limit or 10, offset=request.offset, fast_search=request.fast_search)


_FUSIONS = {pb.FUSION_METHOD_UNSPECIFIED: "rrf", pb.FUSION_METHOD_RRF: "rrf", pb.FUSION_METHOD_LINEAR: "linear",
            pb.FUSION_METHOD_MRR: "mrr"}
_NORMALIZATIONS = {pb.NORMALIZATION_UNSPECIFIED: "score", pb.NORMALIZATION_SCORE: "score",
                   pb.NORMALIZATION_RANK: "rank"}


def fusion(request: pb.SearchRequest) -> Fusion:
    """A hybrid search's fusion, LanceDB's defaults where not set (checked by the search)."""
    given = request.fusion

    def value(name: str, default: float) -> float:
        return getattr(given, name) if given.HasField(name) else default

    return Fusion(method=_enum(_FUSIONS, given.method, "method"), k=value("k", 60.0), weight=value("weight", 0.7),
                  fill=value("fill", 1.0), weight_vector=value("weight_vector", 0.5),
                  weight_fts=value("weight_fts", 0.5), normalize=_enum(_NORMALIZATIONS, given.normalize, "normalize"),
                  return_all_scores=given.return_all_scores)


def reranking(request: pb.SearchRequest) -> Reranking | None:
    """A search's model reranking, when it asks for one."""
    if not request.HasField("rerank"):
        return None
    given = request.rerank
    if not given.name:
        raise InvalidArgument("rerank needs the rerank function's name (for example cross-encoder)",
                              reason="MISSING_FUNCTION")
    return Reranking(FunctionConfig(given.name, struct_to_python(given.settings)), column=given.column or "text",
                     query=given.query, return_all_scores=given.return_all_scores)


def hybrid_text_search(request: pb.SearchRequest) -> ft.TextSearch:
    """A hybrid search's full-text half: the request's filter and columns (its vector options are the other
    half's)."""
    return ft.TextSearch(where=request.where, postfilter=request.postfilter, select=tuple(request.select),
                         limit=request.limit or 10, offset=request.offset, fast_search=request.fast_search)


def search_query(request: pb.SearchRequest) -> np.ndarray | Query:
    which = request.WhichOneof("query")
    if which == "vector":
        return np.asarray(request.vector.values, dtype=np.float32)
    if which == "text":
        return Query(text=request.text)
    if which == "image_bytes":
        return Query(image_bytes=request.image_bytes)
    if which == "image_uri":
        return Query(image_uri=request.image_uri)
    if which == "vectors":
        lengths = {len(v.values) for v in request.vectors.vectors}
        if not request.vectors.vectors:
            raise InvalidArgument("vectors holds no query vector", reason="MISSING_QUERY")
        if len(lengths) != 1:
            raise InvalidArgument(f"the query vectors have different lengths ({sorted(lengths)[:5]})",
                                  reason="WRONG_DIMENSION")
        return np.asarray([v.values for v in request.vectors.vectors], dtype=np.float32).reshape(
            len(request.vectors.vectors), lengths.pop())
    raise InvalidArgument("a search needs a query: vector, vectors, text, image_bytes or image_uri",
                          reason="MISSING_QUERY")


def embedding_inputs(inputs: Iterable[pb.EmbeddingInput]) -> list[Query]:
    found = []
    for index, item in enumerate(inputs):
        which = item.WhichOneof("value")
        if which is None:
            raise InvalidArgument(f"input {index} holds no text or image", reason="MISSING_INPUT", index=index)
        found.append(Query(text=item.text) if which == "text" else Query(image_bytes=item.image_bytes)
                     if which == "image_bytes" else Query(image_uri=item.image_uri))
    return found


def vectors_to_proto(vectors: np.ndarray) -> pb.ComputeEmbeddingsResponse:
    matrix = np.asarray(vectors, dtype=np.float32)
    return pb.ComputeEmbeddingsResponse(vectors=[pb.Vector(values=row.tolist()) for row in matrix],
                                        dimensions=int(matrix.shape[1]) if matrix.ndim == 2 else 0)


def search_kind(request: pb.SearchRequest, explained: bool = False) -> str:
    """"vector", "full_text" or "hybrid" (a query and full_text); UNSUPPORTED_SEARCH for options the kind does
    not take. `explained`: ExplainSearch, which also takes neither ("read": refused there, with its words)."""
    has_query, has_text = request.WhichOneof("query") is not None, request.HasField("full_text")
    if not has_text and (request.HasField("fusion") or request.fast_search):
        raise InvalidArgument("fusion and fast_search apply to searches with full_text", reason="UNSUPPORTED_SEARCH")
    if has_query and has_text:
        if request.computed_columns:
            raise InvalidArgument("a hybrid search returns columns, not computed_columns",
                                  reason="UNSUPPORTED_SEARCH")
        if request.HasField("vectors"):
            raise InvalidArgument("a hybrid search takes one query vector, not several", reason="UNSUPPORTED_SEARCH")
        return "hybrid"
    if has_text:
        if request.HasField("fusion"):
            raise InvalidArgument("fusion applies to a hybrid search (a query with full_text)",
                                  reason="UNSUPPORTED_SEARCH")
        return "full_text"
    if explained and not has_query:
        return "read"
    return "vector"


def orderings(given: Iterable[pb.ColumnOrdering]) -> tuple[ordering.ColumnOrdering, ...]:
    return ordering.check([ordering.ColumnOrdering(o.column, o.descending, o.nulls_first) for o in given])


def search_for_ordering(request: pb.SearchRequest, orderings: tuple[ordering.ColumnOrdering, ...]
                        ) -> tuple[pb.SearchRequest, int, tuple[str, ...]]:
    """(the search that finds the rows to sort: its `limit + offset` rows, the sort's columns selected too; the
    limit to keep after sorting; the columns added for the sort only)."""
    if request.limit < 0 or request.offset < 0:
        raise InvalidArgument("limit and offset must not be negative", reason="OUT_OF_RANGE", field="limit")
    if request.HasField("vectors"):
        raise InvalidArgument("order_by sorts one search's results: not those of several query vectors",
                              reason="UNSUPPORTED_SEARCH", field="order_by")
    limit = request.limit or 10
    computed = {c.name for c in request.computed_columns}
    extra = tuple(c for c in ordering.columns_needed(orderings, request.select) if c not in computed)
    wider = pb.SearchRequest()
    wider.CopyFrom(request)
    del wider.order_by[:]
    wider.limit, wider.offset = min(limit + request.offset, 2**31 - 1), 0
    wider.select.extend(extra)
    return wider, limit, extra


def vector_search(request: pb.SearchRequest) -> VectorSearch:
    for name in ("limit", "offset"):
        if getattr(request, name) < 0:
            raise InvalidArgument(f"{name} must not be negative", reason="OUT_OF_RANGE", field=name)
    for name, most in SEARCH_BOUNDS.items():
        if not 0 <= getattr(request, name) <= most:
            raise InvalidArgument(f"{name} must be from 0 (the default) to {most}; got {getattr(request, name)}",
                                  reason="OUT_OF_RANGE", field=name, limit=most)
    bounds = request.distance_range
    return VectorSearch(
        vector_column=request.vector_column, where=request.where, postfilter=request.postfilter,
        select=tuple(request.select), limit=request.limit or 10, offset=request.offset,
        distance_lower=bounds.lower if bounds.HasField("lower") else None,
        distance_upper=bounds.upper if bounds.HasField("upper") else None,
        metric=_enum(_METRICS, request.metric, "metric"),
        options=SearchParams(nprobes=request.nprobes, ef=request.ef, refine_factor=request.refine_factor),
        exact=request.bypass_vector_index)


def merge_rules(first: pb.MergeInsertRequest) -> MergeRules:
    return MergeRules(on=tuple(first.on), update_matched=first.when_matched_update_all,
                      insert_unmatched=first.when_not_matched_insert_all,
                      delete_unmatched_by_source=first.when_not_matched_by_source_delete,
                      delete_where=first.when_not_matched_by_source_delete_where,
                      update_where=first.when_matched_update_where)


def computed_columns(messages: Any) -> dict[str, str]:
    """Computed columns by name, in the order given; a name given twice is refused."""
    computed: dict[str, str] = {}
    for message in messages:
        if message.name in computed:
            raise InvalidArgument(f"computed column {message.name!r} is given twice", reason="INVALID_COLUMN_NAME",
                                  column=message.name[:256])
        computed[message.name] = message.expression
    return computed


def taken_rows(request: pb.ReadRowsRequest) -> dict[str, np.ndarray | None]:
    """ReadRows' `offsets` / `row_ids` (None when not given), as `StoreCore.read` takes them."""
    return {"offsets": np.asarray(request.offsets, dtype=np.int64) if len(request.offsets) else None,
            "row_ids": np.asarray(request.row_ids, dtype=np.int64) if len(request.row_ids) else None}


def update_values(request: pb.UpdateRowsRequest, schema: pa.Schema) -> pa.Table:
    """The values of an update as one row in the table's types: `value_row`, or else the `values` object."""
    if request.HasField("value_row"):
        rows = rows_to_arrow(request.value_row, schema)
        if rows is not None and rows.num_rows != 1:
            raise InvalidArgument(f"value_row holds {rows.num_rows} rows; an update sets one row of values",
                                  reason="MISSING_VALUES")
        if rows is not None and len(request.values):
            raise InvalidArgument("give the values in value_row or in values, not both", reason="MISSING_VALUES")
    elif len(request.values):
        rows = rows_to_arrow(pb.Rows(json=pb.JsonRows(rows=[request.values])), schema)
    else:
        rows = None
    return rows if rows is not None else pa.table({})


# ----- domain -> responses ------------------------------------------------------------------------------
def table_to_proto(info: TableInfo) -> pb.Table:
    return pb.Table(name=info.name, schema=schema_to_proto(info.schema),
                    embedding_functions=[function_config_to_proto(c) for c in info.functions],
                    version=info.version, num_rows=info.num_rows, indexes=[index_to_proto(e) for e in info.indexes])


def text_index_to_proto(entry: TextIndexEntry, parameters: dict[str, Any] | None = None,
                        index_version: int = 0) -> pb.Index:
    found = struct_pb2.Struct()
    found.update({k: list(v) if isinstance(v, tuple) else v for k, v in (parameters or {}).items()
                  if v is None or isinstance(v, (bool, int, float, str, list, tuple))})
    return pb.Index(name=entry.name, index_type=pb.INDEX_TYPE_FTS, version=entry.version, parameters=found,
                    columns=[entry.column], index_version=index_version)


def index_to_proto(entry: IndexEntry | TextIndexEntry) -> pb.Index:
    if isinstance(entry, TextIndexEntry):
        return text_index_to_proto(entry)
    by_kind = {v: k for k, v in _INDEX_TYPES.items()}
    by_metric = {v: k for k, v in _METRICS.items() if v}
    parameters = struct_pb2.Struct()
    parameters.update({"num_partitions": entry.params.num_partitions, "num_sub_vectors": entry.params.num_sub_vectors,
                       "m": entry.params.m, "ef_construction": entry.params.ef_construction,
                       "rows_covered": entry.next_row_id, "dimensions": entry.dims})
    return pb.Index(name=entry.name, vector_column=entry.vector_column, index_type=by_kind[entry.params.kind],
                    metric=by_metric[entry.params.metric], version=entry.version, parameters=parameters,
                    columns=[entry.vector_column])


def retention(seconds: float) -> float:
    """OptimizeTable's `cleanup_older_than_seconds`: 0 is LanceDB's default of 7 days."""
    return DEFAULT_RETENTION_S if seconds == 0 else seconds


def column_expressions(expressions: Iterable[pb.ColumnExpression]) -> dict[str, str]:
    found: dict[str, str] = {}
    for item in expressions:
        if not item.name:
            raise InvalidArgument("a new column has no name", reason="INVALID_SCHEMA")
        if item.name in found:
            raise InvalidArgument(f"new column {item.name!r} is given twice", reason="INVALID_SCHEMA",
                                  column=item.name)
        found[item.name] = item.expression
    return found


def null_columns(message: pb.Schema) -> pa.Schema | None:
    if not message.fields and not message.arrow_schema:
        return None
    return schema_from_proto(message)


def alterations(items: Iterable[pb.ColumnAlteration]) -> list[Alteration]:
    found = []
    for item in items:
        data_type = None
        if item.data_type:
            try:
                data_type = pa.type_for_alias(item.data_type)
            except (ValueError, KeyError):
                raise InvalidArgument(f"data_type {item.data_type[:64]!r} is not an Arrow type name (int64, float, "
                                      "double, string, large_string, timestamp[ms], ...)", reason="INVALID_CAST",
                                      column=item.path) from None
        found.append(Alteration(item.path, item.rename, item.nullable if item.HasField("nullable") else None,
                                data_type, dict(item.metadata), tuple(item.metadata_removed),
                                item.metadata_replace))
    return found


def optimized_to_proto(result: Optimized) -> pb.OptimizeTableResponse:
    return pb.OptimizeTableResponse(version=result.version, fragments_removed=result.fragments_removed,
                                    fragments_added=result.fragments_added,
                                    indexes_caught_up=result.indexes_caught_up,
                                    versions_removed=result.versions_removed, bytes_removed=result.bytes_removed)


def stats_to_proto(stats: TableStats) -> pb.GetTableStatsResponse:
    lengths = stats.lengths
    described = pb.FragmentLengths()
    if len(lengths):
        p25, p50, p75, p99 = (int(v) for v in np.percentile(lengths, [25, 50, 75, 99], method="lower"))
        described = pb.FragmentLengths(min=int(lengths.min()), max=int(lengths.max()), mean=float(lengths.mean()),
                                       p25=p25, p50=p50, p75=p75, p99=p99)
    return pb.GetTableStatsResponse(version=stats.version, num_rows=stats.num_rows,
                                    num_deleted_rows=stats.num_deleted_rows, num_fragments=stats.num_fragments,
                                    num_small_fragments=stats.num_small_fragments, total_bytes=stats.total_bytes,
                                    num_indices=stats.num_indices, fragment_lengths=described)


def version_to_proto(manifest: Manifest) -> pb.Version:
    return pb.Version(version=manifest.version, timestamp=manifest.timestamp, operation=manifest.operation,
                      num_rows=manifest.rows)


_OPERATION_KINDS = {"CHANGE_FUNCTION": pb.OPERATION_KIND_CHANGE_FUNCTION,
                    "ADD_FUNCTION": pb.OPERATION_KIND_ADD_FUNCTION,
                    "DROP_FUNCTION": pb.OPERATION_KIND_DROP_FUNCTION}


def operation_to_proto(operation: Operation) -> pb.Operation:
    message = pb.Operation(
        name=operation.name, table=operation.table, kind=_OPERATION_KINDS[operation.kind],
        state=pb.OperationState.Value(f"OPERATION_STATE_{operation.state}"), done=operation.done,
        vector_column=operation.vector_column, rows_done=operation.rows_done, rows_total=operation.rows_total,
        rows_per_second=operation.rows_per_second, eta_seconds=operation.eta_seconds,
        result_version=operation.result_version, base_version=operation.base_version)
    if operation.function is not None:
        message.function.CopyFrom(function_config_to_proto(operation.function))
    if operation.error is not None:
        message.error.CopyFrom(pb.OperationError(code=operation.error.code, reason=operation.error.reason,
                                                 message=operation.error.message))
    message.create_time.FromNanoseconds(int(operation.created * 1e9))
    message.update_time.FromNanoseconds(int(operation.updated * 1e9))
    return message
