"""Tables: `Table` (a sync connection's, LanceDB's `Table`) and `AsyncTable` (an async connection's, LanceDB's
`AsyncTable`, every call awaited: `await table.version()`, `await table.count_rows()`).

Both are thin: what each method does is one operation of `TableOps` (a generator of the calls it needs,
over `_ops`), run by the connection's transport; the two classes differ only in returning the result or
awaiting it, and in LanceDB's few differences of form (`table.version` against `await table.version()`)."""

from __future__ import annotations

import warnings

import datetime
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from vectorlane import _ops, index
from vectorlane import rows as rowlib
from vectorlane.embeddings.config import EmbeddingFunctionConfig
from vectorlane.expr import Expr, sql_of
from vectorlane.operations import Operation
from vectorlane.query import (AsyncMergeInsertBuilder, AsyncQuery, AsyncTakeQuery, AsyncVectorQuery,
                              MergeInsertBuilder, Query, TakeQuery)
from vectorlane.results import (AddColumnsResult, AddResult, AlterColumnsResult, DeleteResult, DropColumnsResult,
                                FtsToken, IndexInfo, UpdateFieldMetadataResult, UpdateResult, VersionInfo)
from vectorlane_contract.store.v1 import store_service_pb2 as pb
from vectorlane.tags import AsyncTags, Tags

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from vectorlane.connection import AsyncConnection, Connection, ConnectionBase

T = TypeVar("T")


