"""Every client operation, once: generators that yield the calls they need (`_transport.Unary`/`Upload`) and
turn the replies into results. `Connection` and `Table` hand them to their transport (sync or asyncio)."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pyarrow as pa
import pydantic
from google.protobuf import json_format, struct_pb2

from vectorlane import rows as rowlib
from vectorlane_contract import wire
from vectorlane._transport import Compute, Op, Unary, Upload
from vectorlane.embeddings.config import EmbeddingFunctionConfig
from vectorlane.errors import NotFoundError, VectorlaneError
from vectorlane.operations import Operation
from vectorlane.results import AddResult, DeleteResult, FtsToken, IndexInfo, MergeResult, UpdateResult, VersionInfo
from vectorlane_contract.store.v1 import store_service_pb2 as pb

if TYPE_CHECKING:
    from vectorlane.connection import ConnectionBase as Connection
    from vectorlane.table import TableOps as Table

ROWS_PER_MESSAGE = 10_000
ROW_BYTES_PER_MESSAGE = 2 << 20  # fewer rows when they are wide: the store writes one message while the next arrives
IMAGE_BYTES_PER_MESSAGE = 16 << 20  # local image files sent with the rows: at most this much per message
PROGRESS_FROM_ROWS = 50_000  # adds of at least this many rows show a progress bar

_CREATE_MODES = {"create": pb.CREATE_MODE_CREATE, "overwrite": pb.CREATE_MODE_OVERWRITE}
_ADD_MODES = {"append": pb.ADD_MODE_APPEND, "overwrite": pb.ADD_MODE_OVERWRITE}
_BAD_VECTORS = {"error": pb.BAD_VECTOR_POLICY_ERROR, "drop": pb.BAD_VECTOR_POLICY_DROP,
                "fill": pb.BAD_VECTOR_POLICY_FILL, "null": pb.BAD_VECTOR_POLICY_NULL}
METRICS = {"l2": pb.METRIC_L2, "cosine": pb.METRIC_COSINE, "dot": pb.METRIC_DOT}
INDEX_TYPES = {"FLAT": pb.INDEX_TYPE_FLAT, "IVF_FLAT": pb.INDEX_TYPE_IVF_FLAT, "IVF_PQ": pb.INDEX_TYPE_IVF_PQ,
               "HNSW": pb.INDEX_TYPE_HNSW}


def choice(value: str, allowed: dict[str, Any], what: str) -> Any:
    try:
        return allowed[value]
    except KeyError:
        raise ValueError(f"{what} must be one of {sorted(allowed)}, not {value!r}") from None


def struct(values: dict[str, Any]) -> struct_pb2.Struct:
    message = struct_pb2.Struct()
    message.update(values)
    return message


# ----- functions and tables ------------------------------------------------------------------------------
def describe_function(name: str, settings: dict[str, Any]) -> Op[pb.DescribeFunctionResponse]:
    config = pb.EmbeddingFunctionConfig(name=name, model=struct(settings))
    reply = yield Unary("DescribeFunction", pb.DescribeFunctionRequest(function=config))
    return cast(pb.DescribeFunctionResponse, reply)


EMBED_INPUTS_PER_CALL = 1_000  # the store's default max_batch_queries


def _embedding_input(value: Any) -> pb.EmbeddingInput:
    from vectorlane.query import _image_bytes, _is_pil
    if isinstance(value, str):
        return pb.EmbeddingInput(text=value)
    if isinstance(value, (bytes, bytearray)):
        return pb.EmbeddingInput(image_bytes=bytes(value))
    if _is_pil(value):
        return pb.EmbeddingInput(image_bytes=_image_bytes(value))
    raise TypeError(f"cannot embed a {type(value).__name__}: give texts, encoded images or PIL images")


def compute_embeddings(name: str, settings: dict[str, Any], values: list[Any], as_queries: bool
                       ) -> Op[list[np.ndarray]]:
    """A hosted function's vectors for `values` (texts, image bytes, PIL images), in order."""
    config = pb.EmbeddingFunctionConfig(name=name, model=struct(settings))
    vectors: list[np.ndarray] = []
    for start in range(0, len(values), EMBED_INPUTS_PER_CALL):
        part = values[start:start + EMBED_INPUTS_PER_CALL]
        request = pb.ComputeEmbeddingsRequest(function=config, inputs=[_embedding_input(v) for v in part],
                                              query=as_queries)
        reply = yield Unary("ComputeEmbeddings", request)
        vectors.extend(np.asarray(v.values, dtype=np.float32) for v in reply.vectors)
    return vectors


