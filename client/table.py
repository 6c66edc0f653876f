"""`Table`: LanceDB's table surface over the store. On an async connection every method that talks to the
store returns an awaitable; `search()` only builds a query (its `to_*` methods are the calls)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from vectorlane import _ops
from vectorlane.embeddings.config import EmbeddingFunctionConfig
from vectorlane.operations import Operation
from vectorlane.query import MergeInsertBuilder, Query, TakeQuery
from vectorlane.results import AddColumnsResult, AlterColumnsResult, DropColumnsResult
from vectorlane.store.v1 import store_service_pb2 as pb

if TYPE_CHECKING:
    from vectorlane.connection import Connection


class Table:
    def __init__(self, connection: "Connection", description: pb.Table, checked_out: int = 0) -> None:
        self._connection = connection
        self._image_columns: list[str] | None = None  # see _ops.image_columns
        self._set_description(description)
        self._checked_out = checked_out  # 0: the latest version

    def _run(self, op: _ops.Op) -> Any:
        return self._connection._run(op)

    def __repr__(self) -> str:
        return f"Table({self.name!r})"

    # ----- what the table is --------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._description.name

    @property
    def schema(self) -> pa.Schema:
        """The Arrow schema, with the `embedding_functions` metadata, as of opening the table."""
        return self._schema

    @property
    def embedding_functions(self) -> dict[str, EmbeddingFunctionConfig]:
        """The functions the table records, by vector column."""
        return {c.vector_column: c for c in self._functions}

    def function_configs(self) -> list[EmbeddingFunctionConfig]:
        return list(self._functions)

    @property
    def version(self) -> Any:
        """The version this table reads: the checked-out one, or the latest (asked from the store)."""
        if self._checked_out:
            return self._checked_out if not self._connection.is_async else _ready(self._checked_out)
        return self._run(_version(self.name))

    # ----- rows ---------------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """Where the table lives: its store's address and its name."""
        return f"{self._connection.uri.rstrip('/')}/{self.name}"

    @classmethod
    def create(cls, db: "Connection", name: str, data: Any = None, schema: Any = None, **options: Any) -> Any:
        """LanceDB's `LanceTable.create(db, name, ...)`: `db.create_table(name, ...)`."""
        return db.create_table(name, data=data, schema=schema, **options)

    def __getitems__(self, offsets: list[int]) -> Any:
        """Rows by position, as a torch `Dataset` asks for a batch (LanceDB's `__getitems__`)."""
        return self.take_offsets(offsets).to_arrow()

    def __len__(self) -> int:
        """The number of rows (LanceDB's `len(table)`; on an async connection, `await count_rows()`)."""
        if self._connection.is_async:
            raise TypeError("len() of an async table cannot wait: use `await table.count_rows()`")
        return self.count_rows()

    def add(self, data: Any, mode: str = "append", on_bad_vectors: str = "error", fill_value: float = 0.0) -> Any:
        """Adds rows (a list of dicts or pydantic models, pandas, polars, Arrow) in one new version; rows
        without vectors are embedded (server functions by the store, local ones here). Returns AddResult."""
        self._writable("add")
        return self._run(_ops.add(self, data, mode, on_bad_vectors, fill_value))

    def search(self, query: Any = None, vector_column_name: str | None = None, query_type: str = "auto") -> Query:
        """A query: by text, image (PIL image, bytes, a path), vector, or several vectors at once (each
        result row then has `query_index`); None reads rows without ranking."""
        return Query(self, query, vector_column_name, query_type)

    def query(self) -> Query:
        """A plain query of the rows (LanceDB's `table.query()`): where, select, limit, offset."""
        return Query(self, None, None, "auto")

    def vector_search(self, query: Any, vector_column_name: str | None = None) -> Query:
        """A search by vector(s) (LanceDB's `vector_search`)."""
        return Query(self, query, vector_column_name, "vector")

    def take_offsets(self, offsets: list[int]) -> TakeQuery:
        """The rows at these positions in the table's order (LanceDB's `take_offsets`)."""
        return TakeQuery(self, offsets=list(offsets))

    def take_row_ids(self, row_ids: list[int]) -> TakeQuery:
        """The rows with these stable ids (`_rowid`, as `with_row_id()` shows them)."""
        return TakeQuery(self, row_ids=list(row_ids))

    def count_rows(self, filter: str | None = None) -> Any:  # noqa: A002 - LanceDB's name
        return self._run(_ops.count(self, filter or "", self._checked_out))

    def delete(self, where: str) -> Any:
        """Deletes the rows matching `where`; returns DeleteResult (version, num_deleted_rows)."""
        self._writable("delete")
        return self._run(_ops.delete(self, where))

    def update(self, where: str | None = None, values: dict[str, Any] | None = None, *,
               values_sql: dict[str, str] | None = None) -> Any:
        """Sets `values` (or `values_sql`: SQL expressions of each row's current values, such as
        `{"price": "price * 2"}`) on the rows matching `where` (all rows without it); vectors of changed
        sources are recomputed by the store. Returns UpdateResult (rows_updated, version)."""
        self._writable("update")
        if not values and not values_sql:
            raise ValueError("update needs values or values_sql")
        if values and values_sql:
            raise ValueError("give update values or values_sql, not both")
        return self._run(_ops.update(self, where or "", dict(values or {}), dict(values_sql or {})))

    def merge_insert(self, on: str | list[str]) -> MergeInsertBuilder:
        self._writable("merge_insert")
        return MergeInsertBuilder(self, [on] if isinstance(on, str) else list(on))

    def to_arrow(self) -> Any:
        return self._run(_ops.read(self, "", [], 0, self._checked_out))

    def to_pandas(self) -> Any:
        return _then(self._connection, self.to_arrow(), lambda t: t.to_pandas())

    def to_polars(self) -> Any:
        """The rows as a polars LazyFrame, as LanceDB gives them."""
        import polars as pl
        return _then(self._connection, self.to_arrow(), lambda t: pl.DataFrame(pl.from_arrow(t)).lazy())

    def head(self, n: int = 5) -> Any:
        return self._run(_ops.read(self, "", [], n, self._checked_out))

    # ----- indexes ------------------------------------------------------------------------------------
    def create_index(self, metric: str = "l2", num_partitions: int = 0, num_sub_vectors: int = 0,
                     vector_column_name: str | None = None, replace: bool = True, index_type: str = "IVF_PQ",
                     m: int = 0, ef_construction: int = 0) -> Any:
        """Builds a FAISS index (FLAT, IVF_FLAT, IVF_PQ or HNSW); 0 lets the store choose a parameter."""
        self._writable("create_index")
        request = pb.CreateIndexRequest(
            table=self.name, vector_column=vector_column_name or "", metric=_ops.choice(metric, _ops.METRICS, "metric"),
            index_type=_ops.choice(index_type.upper(), _ops.INDEX_TYPES, "index_type"), num_partitions=num_partitions,
            num_sub_vectors=num_sub_vectors, m=m, ef_construction=ef_construction, replace=replace)
        return self._run(_ops.create_index(request))

    def list_indices(self) -> Any:
        return self._run(_ops.list_indexes(self.name))

    def drop_index(self, name: str) -> Any:
        return self._run(_ops.drop_index(self.name, name))

    # ----- embedding functions (long-running operations) ---------------------------------------------
    def alter_embedding_function(self, vector_column: str, function: Any, source_column: str | None = None,
                                 wait: bool = False, progress: bool = False, timeout: float | None = None,
                                 source_type: str | None = None) -> Any:
        """Gives `vector_column` another embedding function (`get_registry().get(name).create(...)`; another
        model, other settings, even another dimension). The store re-embeds every row in the background and
        switches the table in one version; until then searches use the old vectors. `source_type` ("text" or
        "image") says what the source holds when the function embeds both (open-clip); it defaults to the
        column's current one. Returns the Operation (waited for when `wait` or `progress`)."""
        self._writable("alter_embedding_function")
        current = self.embedding_functions.get(vector_column)
        source = source_column or (current.source_column if current else "")
        if not source:
            raise ValueError(f"{vector_column!r} has no function yet: name its source_column")
        if source_type is None and current is not None and current.source_column == source:
            source_type = current.source_type
        config = EmbeddingFunctionConfig(function, source, vector_column, source_type).to_proto()
        request = pb.AlterEmbeddingFunctionRequest(table=self.name, function=config)
        return self._operation("AlterEmbeddingFunction", request, wait or progress, progress, timeout)

    def add_embedding_function(self, vector_column: str, function: Any, source_column: str, wait: bool = False,
                               progress: bool = False, timeout: float | None = None,
                               source_type: str | None = None) -> Any:
        """Adds a vector column filled by `function` from `source_column`, backfilled in the background
        (`source_type` as in `alter_embedding_function`)."""
        self._writable("add_embedding_function")
        config = EmbeddingFunctionConfig(function, source_column, vector_column, source_type).to_proto()
        request = pb.AddEmbeddingFunctionRequest(table=self.name, function=config)
        return self._operation("AddEmbeddingFunction", request, wait or progress, progress, timeout)

    def drop_embedding_function(self, vector_column: str, wait: bool = True, timeout: float | None = None) -> Any:
        """Drops a vector column with its function and index (older versions keep them)."""
        self._writable("drop_embedding_function")
        request = pb.DropEmbeddingFunctionRequest(table=self.name, vector_column=vector_column)
        return self._operation("DropEmbeddingFunction", request, wait, False, timeout)

    def list_operations(self) -> Any:
        """The table's operations, oldest first."""
        return self._run(_ops.list_operations(self._connection, self.name))

    def _operation(self, method: str, request: Any, wait: bool, progress: bool, timeout: float | None) -> Any:
        started = self._run(_ops.start_operation(self._connection, method, request))
        if not wait:
            return started
        if self._connection.is_async:
            async def waited() -> Operation:
                operation = await started
                await operation.wait(timeout, progress)
                await self.reload()
                return operation
            return waited()
        started.wait(timeout, progress)
        self.reload()
        return started

    def reload(self) -> Any:
        """Reads the table's description again (schema, functions), as after a function change."""
        def op() -> _ops.Op[None]:
            self._set_description((yield from _ops.describe(self.name)))
        return self._run(op())

    def _set_description(self, description: pb.Table) -> None:
        self._description = description
        self._schema = pa.ipc.read_schema(pa.py_buffer(description.schema.arrow_schema))
        self._functions = [EmbeddingFunctionConfig.from_proto(m) for m in description.embedding_functions]
        self._image_columns = None

    # ----- versions -----------------------------------------------------------------------------------
    def list_versions(self) -> Any:
        return self._run(_ops.list_versions(self.name))

    def checkout(self, version: int | str) -> Any:
        """Reads (search, count, to_arrow) at `version` (a number or a tag) from now on; writes are refused
        until `checkout_latest()` or `restore()`."""
        if isinstance(version, str):
            def pin(number: int) -> None:
                self._checked_out = number
            return _then(self._connection, self._run(_ops.tag_version(self.name, version)), pin)
        if version <= 0:
            raise ValueError("versions start at 1")
        self._checked_out = version
        return None if not self._connection.is_async else _ready(None)

    def checkout_latest(self) -> Any:
        self._checked_out = 0
        return None if not self._connection.is_async else _ready(None)

    def restore(self, version: int | str | None = None) -> Any:
        """Makes `version` (a number or a tag; by default the checked-out one) the latest, as a new version;
        reads follow the latest."""
        target = version or self._checked_out
        if not target:
            raise ValueError("restore needs a version, or a checked-out table (checkout before running restore)")
        self._checked_out = 0

        def op() -> _ops.Op[int]:
            number = (yield from _ops.tag_version(self.name, target)) if isinstance(target, str) else target
            return (yield from _ops.restore(self.name, number))
        return self._run(op())

    # ----- maintenance --------------------------------------------------------------------------------
    def optimize(self, cleanup_older_than: datetime.timedelta | None = None) -> Any:
        """LanceDB's `optimize()`: compacts fragments (row ids kept), writes indexes caught up with new rows,
        and removes versions older than `cleanup_older_than` (default 7 days; tagged versions are kept).
        Returns what it did (fragments removed and added, indexes caught up, versions and bytes removed)."""
        self._writable("optimize")
        seconds = 0.0 if cleanup_older_than is None else max(cleanup_older_than.total_seconds(), 1e-9)
        return _then(self._connection, self._run(_ops.optimize(self.name, seconds)), _optimized)

    def stats(self) -> Any:
        """LanceDB's table statistics: total_bytes, num_rows, num_indices, fragment_stats."""
        return self._run(_ops.stats(self.name))

    # ----- schema evolution ---------------------------------------------------------------------------
    def add_columns(self, transforms: Any) -> Any:
        """LanceDB's `add_columns`: {name: SQL expression} computed for every row (e.g. `"price * 2"`), or
        `pa.field(...)` / a list of fields / a schema of columns null in every row. Returns AddColumnsResult."""
        self._writable("add_columns")
        return _then(self._connection, self._run(self._evolving(_ops.add_columns(self.name, transforms))),
                     AddColumnsResult)

    def alter_columns(self, *alterations: dict[str, Any]) -> Any:
        """LanceDB's `alter_columns`: dicts of `path` and any of `rename`, `nullable`, `data_type` (a pyarrow
        type). A renamed column keeps its embedding function and indexes. Returns AlterColumnsResult."""
        self._writable("alter_columns")
        return _then(self._connection, self._run(self._evolving(_ops.alter_columns(self.name, alterations))),
                     AlterColumnsResult)

    def drop_columns(self, columns: Any) -> Any:
        """LanceDB's `drop_columns`; a dropped vector column takes its function and indexes with it."""
        self._writable("drop_columns")
        return _then(self._connection, self._run(self._evolving(_ops.drop_columns(self.name, columns))),
                     DropColumnsResult)

    def _evolving(self, change: _ops.Op[int]) -> _ops.Op[int]:
        """The change, then the table's description read again: `schema` shows the new columns."""
        version = yield from change
        self._set_description((yield from _ops.describe(self.name)))
        return version

    @property
    def tags(self) -> "Tags":
        """The table's version tags (LanceDB's `table.tags`): a tagged version survives cleanup."""
        return Tags(self)

    def _writable(self, what: str) -> None:
        if self._checked_out:
            raise ValueError(f"{what}: the table is checked out at version {self._checked_out}; call "
                             "checkout_latest() or restore() first")