class TableOps:
    """What a table is and every operation on it, once; `Table` and `AsyncTable` run them."""

    def __init__(self, connection: "ConnectionBase", description: pb.Table, checked_out: int = 0) -> None:
        self._connection = connection
        self._image_columns: list[str] | None = None  # see _ops.image_columns
        self._set_description(description)
        self._checked_out = checked_out  # 0: the latest version

    @property
    def name(self) -> str:
        return self._description.name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def function_configs(self) -> list[EmbeddingFunctionConfig]:
        return list(self._functions)

    def _functions_by_column(self) -> dict[str, EmbeddingFunctionConfig]:
        return {c.vector_column: c for c in self._functions}

    def _set_description(self, description: pb.Table) -> None:
        self._description = description
        self._schema = pa.ipc.read_schema(pa.py_buffer(description.schema.arrow_schema))
        self._functions = [EmbeddingFunctionConfig.from_proto(m) for m in description.embedding_functions]
        self._image_columns = None

    def _writable(self, what: str) -> None:
        if self._checked_out:
            raise ValueError(f"{what}: the table is checked out at version {self._checked_out} (a table cannot "
                             "be modified when a specific version is checked out); call checkout_latest() or "
                             "restore() first")

    # ----- operations ---------------------------------------------------------------------------------
    def _op_version(self) -> _ops.Op[int]:
        if self._checked_out:
            return self._checked_out
        return (yield from _ops.describe(self.name)).version

    def _op_add(self, data: Any, mode: str, on_bad_vectors: str, fill_value: float) -> _ops.Op[AddResult]:
        self._writable("add")
        return (yield from _ops.add(self, data, mode, on_bad_vectors, fill_value))

    def _op_count(self, where: "str | Expr | None") -> _ops.Op[int]:
        return (yield from _ops.count(self, sql_of(where), self._checked_out))

    def _op_delete(self, where: "str | Expr") -> _ops.Op[DeleteResult]:
        self._writable("delete")
        return (yield from _ops.delete(self, sql_of(where)))

    def _op_update(self, where: "str | Expr | None", values: dict[str, Any] | None, values_sql: dict[str, str] | None
                   ) -> _ops.Op[UpdateResult]:
        self._writable("update")
        if not values and not values_sql:
            raise ValueError("update needs values or values_sql")
        if values and values_sql:
            raise ValueError("give update values or values_sql, not both")
        return (yield from _ops.update(self, sql_of(where), dict(values or {}), dict(values_sql or {})))

    def _op_read(self, limit: int = 0) -> _ops.Op[pa.Table]:
        return (yield from _ops.read(self, "", [], limit, self._checked_out))

    def _op_create_index(self, first: str | None, config: Any, *, num_partitions: int | None = None,
                         num_sub_vectors: int | None = None, vector_column_name: str | None = None,
                         replace: bool | None = True, index_type: str = "IVF_PQ", num_bits: int = 8,
                         m: int | None = None, ef_construction: int | None = None, name: str | None = None,
                         **training: Any) -> _ops.Op[IndexInfo]:
        """LanceDB's two forms: `(column, config=IvfPq(...))`, and the legacy `(metric, num_partitions, ...,
        vector_column_name=, index_type=)`. 0 or None lets the store choose a parameter."""
        self._writable("create_index")
        if isinstance(config, index.FTS):
            if not first:
                raise ValueError("an FTS index needs the column to index: create_index(\"text\", config=FTS())")
            return (yield from _ops.create_index(pb.CreateIndexRequest(
                table=self.name, index_type=pb.INDEX_TYPE_FTS, column=first, fts=config.to_proto(),
                replace=True if replace is None else replace, name=name or "")))
        if config is not None:
            chosen, column = index.plan(config), first or vector_column_name
        else:
            index.check_bits(num_bits)
            index.warn_training(**training)
            chosen = index.VectorIndexPlan(index_type.upper(), first or "l2", num_partitions or 0,
                                           num_sub_vectors or 0, m or 0, ef_construction or 0)
            column = vector_column_name
        request = pb.CreateIndexRequest(
            table=self.name, vector_column=column or "", metric=_ops.choice(chosen.metric, _ops.METRICS, "metric"),
            index_type=_ops.choice(chosen.index_type, _ops.INDEX_TYPES, "index_type"),
            num_partitions=chosen.num_partitions, num_sub_vectors=chosen.num_sub_vectors, m=chosen.m,
            ef_construction=chosen.ef_construction, replace=True if replace is None else replace, name=name or "")
        return (yield from _ops.create_index(request))

    def _op_create_fts_index(self, field_names: str | list[str], *, replace: bool, use_tantivy: bool,
                             ordering_field_names: Any, writer_heap_size: int | None, tokenizer_name: str | None,
                             name: str | None, **settings: Any) -> _ops.Op[IndexInfo]:
        """LanceDB's `create_fts_index`: one column per index, Lance's native FTS (tantivy's is gone)."""
        warnings.warn("create_fts_index is deprecated as of 0.25.0. Use create_index() with config=FTS() instead.",
                      DeprecationWarning, stacklevel=4)
        if use_tantivy:
            raise ValueError("Tantivy-based FTS has been removed. Remove use_tantivy and recreate the index with "
                             "native FTS.")
        if ordering_field_names is not None:
            raise ValueError("ordering_field_names was only supported by the removed Tantivy-based FTS "
                             "implementation.")
        if writer_heap_size != 1024 * 1024 * 1024:
            raise ValueError("writer_heap_size was only supported by the removed Tantivy-based FTS implementation.")
        if not isinstance(field_names, str):
            raise ValueError("Native FTS indexes can only be created on a single field at a time. To search over "
                             "multiple text fields, create a separate FTS index for each field.")
        if tokenizer_name is not None:
            settings.update(index.fts_from_tokenizer_name(tokenizer_name))
        config = index.FTS(**settings)
        return (yield from self._op_create_index(field_names, config, replace=replace, name=name))

    def _alter_request(self, vector_column: str, function: Any, source_column: str | None,
                       source_type: str | None) -> pb.AlterEmbeddingFunctionRequest:
        self._writable("alter_embedding_function")
        current = self._functions_by_column().get(vector_column)
        source = source_column or (current.source_column if current else "")
        if not source:
            raise ValueError(f"{vector_column!r} has no function yet: name its source_column")
        if source_type is None and current is not None and current.source_column == source:
            source_type = current.source_type
        config = EmbeddingFunctionConfig(function, source, vector_column, source_type).to_proto()
        return pb.AlterEmbeddingFunctionRequest(table=self.name, function=config)

    def _add_function_request(self, vector_column: str, function: Any, source_column: str,
                              source_type: str | None) -> pb.AddEmbeddingFunctionRequest:
        self._writable("add_embedding_function")
        config = EmbeddingFunctionConfig(function, source_column, vector_column, source_type).to_proto()
        return pb.AddEmbeddingFunctionRequest(table=self.name, function=config)

    def _drop_function_request(self, vector_column: str) -> pb.DropEmbeddingFunctionRequest:
        self._writable("drop_embedding_function")
        return pb.DropEmbeddingFunctionRequest(table=self.name, vector_column=vector_column)

    def _op_reload(self) -> _ops.Op[None]:
        self._set_description((yield from _ops.describe(self.name)))

    def _op_checkout(self, version: int | str) -> _ops.Op[None]:
        number = (yield from _ops.tag_version(self.name, version)) if isinstance(version, str) else version
        if number <= 0:
            raise ValueError("versions start at 1")
        self._checked_out = number

    def _op_restore(self, version: int | str | None) -> _ops.Op[int]:
        target = version or self._checked_out
        if not target:
            raise ValueError("restore needs a version, or a checked-out table (checkout before running restore)")
        number = (yield from _ops.tag_version(self.name, target)) if isinstance(target, str) else target
        restored = yield from _ops.restore(self.name, number)
        self._checked_out = 0
        return restored

    def _op_optimize(self, cleanup_older_than: datetime.timedelta | None) -> _ops.Op[dict[str, int]]:
        self._writable("optimize")
        seconds = 0.0 if cleanup_older_than is None else max(cleanup_older_than.total_seconds(), 1e-9)
        reply = yield from _ops.optimize(self.name, seconds)
        return {"version": reply.version, "fragments_removed": reply.fragments_removed,
                "fragments_added": reply.fragments_added, "indexes_caught_up": reply.indexes_caught_up,
                "versions_removed": reply.versions_removed, "bytes_removed": reply.bytes_removed}

    def _op_evolve(self, what: str, change: _ops.Op[int]) -> _ops.Op[int]:
        """A schema change, then the table's description read again: the schema shows the new columns."""
        self._writable(what)
        version = yield from change
        self._set_description((yield from _ops.describe(self.name)))
        return version