def _every_page(method: str, request: Any, items: Any, token: str = "") -> Op[list[Any]]:
    """Every item of a paged List call (AIP-158): `request(token)` is the call for a page, `items(reply)` what
    it holds. A page token the store gave before, or a page holding nothing but a token, ends it with an
    error: a broken or hostile store could otherwise keep the client asking forever."""
    found: list[Any] = []
    seen: set[str] = set()
    while True:
        reply = yield Unary(method, request(token))
        page = list(items(reply))
        found.extend(page)
        token = reply.next_page_token
        if not token:
            return found
        if token in seen or not page:
            raise VectorlaneError(f"{method}: the store answered a page token it gave before, or an empty page "
                                  "with a token; stopped", reason="BAD_PAGE_TOKEN")
        seen.add(token)


def table_names(page_token: str | None, limit: int | None) -> Op[list[str]]:
    if limit is not None:
        reply = yield Unary("ListTables", pb.ListTablesRequest(page_size=limit, page_token=page_token or ""))
        return list(reply.names)
    return (yield from _every_page("ListTables", lambda token: pb.ListTablesRequest(page_size=1000, page_token=token),
                                   lambda reply: reply.names, page_token or ""))


def _schema_and_functions(schema: Any, data: Any, functions: list[EmbeddingFunctionConfig]
                          ) -> tuple[pa.Schema | None, list[EmbeddingFunctionConfig]]:
    """The Arrow schema to create (without function metadata) and the functions: those given, a LanceModel's,
    and those an Arrow schema's (or Arrow data's) `embedding_functions` metadata records, as LanceDB honours
    it: a table read out of LanceDB with `to_arrow()` keeps its functions here."""
    from vectorlane.embeddings.registry import METADATA_KEY, get_registry
    from vectorlane.pydantic import LanceModel
    if isinstance(schema, type) and issubclass(schema, pydantic.BaseModel):
        if not issubclass(schema, LanceModel):
            from vectorlane.pydantic import pydantic_to_schema
            return pydantic_to_schema(schema), functions
        return schema.to_arrow_schema().remove_metadata(), schema.parse_embedding_functions() + functions
    if schema is not None and not isinstance(schema, pa.Schema):
        raise TypeError(f"schema must be a LanceModel subclass or a pyarrow.Schema, not {schema!r}")
    carrier = schema if schema is not None else getattr(data, "schema", None)
    metadata = carrier.metadata if isinstance(carrier, pa.Schema) else None
    recorded = get_registry().parse_functions(metadata)
    given = {c.vector_column for c in functions}
    functions = functions + [c for column, c in recorded.items() if column not in given]
    if schema is not None and metadata and (METADATA_KEY.encode() in metadata or METADATA_KEY in metadata):
        schema = schema.with_metadata({k: v for k, v in metadata.items()
                                       if k not in (METADATA_KEY, METADATA_KEY.encode())})
    return schema, functions