class Tags:
    """`table.tags`: create, list, get_version, update and delete tags (awaitables on an async connection)."""

    def __init__(self, table: Table) -> None:
        self._table = table

    def list(self) -> Any:
        """{tag: {"version": n}}, as LanceDB lists them."""
        return _then(self._table._connection, self._table._run(_ops.list_tags(self._table.name)),
                     lambda tags: {name: {"version": version} for name, version in tags.items()})

    def get_version(self, tag: str) -> Any:
        return self._table._run(_ops.tag_version(self._table.name, tag))

    def create(self, tag: str, version: int) -> Any:
        return self._table._run(_ops.create_tag(self._table.name, tag, version))

    def update(self, tag: str, version: int) -> Any:
        def op() -> _ops.Op[int]:
            yield from _ops.delete_tag(self._table.name, tag)
            return (yield from _ops.create_tag(self._table.name, tag, version))
        return self._table._run(op())

    def delete(self, tag: str) -> Any:
        return self._table._run(_ops.delete_tag(self._table.name, tag))


def _optimized(reply: pb.OptimizeTableResponse) -> dict[str, int]:
    return {"version": reply.version, "fragments_removed": reply.fragments_removed,
            "fragments_added": reply.fragments_added, "indexes_caught_up": reply.indexes_caught_up,
            "versions_removed": reply.versions_removed, "bytes_removed": reply.bytes_removed}


def _version(name: str) -> _ops.Op[int]:
    return (yield from _ops.describe(name)).version


async def _ready(value: Any) -> Any:
    return value


def _then(connection: "Connection", result: Any, after: Any) -> Any:
    """`after(result)`, or for an async connection an awaitable of it."""
    if not connection.is_async:
        return after(result)

    async def later() -> Any:
        return after(await result)
    return later()


LanceTable = Table  # LanceDB's name for a table of a database it opened

__all__ = ["LanceTable", "Table", "Tags"]