def _polars(table: pa.Table) -> "pl.LazyFrame":
    import polars as pl
    return pl.DataFrame(pl.from_arrow(table)).lazy()


class Table(TableOps):
    """A table of a `Connection` (LanceDB's `Table`)."""

    _connection: "Connection"

    def _run(self, op: _ops.Op[T]) -> T:
        return self._connection._transport.run(op)

    @classmethod
    def create(cls, db: "Connection", name: str, data: Any = None, schema: Any = None, **options: Any) -> "Table":
        """LanceDB's `LanceTable.create(db, name, ...)`: `db.create_table(name, ...)`."""
        return db.create_table(name, data=data, schema=schema, **options)

    # ----- what the table is --------------------------------------------------------------------------
    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema, with the `embedding_functions` metadata, as of opening the table."""
        return self._schema

    @property
    def embedding_functions(self) -> dict[str, EmbeddingFunctionConfig]:
        """The functions the table records, by vector column."""
        return self._functions_by_column()

    @property
    def version(self) -> int:
        """The version this table reads: the checked-out one, or the latest (asked from the store)."""
        return self._run(self._op_version())

    @property
    def uri(self) -> str:
        """Where the table lives: its store's address and its name."""
        return f"{self._connection.uri.rstrip('/')}/{self.name}"

    def __len__(self) -> int:
        return self.count_rows()

    def __getitems__(self, offsets: list[int]) -> pa.Table:
        """Rows by position, as a torch `Dataset` asks for a batch (LanceDB's `__getitems__`)."""
        return self.take_offsets(offsets).to_arrow()

    # ----- rows ---------------------------------------------------------------------------------------
    def add(self, data: Any, mode: str = "append", on_bad_vectors: str = "error", fill_value: float = 0.0
            ) -> AddResult:
        """Adds rows (a list of dicts or pydantic models, pandas, polars, Arrow) in one new version; rows
        without vectors are embedded (server functions by the store, local ones here)."""
        return self._run(self._op_add(data, mode, on_bad_vectors, fill_value))

    def search(self, query: Any = None, vector_column_name: str | None = None, query_type: str = "auto",
               ordering_field_name: str | None = None, fts_columns: str | list[str] | None = None,
               fast_search: bool | None = None) -> Query:
        """A query: by text, image (PIL image, bytes, a path), vector, or several vectors at once (each
        result row then has `query_index`); full-text (`query_type="fts"`, a `MatchQuery` or another query
        object, or a string on a table whose vector column has no embedding function: BM25 over the FTS
        indexes of `fts_columns`, rows with `_score`); None reads rows without ranking."""
        return Query(self, query, vector_column_name, query_type, fts_columns=fts_columns, fast_search=fast_search)

    def query(self) -> Query:
        """A plain query of the rows (LanceDB's `table.query()`): where, select, limit, offset."""
        return Query(self, None, None, "auto")

    def vector_search(self, query: Any, vector_column_name: str | None = None) -> Query:
        return Query(self, query, vector_column_name, "vector")

    def take_offsets(self, offsets: list[int]) -> TakeQuery:
        """The rows at these positions in the table's order (LanceDB's `take_offsets`)."""
        return TakeQuery(self, offsets=list(offsets))

    def take_row_ids(self, row_ids: list[int]) -> TakeQuery:
        """The rows with these stable ids (`_rowid`, as `with_row_id()` shows them)."""
        return TakeQuery(self, row_ids=list(row_ids))

    def count_rows(self, filter: "str | Expr | None" = None) -> int:  # noqa: A002 - LanceDB's name
        return self._run(self._op_count(filter))

    def delete(self, where: "str | Expr") -> DeleteResult:
        """Deletes the rows matching `where` (version, num_deleted_rows)."""
        return self._run(self._op_delete(where))

    def update(self, where: "str | Expr | None" = None, values: dict[str, Any] | None = None, *,
               values_sql: dict[str, str] | None = None) -> UpdateResult:
        """Sets `values` (or `values_sql`: SQL expressions of each row's current values, such as
        `{"price": "price * 2"}`) on the rows matching `where` (all rows without it); vectors of changed
        sources are recomputed by the store."""
        return self._run(self._op_update(where, values, values_sql))

    def merge_insert(self, on: str | list[str]) -> MergeInsertBuilder:
        self._writable("merge_insert")
        return MergeInsertBuilder(self, [on] if isinstance(on, str) else list(on))

    def to_arrow(self) -> pa.Table:
        return self._run(self._op_read())

    def to_pandas(self, **kwargs: Any) -> "pd.DataFrame":
        """The whole table as pandas; keywords go to pyarrow's `Table.to_pandas` (`types_mapper`, ...)."""
        return self.to_arrow().to_pandas(**kwargs)

    def to_polars(self) -> "pl.LazyFrame":
        """The rows as a polars LazyFrame, as LanceDB gives them."""
        return _polars(self.to_arrow())

    def head(self, n: int = 5) -> pa.Table:
        return self._run(self._op_read(n))

    # ----- indexes ------------------------------------------------------------------------------------
    def create_index(self, metric: str = "l2", num_partitions: int | None = None, num_sub_vectors: int | None = None,
                     vector_column_name: str | None = None, replace: bool = True, accelerator: str | None = None,
                     index_cache_size: int | None = None, *, index_type: str = "IVF_PQ", num_bits: int = 8,
                     max_iterations: int = 50, sample_rate: int = 256, m: int | None = None,
                     ef_construction: int | None = None, config: "index.IndexConfig | None" = None,
                     name: str | None = None, train: bool = True, wait_timeout: Any = None,
                     target_partition_size: int | None = None) -> IndexInfo:
        """Builds a FAISS index (FLAT, IVF_FLAT, IVF_PQ or HNSW), LanceDB's two ways: `create_index("vector",
        config=IvfPq(...))` (see `vectorlane.index`), or the legacy `create_index("cosine",
        vector_column_name="vector", index_type="IVF_PQ", ...)`. Unset parameters are the store's choice."""
        return self._run(self._op_create_index(
            metric, config, num_partitions=num_partitions, num_sub_vectors=num_sub_vectors,
            vector_column_name=vector_column_name, replace=replace, index_type=index_type, num_bits=num_bits, m=m,
            ef_construction=ef_construction, name=name, max_iterations=max_iterations, sample_rate=sample_rate,
            target_partition_size=target_partition_size))

    def create_fts_index(self, field_names: str | list[str], *, ordering_field_names: Any = None,
                         replace: bool = False, writer_heap_size: int | None = 1024 * 1024 * 1024,
                         use_tantivy: bool = False, tokenizer_name: str | None = None, with_position: bool = False,
                         base_tokenizer: str = "simple", language: str = "English",
                         max_token_length: int | None = 40, lower_case: bool = True, stem: bool = True,
                         remove_stop_words: bool = True, custom_stop_words: list[str] | None = None,
                         ascii_folding: bool = True, ngram_min_length: int = 3, ngram_max_length: int = 3,
                         prefix_only: bool = False, block_size: int = 128, wait_timeout: Any = None,
                         name: str | None = None, **ignored: Any) -> IndexInfo:
        """A full-text (BM25) index of one string column, LanceDB's way (Lance's inverted index; LanceDB
        searches it too). Search it with `search("words", query_type="fts")` or a `MatchQuery`; rows added
        later are searched too, and `optimize()` folds them into the index."""
        return self._run(self._op_create_fts_index(
            field_names, replace=replace, use_tantivy=use_tantivy, ordering_field_names=ordering_field_names,
            writer_heap_size=writer_heap_size, tokenizer_name=tokenizer_name, name=name,
            with_position=with_position, base_tokenizer=base_tokenizer, language=language,
            max_token_length=max_token_length, lower_case=lower_case, stem=stem, remove_stop_words=remove_stop_words,
            custom_stop_words=custom_stop_words, ascii_folding=ascii_folding, ngram_min_length=ngram_min_length,
            ngram_max_length=ngram_max_length, prefix_only=prefix_only, block_size=block_size))

    def list_indices(self) -> list[IndexInfo]:
        return self._run(_ops.list_indexes(self.name))

    def tokenize(self, query: str, *, column: str | None = None, index_name: str | None = None) -> list[FtsToken]:
        """`query`'s tokens as the FTS index on `column` (or named `index_name`; exactly one) keeps them: the
        store runs the index's own tokenizer, language models included."""
        return self._run(_ops.tokenize(query, table=self.name, column=column, index_name=index_name))

    def drop_index(self, name: str) -> int:
        return self._run(_ops.drop_index(self.name, name))

    # ----- embedding functions (long-running operations) ---------------------------------------------
    def alter_embedding_function(self, vector_column: str, function: Any, source_column: str | None = None,
                                 wait: bool = False, progress: bool = False, timeout: float | None = None,
                                 source_type: str | None = None) -> Operation:
        """Gives `vector_column` another embedding function (`get_registry().get(name).create(...)`; another
        model, other settings, even another dimension). The store re-embeds every row in the background and
        switches the table in one version; until then searches use the old vectors. `source_type` ("text" or
        "image") says what the source holds when the function embeds both (open-clip); it defaults to the
        column's current one. Returns the Operation (waited for when `wait` or `progress`)."""
        request = self._alter_request(vector_column, function, source_column, source_type)
        return self._operation("AlterEmbeddingFunction", request, wait or progress, progress, timeout)

    def add_embedding_function(self, vector_column: str, function: Any, source_column: str, wait: bool = False,
                               progress: bool = False, timeout: float | None = None,
                               source_type: str | None = None) -> Operation:
        """Adds a vector column filled by `function` from `source_column`, backfilled in the background
        (`source_type` as in `alter_embedding_function`)."""
        request = self._add_function_request(vector_column, function, source_column, source_type)
        return self._operation("AddEmbeddingFunction", request, wait or progress, progress, timeout)

    def drop_embedding_function(self, vector_column: str, wait: bool = True, timeout: float | None = None
                                ) -> Operation:
        """Drops a vector column with its function and index (older versions keep them)."""
        return self._operation("DropEmbeddingFunction", self._drop_function_request(vector_column), wait, False,
                               timeout)

    def list_operations(self) -> list[Operation]:
        """The table's operations, oldest first."""
        return self._run(_ops.list_operations(self._connection, self.name))

    def _operation(self, method: str, request: Any, wait: bool, progress: bool, timeout: float | None
                   ) -> Operation:
        started = self._run(_ops.start_operation(self._connection, method, request))
        if wait:
            started.wait(timeout, progress)
            self.reload()
        return started

    def reload(self) -> None:
        """Reads the table's description again (schema, functions), as after a function change."""
        self._run(self._op_reload())

    # ----- versions -----------------------------------------------------------------------------------
    def list_versions(self) -> list[VersionInfo]:
        return self._run(_ops.list_versions(self.name))

    def checkout(self, version: int | str) -> None:
        """Reads (search, count, to_arrow) at `version` (a number or a tag) from now on; writes are refused
        until `checkout_latest()` or `restore()`."""
        self._run(self._op_checkout(version))

    def checkout_latest(self) -> None:
        self._checked_out = 0

    def restore(self, version: int | str | None = None) -> int:
        """Makes `version` (a number or a tag; by default the checked-out one) the latest, as a new version;
        reads follow the latest."""
        return self._run(self._op_restore(version))

    @property
    def tags(self) -> "Tags":
        """The table's version tags (LanceDB's `table.tags`): a tagged version survives cleanup."""
        return Tags(self)

    # ----- maintenance --------------------------------------------------------------------------------
    def optimize(self, cleanup_older_than: datetime.timedelta | None = None) -> dict[str, int]:
        """LanceDB's `optimize()`: compacts fragments (row ids kept), writes indexes caught up with new rows,
        and removes versions older than `cleanup_older_than` (default 7 days; tagged versions are kept).
        Returns what it did (fragments removed and added, indexes caught up, versions and bytes removed)."""
        return self._run(self._op_optimize(cleanup_older_than))

    def stats(self) -> dict[str, Any]:
        """LanceDB's table statistics: total_bytes, num_rows, num_indices, fragment_stats."""
        return self._run(_ops.stats(self.name))

    # ----- schema evolution ---------------------------------------------------------------------------
    def add_columns(self, transforms: Any) -> AddColumnsResult:
        """LanceDB's `add_columns`: {name: SQL expression} computed for every row (e.g. `"price * 2"`), or
        `pa.field(...)` / a list of fields / a schema of columns null in every row."""
        return AddColumnsResult(self._run(self._op_evolve("add_columns", _ops.add_columns(self.name, transforms))))

    def merge(self, other_table: Any, left_on: str, right_on: str | None = None, schema: Any = None) -> None:
        """LanceDB's `merge`: a left join adding the other table's columns (all but its key) to every row,
        null where no row of the other has the row's key. `other_table`: a vectorlane or Lance table, a
        pyarrow Table or RecordBatchReader, a pandas or polars DataFrame, or rows; `schema` (pyarrow or a
        LanceModel) casts it first. Its keys are unique; it travels whole in one message."""
        if isinstance(other_table, Table):
            other = other_table.to_arrow()
        elif hasattr(other_table, "to_table") and not isinstance(other_table, pa.Table):  # a Lance dataset
            other = other_table.to_table()
        else:
            other = rowlib.to_arrow(other_table)
        if schema is not None:
            other = other.cast(schema.to_arrow_schema() if hasattr(schema, "to_arrow_schema") else schema)
        self._run(self._op_evolve("merge", _ops.merge_columns(self.name, other, left_on, right_on)))

    def alter_columns(self, *alterations: dict[str, Any]) -> AlterColumnsResult:
        """LanceDB's `alter_columns`: dicts of `path` and any of `rename`, `nullable`, `data_type` (a pyarrow
        type). A renamed column keeps its embedding function and indexes."""
        return AlterColumnsResult(self._run(self._op_evolve("alter_columns",
                                                            _ops.alter_columns(self.name, alterations))))

    def drop_columns(self, columns: Any) -> DropColumnsResult:
        """LanceDB's `drop_columns`; a dropped vector column takes its function and indexes with it."""
        return DropColumnsResult(self._run(self._op_evolve("drop_columns", _ops.drop_columns(self.name, columns))))

    def update_field_metadata(self, *updates: dict[str, Any]) -> UpdateFieldMetadataResult:
        """LanceDB's per-column metadata: `{"path": ..., "metadata": {key: value, key: None (removed)},
        "replace": False}` each, in one version."""
        return UpdateFieldMetadataResult(self._run(self._op_evolve(
            "update_field_metadata", _ops.update_field_metadata(self.name, updates))))

    def replace_field_metadata(self, field_name: str, new_metadata: dict[str, str]) -> None:
        """LanceDB's older form: the column's whole metadata replaced."""
        self.update_field_metadata({"path": field_name, "metadata": new_metadata, "replace": True})