def create_table(connection: "Connection", name: str, data: Any, schema: Any, mode: str, exist_ok: bool,
                 on_bad_vectors: str, fill_value: float, functions: list[EmbeddingFunctionConfig]) -> Op["Table"]:
    if isinstance(data, dict):
        raise ValueError(rowlib.SINGLE_DICT)
    if isinstance(data, list) and not data:
        data = None  # no first rows: the schema alone
        if schema is None:
            raise ValueError("Cannot create table from empty list without a schema")
    arrow_schema, configs = _schema_and_functions(schema, data, functions)
    if data is None and arrow_schema is None:
        raise ValueError("create_table needs a schema, data, or both")
    create_mode = choice(mode, _CREATE_MODES, "mode")
    if exist_ok and create_mode == pb.CREATE_MODE_CREATE:
        create_mode = pb.CREATE_MODE_EXIST_OK
    request = pb.CreateTableRequest(name=name, embedding_functions=[c.to_proto() for c in configs], mode=create_mode,
                                    on_bad_vectors=choice(on_bad_vectors, _BAD_VECTORS, "on_bad_vectors"),
                                    fill_value=fill_value)
    if arrow_schema is not None:
        request.schema.arrow_schema = arrow_schema.serialize().to_pybytes()
    if data is None:
        reply = yield Unary("CreateTable", request)
    else:
        table = rowlib.to_arrow(data, arrow_schema)
        if arrow_schema is None and table.schema.metadata:
            table = table.replace_schema_metadata(None)  # its functions travel as `embedding_functions`
        if arrow_schema is not None and any(c.function.is_local for c in configs):
            table = yield Compute(rowlib.fill_local_vectors, (table, configs, arrow_schema))
        else:
            _check_local_functions_given(table, configs)
        first, rest = _split(table)
        reply = yield Unary("CreateTable", wire.encode(request, "rows", rowlib.ipc(first)))
        if rest is not None:  # too big for one message: the rest streams in as one add (version 2)
            created = connection._table_class(connection, reply.table)
            try:
                yield from add(created, rest, "append", on_bad_vectors, fill_value)
            except BaseException:
                yield from drop_table(name, ignore_missing=True)  # a failed create leaves no table
                raise
            reply = yield Unary("GetTable", pb.GetTableRequest(name=name))
    return connection._table_class(connection, reply.table)


def _split(table: pa.Table) -> tuple[pa.Table, pa.Table | None]:
    """The rows one CreateTable message carries, and the rest (None when they all fit)."""
    first = next(rowlib.chunks(table, ROWS_PER_MESSAGE, ROW_BYTES_PER_MESSAGE))
    return (table, None) if first.num_rows >= table.num_rows else (first, table.slice(first.num_rows))


def _check_local_functions_given(table: pa.Table, configs: list[EmbeddingFunctionConfig]) -> None:
    for config in configs:
        if config.function.is_local and config.vector_column not in table.column_names:
            raise ValueError(f"local function {config.function.function_name!r}: pass a schema (its vector column "
                             f"{config.vector_column!r} needs a dimension) or rows with vectors")


def open_table(connection: "Connection", name: str, version: int = 0) -> Op["Table"]:
    reply = yield Unary("GetTable", pb.GetTableRequest(name=name))
    if version > reply.table.version:
        raise ValueError(f"table {name!r} has no version {version} (its latest is {reply.table.version})")
    return connection._table_class(connection, reply.table, checked_out=version)


def drop_table(name: str, ignore_missing: bool) -> Op[None]:
    try:
        yield Unary("DropTable", pb.DropTableRequest(name=name))
    except NotFoundError:
        if not ignore_missing:
            raise


def drop_all_tables() -> Op[None]:
    """Every table dropped, one by one (LanceDB's `drop_all_tables`)."""
    for name in (yield from table_names(None, None)):
        yield from drop_table(name, ignore_missing=True)


RENAME_REFUSED = ("rename_table not implemented: as LanceDB's own local databases, a store does not rename "
                  "tables (create the new one from the old one's rows, then drop it)")


def describe(name: str) -> Op[pb.Table]:
    return cast(pb.Table, (yield Unary("GetTable", pb.GetTableRequest(name=name))).table)


# ----- rows ---------------------------------------------------------------------------------------------
def image_columns(table: "Table") -> Op[list[str]]:
    """Source columns of URIs that a server function embeds as images (asked once per table)."""
    if table._image_columns is None:
        found = []
        for config in table.function_configs():
            if table._schema.get_field_index(config.source_column) < 0:
                continue  # a function recorded without its source column (LanceDB allows it) embeds nothing
            source = table._schema.field(config.source_column)
            if config.function.is_local or not pa.types.is_string(source.type) or config.source_type == "text":
                continue
            if config.source_type == "image":
                found.append(config.source_column)
                continue
            info = yield Unary("DescribeFunction", pb.DescribeFunctionRequest(function=config.to_proto()))
            if "image" in info.modalities:
                found.append(config.source_column)
        table._image_columns = found
    return table._image_columns