class AsyncTable(TableOps):
    """A table of an `AsyncConnection` (LanceDB's `AsyncTable`): every call that talks to the store is
    awaited; `search`, `query`, `vector_search`, `take_*` and `merge_insert` build a query whose `to_*` /
    `execute` is awaited (`await table.search(...)` also gives the query, as LanceDB's does)."""

    _connection: "AsyncConnection"

    def _run(self, op: _ops.Op[T]) -> Awaitable[T]:
        return self._connection._transport.run(op)

    # ----- what the table is --------------------------------------------------------------------------
    async def schema(self) -> pa.Schema:
        """The Arrow schema, with the `embedding_functions` metadata, read from the store."""
        await self._run(self._op_reload())
        return self._schema

    async def embedding_functions(self) -> dict[str, EmbeddingFunctionConfig]:
        await self._run(self._op_reload())
        return self._functions_by_column()

    async def version(self) -> int:
        return await self._run(self._op_version())

    async def uri(self) -> str:
        return f"{self._connection.uri.rstrip('/')}/{self.name}"

    # ----- rows ---------------------------------------------------------------------------------------
    async def add(self, data: Any, mode: str = "append", on_bad_vectors: str = "error", fill_value: float = 0.0
                  ) -> AddResult:
        return await self._run(self._op_add(data, mode, on_bad_vectors, fill_value))

    def search(self, query: Any = None, vector_column_name: str | None = None, query_type: str = "auto",
               ordering_field_name: str | None = None, fts_columns: str | list[str] | None = None,
               fast_search: bool | None = None) -> AsyncQuery:
        return AsyncQuery(self, query, vector_column_name, query_type, fts_columns=fts_columns,
                          fast_search=fast_search)

    def query(self) -> AsyncQuery:
        return AsyncQuery(self, None, None, "auto")

    def vector_search(self, query: Any, vector_column_name: str | None = None) -> AsyncVectorQuery:
        return AsyncVectorQuery(self, query, vector_column_name, "vector")

    def take_offsets(self, offsets: list[int]) -> AsyncTakeQuery:
        return AsyncTakeQuery(self, offsets=list(offsets))

    def take_row_ids(self, row_ids: list[int]) -> AsyncTakeQuery:
        return AsyncTakeQuery(self, row_ids=list(row_ids))

    async def count_rows(self, filter: "str | Expr | None" = None) -> int:  # noqa: A002 - LanceDB's name
        return await self._run(self._op_count(filter))

    async def delete(self, where: "str | Expr") -> DeleteResult:
        return await self._run(self._op_delete(where))

    async def update(self, updates: "dict[str, Any] | str | Expr | None" = None,
                     where: "str | Expr | dict[str, Any] | None" = None, *, updates_sql: dict[str, str] | None = None,
                     values: dict[str, Any] | None = None, values_sql: dict[str, str] | None = None
                     ) -> UpdateResult:
        """LanceDB's async form, `update(updates, where=, updates_sql=)`; the sync form's names (`values`,
        `values_sql`, and a filter first) are taken too."""
        if isinstance(updates, (str, Expr)) or (updates is None and isinstance(where, dict)):
            updates, where = where if isinstance(where, dict) else None, updates  # the sync order: where, values
        assert not isinstance(where, dict)
        return await self._run(self._op_update(where, values or updates, values_sql or updates_sql))

    def merge_insert(self, on: str | list[str]) -> AsyncMergeInsertBuilder:
        self._writable("merge_insert")
        return AsyncMergeInsertBuilder(self, [on] if isinstance(on, str) else list(on))

    async def to_arrow(self) -> pa.Table:
        return await self._run(self._op_read())

    async def to_pandas(self, **kwargs: Any) -> "pd.DataFrame":
        return (await self.to_arrow()).to_pandas(**kwargs)

    async def to_polars(self) -> "pl.LazyFrame":
        return _polars(await self.to_arrow())

    async def head(self, n: int = 5) -> pa.Table:
        return await self._run(self._op_read(n))

    # ----- indexes ------------------------------------------------------------------------------------
    async def create_index(self, column: str | None = None, *, replace: bool | None = None,
                           config: "index.IndexConfig | None" = None, wait_timeout: Any = None,
                           name: str | None = None, train: bool = True, **legacy: Any) -> IndexInfo:
        """LanceDB's async form, `await table.create_index("vector", config=IvfPq(...))`; without a config,
        the sync method's keywords (`index_type=`, `metric=`, `num_partitions=`, ...) build the index."""
        if config is None:
            first = legacy.pop("metric", "l2")
            if column is not None:
                legacy.setdefault("vector_column_name", column)
            return await self._run(self._op_create_index(first, None, replace=replace, name=name, **legacy))
        return await self._run(self._op_create_index(column, config, replace=replace, name=name))

    async def create_fts_index(self, field_names: str | list[str], *, ordering_field_names: Any = None,
                               replace: bool = False, writer_heap_size: int | None = 1024 * 1024 * 1024,
                               use_tantivy: bool = False, tokenizer_name: str | None = None,
                               with_position: bool = False, base_tokenizer: str = "simple",
                               language: str = "English", max_token_length: int | None = 40,
                               lower_case: bool = True, stem: bool = True, remove_stop_words: bool = True,
                               custom_stop_words: list[str] | None = None, ascii_folding: bool = True,
                               ngram_min_length: int = 3, ngram_max_length: int = 3, prefix_only: bool = False,
                               block_size: int = 128, wait_timeout: Any = None, name: str | None = None,
                               **ignored: Any) -> IndexInfo:
        return await self._run(self._op_create_fts_index(
            field_names, replace=replace, use_tantivy=use_tantivy, ordering_field_names=ordering_field_names,
            writer_heap_size=writer_heap_size, tokenizer_name=tokenizer_name, name=name,
            with_position=with_position, base_tokenizer=base_tokenizer, language=language,
            max_token_length=max_token_length, lower_case=lower_case, stem=stem, remove_stop_words=remove_stop_words,
            custom_stop_words=custom_stop_words, ascii_folding=ascii_folding, ngram_min_length=ngram_min_length,
            ngram_max_length=ngram_max_length, prefix_only=prefix_only, block_size=block_size))

    async def list_indices(self) -> list[IndexInfo]:
        return await self._run(_ops.list_indexes(self.name))

    async def tokenize(self, query: str, *, column: str | None = None, index_name: str | None = None
                       ) -> list[FtsToken]:
        return await self._run(_ops.tokenize(query, table=self.name, column=column, index_name=index_name))

    async def drop_index(self, name: str) -> int:
        return await self._run(_ops.drop_index(self.name, name))

    # ----- embedding functions (long-running operations) ---------------------------------------------
    async def alter_embedding_function(self, vector_column: str, function: Any, source_column: str | None = None,
                                       wait: bool = False, progress: bool = False, timeout: float | None = None,
                                       source_type: str | None = None) -> Operation:
        request = self._alter_request(vector_column, function, source_column, source_type)
        return await self._operation("AlterEmbeddingFunction", request, wait or progress, progress, timeout)

    async def add_embedding_function(self, vector_column: str, function: Any, source_column: str,
                                     wait: bool = False, progress: bool = False, timeout: float | None = None,
                                     source_type: str | None = None) -> Operation:
        request = self._add_function_request(vector_column, function, source_column, source_type)
        return await self._operation("AddEmbeddingFunction", request, wait or progress, progress, timeout)

    async def drop_embedding_function(self, vector_column: str, wait: bool = True, timeout: float | None = None
                                      ) -> Operation:
        return await self._operation("DropEmbeddingFunction", self._drop_function_request(vector_column), wait,
                                     False, timeout)

    async def list_operations(self) -> list[Operation]:
        return await self._run(_ops.list_operations(self._connection, self.name))

    async def _operation(self, method: str, request: Any, wait: bool, progress: bool, timeout: float | None
                         ) -> Operation:
        started = await self._run(_ops.start_operation(self._connection, method, request))
        if wait:
            await started.wait(timeout, progress)
            await self.reload()
        return started

    async def reload(self) -> None:
        await self._run(self._op_reload())

    # ----- versions -----------------------------------------------------------------------------------
    async def list_versions(self) -> list[VersionInfo]:
        return await self._run(_ops.list_versions(self.name))

    async def checkout(self, version: int | str) -> None:
        await self._run(self._op_checkout(version))

    async def checkout_latest(self) -> None:
        self._checked_out = 0

    async def restore(self, version: int | str | None = None) -> int:
        return await self._run(self._op_restore(version))

    @property
    def tags(self) -> "AsyncTags":
        return AsyncTags(self)

    # ----- maintenance --------------------------------------------------------------------------------
    async def optimize(self, cleanup_older_than: datetime.timedelta | None = None) -> dict[str, int]:
        return await self._run(self._op_optimize(cleanup_older_than))

    async def stats(self) -> dict[str, Any]:
        return await self._run(_ops.stats(self.name))

    # ----- schema evolution ---------------------------------------------------------------------------
    async def add_columns(self, transforms: Any) -> AddColumnsResult:
        return AddColumnsResult(await self._run(self._op_evolve("add_columns",
                                                                _ops.add_columns(self.name, transforms))))

    async def alter_columns(self, *alterations: dict[str, Any]) -> AlterColumnsResult:
        return AlterColumnsResult(await self._run(self._op_evolve("alter_columns",
                                                                  _ops.alter_columns(self.name, alterations))))

    async def drop_columns(self, columns: Any) -> DropColumnsResult:
        return DropColumnsResult(await self._run(self._op_evolve("drop_columns",
                                                                 _ops.drop_columns(self.name, columns))))

    async def update_field_metadata(self, *updates: dict[str, Any]) -> UpdateFieldMetadataResult:
        return UpdateFieldMetadataResult(await self._run(self._op_evolve(
            "update_field_metadata", _ops.update_field_metadata(self.name, updates))))

    async def replace_field_metadata(self, field_name: str, new_metadata: dict[str, str]) -> None:
        await self.update_field_metadata({"path": field_name, "metadata": new_metadata, "replace": True})


LanceTable = Table  # LanceDB's name for a table of a database it opened

__all__ = ["AsyncTable", "AsyncTags", "LanceTable", "Table", "TableOps", "Tags"]