def _messages(table: "Table", first: Any, rows: pa.Table, image_columns: list[str], label: str
              ) -> Iterator[bytes]:
    """The stream's encoded messages: `first` (the options) with the first part, then one per part of
    ROWS_PER_MESSAGE rows, each with the local image files its rows name when the connection uploads them."""
    bar = None
    if rows.num_rows >= PROGRESS_FROM_ROWS:
        from tqdm.auto import tqdm
        bar = tqdm(total=rows.num_rows, unit="rows", desc=label)
    columns = [c for c in image_columns if c in rows.column_names] if table._connection.upload_images else []
    try:
        head = first
        parts = rowlib.chunks(rows, ROWS_PER_MESSAGE, ROW_BYTES_PER_MESSAGE)
        for part, images in rowlib.with_images(parts, columns, IMAGE_BYTES_PER_MESSAGE):
            head.images.update(images)
            yield wire.encode(head, "rows", rowlib.ipc(part))
            head = type(first)()
            if bar is not None:
                bar.update(part.num_rows)
    finally:
        if bar is not None:
            bar.close()


def _with_local_vectors(rows: pa.Table, table: "Table") -> Op[pa.Table]:
    """`rows` with the vectors of the table's local functions computed (a `Compute`: off the event loop)."""
    configs = table.function_configs()
    if not any(c.function.is_local for c in configs):
        return rows
    return (yield Compute(rowlib.fill_local_vectors, (rows, configs, table._schema)))


def add(table: "Table", data: Any, mode: str, on_bad_vectors: str, fill_value: float) -> Op[AddResult]:
    """Streams the rows in messages of ROWS_PER_MESSAGE; one new version (returned) holds them all."""
    arrow = yield from _with_local_vectors(rowlib.to_arrow(data, table._schema), table)
    first = pb.AddRowsRequest(table=table.name, mode=choice(mode, _ADD_MODES, "mode"),
                              on_bad_vectors=choice(on_bad_vectors, _BAD_VECTORS, "on_bad_vectors"),
                              fill_value=fill_value)
    images = yield from image_columns(table)
    reply = yield Upload("AddRows", _messages(table, first, arrow, images, f"add to {table.name}"))
    return AddResult(reply.version)


def merge_insert(table: "Table", data: Any, on: list[str], update_all: bool, insert_all: bool,
                 delete_by_source: bool, delete_where: str, on_bad_vectors: str, fill_value: float,
                 update_where: str = "", timeout: float | None = None) -> Op[MergeResult]:
    arrow = yield from _with_local_vectors(rowlib.to_arrow(data, table._schema), table)
    first = pb.MergeInsertRequest(table=table.name, on=on, when_matched_update_all=update_all,
                                  when_not_matched_insert_all=insert_all,
                                  when_not_matched_by_source_delete=delete_by_source,
                                  when_not_matched_by_source_delete_where=delete_where,
                                  on_bad_vectors=choice(on_bad_vectors, _BAD_VECTORS, "on_bad_vectors"),
                                  fill_value=fill_value, when_matched_update_where=update_where)
    images = yield from image_columns(table)
    reply = yield Upload("MergeInsert", _messages(table, first, arrow, images, f"merge into {table.name}"), timeout)
    return MergeResult(reply.version, num_updated_rows=reply.rows_updated, num_inserted_rows=reply.rows_inserted,
                       num_deleted_rows=reply.rows_deleted)


def computed_columns(computed: dict[str, str] | None) -> list[pb.ColumnExpression]:
    return [pb.ColumnExpression(name=name, expression=expression) for name, expression in (computed or {}).items()]


def read(table: "Table", where: str, select: list[str], limit: int, version: int, offset: int = 0,
         timeout: float | None = None, computed: dict[str, str] | None = None,
         order_by: list[pb.ColumnOrdering] | None = None) -> Op[pa.Table]:
    """The matching rows from `offset`, at most `limit` (0: all of them), page by page: the store caps one
    response, not what can be read; every page after the first reads the version the first one read.
    `computed`: columns evaluated from each row by SQL (LanceDB's `select({name: expression})`)."""
    parts: list[pa.Table] = []
    got = 0
    while True:
        request = pb.ReadRowsRequest(table=table.name, where=where, select=select, limit=limit - got if limit else 0,
                                     offset=offset, version=version, format=pb.ROW_FORMAT_ARROW,
                                     computed_columns=computed_columns(computed), order_by=order_by)
        reply = yield Unary("ReadRows", request, timeout)
        parts.append(rowlib.read_ipc(reply.rows.arrow_ipc))
        got += parts[-1].num_rows
        version = reply.version
        if not reply.next_offset or (limit and got >= limit):
            return parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        offset = reply.next_offset


def count(table: "Table", where: str, version: int) -> Op[int]:
    reply = yield Unary("CountRows", pb.CountRowsRequest(table=table.name, where=where, version=version))
    return int(reply.count)


def delete(table: "Table", where: str) -> Op[DeleteResult]:
    reply = yield Unary("DeleteRows", pb.DeleteRowsRequest(table=table.name, where=where))
    return DeleteResult(reply.version, reply.rows_deleted)


def _update_value(value: Any) -> Any:
    if isinstance(value, pa.Scalar):
        return value.as_py()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def update(table: "Table", where: str, values: dict[str, Any], values_sql: dict[str, str]) -> Op[UpdateResult]:
    """`values` travel as one Arrow row in the table's types (so bytes, dates and vectors arrive exactly);
    `values_sql` as the expressions the store computes for each row."""
    request = pb.UpdateRowsRequest(table=table.name, where=where, values_sql=values_sql)
    if values:
        row = rowlib.to_arrow([{k: _update_value(v) for k, v in values.items()}], table._schema)
        request.value_row.arrow_ipc = rowlib.ipc(row).to_pybytes()
    reply = yield Unary("UpdateRows", request)
    return UpdateResult(reply.rows_updated, reply.version)


def search(request: pb.SearchRequest, timeout: float | None = None) -> Op[pa.Table]:
    reply = yield Unary("Search", request, timeout)
    return rowlib.read_ipc(reply.rows.arrow_ipc)


def explain(request: pb.SearchRequest, verbose: bool, analyze: bool) -> Op[str]:
    reply = yield Unary("ExplainSearch", pb.ExplainSearchRequest(search=request, verbose=verbose, analyze=analyze))
    return str(reply.plan)


def take(table: "Table", select: list[str], offsets: list[int] | None, row_ids: list[int] | None,
         timeout: float | None = None, computed: dict[str, str] | None = None) -> Op[pa.Table]:
    """Rows by position or stable id, in the order asked (ids not in the table left out)."""
    request = pb.ReadRowsRequest(table=table.name, select=select, version=table._checked_out,
                                 format=pb.ROW_FORMAT_ARROW, offsets=offsets or [], row_ids=row_ids or [],
                                 computed_columns=computed_columns(computed))
    if not (offsets or row_ids):
        if computed:  # no rows, but typed computed columns: the store plans them over a filter no row passes
            request = pb.ReadRowsRequest(table=table.name, select=select, version=table._checked_out,
                                         format=pb.ROW_FORMAT_ARROW, where="FALSE",
                                         computed_columns=computed_columns(computed))
        else:
            schema = table._schema if not select else pa.schema([table._schema.field(c) if c != "_rowid"
                                                                 else pa.field(c, pa.int64()) for c in select])
            return schema.empty_table()
    reply = yield Unary("ReadRows", request, timeout)
    return rowlib.read_ipc(reply.rows.arrow_ipc)


# ----- indexes and versions -----------------------------------------------------------------------------
def create_index(request: pb.CreateIndexRequest) -> Op[IndexInfo]:
    return index_info((yield Unary("CreateIndex", request)).index)


def list_indexes(name: str) -> Op[list[IndexInfo]]:
    reply = yield Unary("ListIndexes", pb.ListIndexesRequest(table=name))
    return [index_info(i) for i in reply.indexes]


def index_info(index: pb.Index) -> IndexInfo:
    return IndexInfo(name=index.name, index_type=pb.IndexType.Name(index.index_type).removeprefix("INDEX_TYPE_"),
                     columns=list(index.columns) or [index.vector_column],
                     distance_type="" if index.index_type == pb.INDEX_TYPE_FTS
                     else pb.Metric.Name(index.metric).removeprefix("METRIC_").lower(),
                     version=index.version, parameters=json_format.MessageToDict(index.parameters),
                     index_version=index.index_version or None)


def tokenize(text: str, *, table: str = "", column: str | None = None, index_name: str | None = None,
             settings: pb.FtsParams | None = None) -> Op[list[FtsToken]]:
    """`text`'s tokens as the table's FTS index (on `column`, or named `index_name`) keeps them, or as an index
    with `settings` would."""
    if table and (column is None) == (index_name is None):
        raise ValueError("Specify exactly one of column or index_name")
    reply = yield Unary("Tokenize", pb.TokenizeRequest(text=text, table=table, column=column or "",
                                                       index_name=index_name or "", fts=settings))
    return [FtsToken(t.text, t.position) for t in reply.tokens]


def drop_index(name: str, index: str) -> Op[int]:
    return int((yield Unary("DropIndex", pb.DropIndexRequest(table=name, name=index))).version)


def list_versions(name: str) -> Op[list[VersionInfo]]:
    versions = yield from _every_page(
        "ListVersions", lambda token: pb.ListVersionsRequest(table=name, page_size=1000, page_token=token),
        lambda reply: reply.versions)
    return [VersionInfo(version=v.version, timestamp=datetime.datetime.fromtimestamp(v.timestamp),
                        metadata={"operation": v.operation, "num_rows": str(v.num_rows)}) for v in versions]


def restore(name: str, version: int) -> Op[int]:
    return int((yield Unary("RestoreVersion", pb.RestoreVersionRequest(table=name, version=version))).version)


# ----- maintenance -----------------------------------------------------------------------------------
def optimize(name: str, cleanup_older_than_seconds: float) -> Op[pb.OptimizeTableResponse]:
    return cast(pb.OptimizeTableResponse, (yield Unary("OptimizeTable", pb.OptimizeTableRequest(
        table=name, cleanup_older_than_seconds=cleanup_older_than_seconds))))


def stats(name: str) -> Op[dict[str, Any]]:
    """LanceDB's `TableStatistics` layout."""
    reply = yield Unary("GetTableStats", pb.GetTableStatsRequest(table=name))
    lengths = reply.fragment_lengths
    return {"total_bytes": reply.total_bytes, "num_rows": reply.num_rows, "num_indices": reply.num_indices,
            "fragment_stats": {"num_fragments": reply.num_fragments,
                               "num_small_fragments": reply.num_small_fragments,
                               "lengths": {"min": lengths.min, "max": lengths.max, "mean": lengths.mean,
                                           "p25": lengths.p25, "p50": lengths.p50, "p75": lengths.p75,
                                           "p99": lengths.p99}}}


# ----- schema evolution ----------------------------------------------------------------------------------
def add_columns(name: str, transforms: Any) -> Op[int]:
    """LanceDB's `add_columns` argument: {name: SQL expression}, or pyarrow field(s) / a schema of null columns."""
    request = pb.AddColumnsRequest(table=name)
    if isinstance(transforms, dict):
        for column, expression in transforms.items():
            if not isinstance(expression, str):
                raise TypeError(f"add_columns: the value for {column!r} must be a SQL expression (str)")
            request.expressions.add(name=column, expression=expression)
    else:
        fields = [transforms] if isinstance(transforms, pa.Field) else list(transforms)
        if not all(isinstance(f, pa.Field) for f in fields):
            raise TypeError("add_columns takes {name: SQL expression}, a pyarrow.Field, a list of them or a "
                            "pyarrow.Schema")
        request.null_columns.arrow_schema = pa.schema(fields).serialize().to_pybytes()
    return int((yield Unary("AddColumns", request)).version)


def merge_columns(name: str, other: pa.Table, left_on: str, right_on: str | None) -> Op[int]:
    """LanceDB's `merge`: the other table, whole in one message, joined by the store."""
    request = pb.MergeColumnsRequest(table=name, arrow_ipc=rowlib.ipc(other).to_pybytes(), left_on=left_on,
                                     right_on=right_on or "")
    return int((yield Unary("MergeColumns", request)).version)


def alter_columns(name: str, alterations: tuple[dict[str, Any], ...]) -> Op[int]:
    request = pb.AlterColumnsRequest(table=name)
    for alteration in alterations:
        unknown = set(alteration) - {"path", "rename", "nullable", "data_type"}
        if unknown or "path" not in alteration:
            raise ValueError(f"alter_columns: each alteration has a 'path' and any of 'rename', 'nullable', "
                             f"'data_type' (got {sorted(alteration)})")
        item = request.alterations.add(path=alteration["path"], rename=alteration.get("rename") or "")
        if alteration.get("nullable") is not None:
            item.nullable = bool(alteration["nullable"])
        data_type = alteration.get("data_type")
        if data_type is not None:
            item.data_type = _type_name(data_type)
    return int((yield Unary("AlterColumns", request)).version)


def update_field_metadata(name: str, updates: tuple[dict[str, Any], ...]) -> Op[int]:
    """LanceDB's `update_field_metadata`: each update a `path`, a `metadata` dict (None removes a key) and
    optionally `replace` (the whole map instead of a merge); one new version (AlterColumns)."""
    request = pb.AlterColumnsRequest(table=name)
    for update in updates:
        unknown = set(update) - {"path", "metadata", "replace"}
        if unknown or "path" not in update or not isinstance(update.get("metadata", {}), dict):
            raise ValueError("update_field_metadata: each update has a 'path', a 'metadata' dict and optionally "
                             f"'replace' (got {sorted(update)})")
        metadata = update.get("metadata") or {}
        item = request.alterations.add(path=update["path"], metadata_replace=bool(update.get("replace")))
        item.metadata.update({str(k): str(v) for k, v in metadata.items() if v is not None})
        item.metadata_removed.extend(str(k) for k, v in metadata.items() if v is None)
        if not metadata and not item.metadata_replace:
            raise ValueError(f"update_field_metadata: the update of {update['path']!r} changes nothing")
    return int((yield Unary("AlterColumns", request)).version)


def _type_name(data_type: Any) -> str:
    if isinstance(data_type, str):
        return data_type
    name = str(data_type)
    try:
        if pa.type_for_alias(name) == data_type:
            return name
    except (ValueError, KeyError):
        pass
    raise ValueError(f"alter_columns: cannot cast to {data_type} here (casts go to types Arrow names by alias: "
                     "int64, float, double, string, large_string, timestamp[ms], ...)")


def drop_columns(name: str, columns: Any) -> Op[int]:
    wanted = [columns] if isinstance(columns, str) else list(columns)
    return int((yield Unary("DropColumns", pb.DropColumnsRequest(table=name, columns=wanted))).version)


def list_tags(name: str) -> Op[dict[str, int]]:
    return {t.name: t.version for t in (yield Unary("ListTags", pb.ListTagsRequest(table=name))).tags}


def create_tag(name: str, tag: str, version: int) -> Op[int]:
    return int((yield Unary("CreateTag", pb.CreateTagRequest(table=name, tag=tag, version=version))).tag.version)


def delete_tag(name: str, tag: str) -> Op[None]:
    yield Unary("DeleteTag", pb.DeleteTagRequest(table=name, tag=tag))


def tag_version(name: str, tag: str) -> Op[int]:
    found = (yield from list_tags(name)).get(tag)
    if found is None:
        raise ValueError(f"table {name!r} has no tag {tag!r}")
    return found


# ----- long-running operations ---------------------------------------------------------------------------
def start_operation(connection: "Connection", method: str, request: Any) -> Op[Operation]:
    return Operation(connection, (yield Unary(method, request)))


def list_operations(connection: "Connection", name: str) -> Op[list[Operation]]:
    messages = yield from _every_page(
        "ListOperations", lambda token: pb.ListOperationsRequest(table=name, page_size=1000, page_token=token),
        lambda reply: reply.operations)
    return [Operation(connection, m) for m in messages]
