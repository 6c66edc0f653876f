"""The store's operations in plain Python (no grpc): dispatch over the tables' owners (`tables/`).

Each method bounds its request, finds the table's `TableOwner` and runs the operation: reads use the view of
one version (the latest within the read-consistency interval, unless asked); every change is one typed
commit (`storage/operations.py`) prepared outside the writer's lock. Read-modify-write changes (update,
delete, merge_insert, schema changes) run one at a time per table in this process (`owner.changing()`) and
are checked at commit against the version they read, so a change from another process cannot be silently
lost. See README.md beside this file for the rooms and the paths of an Add and a Search.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any
from pathlib import Path

import numpy as np
import pyarrow as pa

from rpc_common import paging
from store_service import memory, schema_changes
from store_service.search import computed as computed_columns
from store_service.search import multivector, reads
from store_service.search import explain, full_text, hybrid, ordering, reranking
from store_service.search import vector_search as search
from store_service.search.full_text import TextQuery, TextSearch
from store_service.search.hybrid import Fusion
from store_service.search.reranking import Reranking
from store_service.search.vector_search import VectorSearch
from store_service.embedder import NO_DEADLINE, Deadline, Embedder, FunctionInfo, Query
from store_service.errors import (Aborted, Cancelled, DeadlineExceeded, InvalidArgument, ResourceExhausted,
                                  ServiceError, TableExists)
from store_service.expressions import filters
from store_service.expressions import lance as lance_sql
from store_service.expressions.budget import EVALUATION
from store_service.functions.changes import FunctionChanges
from store_service.indexes import catalog, text_index
from store_service.indexes.catalog import IndexEntry
from store_service.search.ordering import ColumnOrdering
from store_service.indexes.text_index import BuildResources, TextIndexEntry, TextIndexParams
from store_service.ingest.rows import MAX_SUBVECTORS_PER_ROW, BadVectors, Batch, RowPreparer, stage_stream
from store_service.ingest.merge import MergeRules, plan_merge
from store_service.functions.reembed import Reembedder
from store_service.schema import (FunctionConfig, check_secrets, check_table_schema, computes, field_at,
                                  functions_of, infer_vector_columns, is_multivector, is_vector, pick_vector_column,
                                  source_kind, vector_type, with_functions)
from store_service.storage import leases, maintenance
from store_service.storage.fragments import ROW_ID
from store_service.storage.location import Location
from store_service.storage.maintenance import Cleaned
from store_service.storage.manifest import Manifest
from store_service.storage.names import check_table_name, check_version
from store_service.storage.new_columns import ColumnFiles, NewColumns
from store_service.storage.operations import (Append, ChangeSchema, CommittedNotDurable, Delete, Merge, Moved,
                                              Overwrite, Restore, Staged, Update)
from store_service.storage.table import Table
from store_service.search.table_view import TableView
from store_service.indexes.vector_index import IndexParams
from store_service.tables.owner import PREPARE_ATTEMPTS, TableOwner
from store_service.tables import jobs
from store_service.tables.registry import Tables

log = logging.getLogger(__name__)

CREATE, OVERWRITE, EXIST_OK = "create", "overwrite", "exist_ok"
APPEND = "append"
StillWanted = Callable[[], bool]


def _always() -> bool:
    return True


@dataclass(frozen=True)
class StoreLimits:
    max_search_limit: int = 10_000
    max_read_rows: int = 100_000
    max_batch_queries: int = 1_000
    max_response_bytes: int = 32 * 1024 * 1024
    ingest_workers: int = 4
    ingest_in_flight: int = 3
    max_filter_length: int = 64 * 1024
    max_subvectors_per_row: int = MAX_SUBVECTORS_PER_ROW
    read_consistency_interval: float | None = 0.0  # seconds; None: only this store's own commits are seen
    lease_seconds: float = leases.DEFAULT_SECONDS  # how long a claim on work that must run once lasts


CONFLICT_ATTEMPTS = 6  # a row change refused by another writer's commit (another replica's) is made again


def _again_on_conflict(attempt: Callable[[], Change]) -> Change:
    """Runs a read-modify-write change (delete, update) again, against the version latest then, when another
    process's commit made it stale (ABORTED WRITE_CONFLICT: nothing was committed), as Lance retries its
    own; after CONFLICT_ATTEMPTS the caller gets the conflict."""
    for number in range(CONFLICT_ATTEMPTS):
        try:
            return attempt()
        except Aborted as exc:
            if exc.reason != "WRITE_CONFLICT" or number == CONFLICT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.01, 0.05) * 2 ** number)
    raise AssertionError("unreachable")


@dataclass(frozen=True)
class TableInfo:
    name: str
    schema: pa.Schema
    functions: list[FunctionConfig]
    version: int
    num_rows: int
    indexes: list[IndexEntry | TextIndexEntry]


DEFAULT_RETENTION_S = 7 * 24 * 3600.0  # LanceDB's default for optimize(cleanup_older_than=)
MAX_RETENTION_S = 100 * 365 * 24 * 3600.0
HYBRID_THREADS = 8  # full-text halves of hybrid searches run at once; more wait for a thread
HYBRID_QUEUE = 64  # hybrid searches waiting for their full-text half; more are RESOURCE_EXHAUSTED
HYBRID_WAIT_S = 300.0  # the longest a hybrid search without a deadline waits for its full-text half
SMALL_FRAGMENT_ROWS = 100_000  # fragments below this many rows are what compaction merges first


@dataclass(frozen=True)
class Optimized:
    version: int
    fragments_removed: int = 0
    fragments_added: int = 0
    indexes_caught_up: int = 0
    versions_removed: int = 0
    bytes_removed: int = 0


@dataclass(frozen=True)
class TableStats:
    version: int
    num_rows: int
    num_deleted_rows: int
    num_fragments: int
    num_small_fragments: int
    total_bytes: int
    num_indices: int
    lengths: np.ndarray  # live rows per fragment


@dataclass(frozen=True)
class Change:
    """The outcome of a change: the version it made (or the unchanged latest) and the rows it touched."""

    version: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0


class StoreCore:
    def __init__(self, root: Location | Path, embedder: Embedder, limits: StoreLimits = StoreLimits()) -> None:
        self.tables = Tables(root, limits.max_filter_length, limits.read_consistency_interval)
        self.embedder = embedder
        self.limits = limits
        self._pool = ThreadPoolExecutor(max_workers=limits.ingest_workers, thread_name_prefix="store-ingest")
        self._hybrid_pool = ThreadPoolExecutor(max_workers=HYBRID_THREADS, thread_name_prefix="store-hybrid")
        self._hybrid_lock = threading.Lock()
        self._hybrid_waiting = 0
        self.reembedder = Reembedder(embedder, lease_seconds=limits.lease_seconds)
        self.functions = FunctionChanges(self.tables, embedder, self.reembedder)
        self.jobs = jobs.Jobs({jobs.CREATE_INDEX: self._build_index, jobs.OPTIMIZE: self._optimize_now},
                              limits.lease_seconds)

    def close(self) -> None:
        self.reembedder.close()
        self.tables.close()
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._hybrid_pool.shutdown(wait=True, cancel_futures=True)
        self.embedder.close()

    def owner(self, name: str) -> TableOwner:
        """The open table's owner (TABLE_NOT_FOUND when there is none)."""
        return self.tables.owner(name)

    # ----- tables -------------------------------------------------------------------------------------
    @staticmethod
    def check_name(name: str) -> None:
        check_table_name(name)

    def function_dimensions(self, functions: Iterable[FunctionConfig], deadline: Deadline = NO_DEADLINE
                            ) -> dict[str, int]:
        """Vector lengths the embed service reports for server functions, by vector column."""
        found = {}
        for config in functions:
            info = self.embedder.describe(config, deadline)
            if info is not None:
                found[config.vector_column] = info.dimensions
        return found

    def describe_function(self, config: FunctionConfig, deadline: Deadline = NO_DEADLINE) -> FunctionInfo | None:
        """The function as the embed service hosts it, or None for a local function; a literal secret is
        refused before anything is sent."""
        if not config.name:
            raise InvalidArgument("the function has no registry name", reason="INVALID_EMBEDDING_FUNCTION")
        check_secrets(config)
        info = self.embedder.describe(config, deadline)
        if info is not None:
            check_secrets(config, info.secret_settings)
        return info

    def compute_embeddings(self, config: FunctionConfig, items: list[Query], *, as_queries: bool,
                           deadline: Deadline = NO_DEADLINE) -> np.ndarray:
        """A hosted function's vectors for texts and images (at most max_batch_queries of them)."""
        if not items:
            raise InvalidArgument("nothing to embed: give at least one input", reason="MISSING_INPUT")
        if len(items) > self.limits.max_batch_queries:
            raise InvalidArgument(f"{len(items)} inputs in one call; at most {self.limits.max_batch_queries}",
                                  reason="TOO_MANY_INPUTS", limit=self.limits.max_batch_queries)
        self.describe_function(config, deadline)  # its settings and secrets checked first
        return self.embedder.embed_items(config, items, as_queries=as_queries, deadline=deadline)

    def create_table(self, name: str, schema: pa.Schema | None, functions: list[FunctionConfig],
                     rows: pa.Table | None = None, *, mode: str = CREATE, bad: BadVectors = BadVectors(),
                     deadline: Deadline = NO_DEADLINE) -> TableInfo:
        if mode == EXIST_OK and self.tables.exists(name):
            return self.describe_table(name)
        if mode == CREATE and self.tables.exists(name):
            raise TableExists(f"a table named {name!r} exists", table=name)
        schema = self._complete_schema(schema, functions, rows, deadline)
        check_table_schema(schema)
        secret, modalities = {}, {}
        for config in functions:
            info = self.embedder.describe(config, deadline)
            if info is not None:
                secret[config.name] = info.secret_settings
                modalities[config.vector_column] = info.modalities
                self._check_dimensions(schema, config, info.dimensions)
        schema = with_functions(schema, functions, secret)
        for config in functions:
            if config.vector_column in modalities and computes(schema, config):
                source_kind(config, schema.field(config.source_column).type, modalities[config.vector_column])
            elif not computes(schema, config):
                log.info("table %s: function %r on %r is recorded but computes nothing here (its source column "
                         "is absent or its vector column has no fixed length): rows carry their vectors", name,
                         config.name, config.vector_column)
        prepared = self._preparer(schema, bad, deadline).prepare(rows) if rows is not None else None
        if mode == OVERWRITE and self.tables.exists(name):
            owner = self.owner(name)
            staged = owner.table.stage(prepared if prepared is not None else schema.empty_table(), schema)
            owner.commit(Overwrite((staged,), schema))  # the old rows' views and indexes go with it
        else:
            self.tables.create(name, schema, prepared)
        log.info("created table %s (%d functions, %d rows)", name, len(functions),
                 prepared.num_rows if prepared is not None else 0)
        return self.describe_table(name)

    def _complete_schema(self, schema: pa.Schema | None, functions: list[FunctionConfig], rows: pa.Table | None,
                         deadline: Deadline) -> pa.Schema:
        if schema is not None:
            return schema
        if rows is None:
            raise InvalidArgument("give a schema, or first rows to infer it from", reason="MISSING_SCHEMA")
        inferred = infer_vector_columns(rows.schema.remove_metadata(), rows)
        dims = self.function_dimensions(functions, deadline)
        for config in functions:
            if inferred.get_field_index(config.vector_column) < 0:
                if config.vector_column not in dims:
                    raise InvalidArgument(f"cannot infer vector column {config.vector_column!r}: the rows carry "
                                          "no vectors and its function is not one the embed service has",
                                          reason="MISSING_SCHEMA", column=config.vector_column)
                inferred = inferred.append(pa.field(config.vector_column, vector_type(dims[config.vector_column])))
        return inferred

    @staticmethod
    def _check_dimensions(schema: pa.Schema, config: FunctionConfig, dims: int) -> None:
        index = schema.get_field_index(config.vector_column)
        if index < 0:
            return  # with_functions reports the unknown column
        declared = getattr(schema.field(index).type, "list_size", dims)
        if declared != dims:
            raise InvalidArgument(f"vector column {config.vector_column!r} has {declared} dimensions; function "
                                  f"{config.name!r} makes {dims}", reason="WRONG_DIMENSION",
                                  column=config.vector_column, expected=dims, got=declared)

    def describe_table(self, name: str) -> TableInfo:
        owner = self.owner(name)
        snapshot = owner.table.snapshot(owner.latest_version())  # as fresh as the read-consistency interval
        return TableInfo(name, snapshot.schema, functions_of(snapshot.schema), snapshot.version,
                         snapshot.manifest.rows, [*catalog.entries(snapshot.manifest), *text_index.entries(snapshot)])

    def table_schema(self, name: str) -> pa.Schema:
        owner = self.owner(name)
        return owner.table.schema(owner.latest_version())

    def list_tables(self, page_size: int = 0, page_token: str = "") -> tuple[list[str], str]:
        return paging.page(self.tables.names(), str, page_size, page_token)

    def drop_table(self, name: str) -> None:
        self.tables.drop(name)  # its owner closes: operations stopped, views and indexes let go
        log.info("dropped table %s", name)

    # ----- rows ---------------------------------------------------------------------------------------
    def add(self, name: str, batches: Iterable[Batch], *, mode: str = APPEND,
            bad: BadVectors = BadVectors(), deadline: Deadline = NO_DEADLINE,
            still_wanted: StillWanted = _always) -> Change:
        """Adds every batch in one version (or none of them): appended, or replacing every row. No rows at all
        is no change (the latest version, unchanged). `still_wanted` is asked under the commit lock: a caller
        gone by then gets nothing committed."""
        owner = self.owner(name)
        table = owner.table
        schema = table.manifest().schema
        preparer = self._preparer(schema, bad, deadline)
        staged, rows = stage_stream(table, preparer, _present(batches), self._pool, self.limits.ingest_in_flight)
        if rows == 0 and mode != OVERWRITE:
            table.discard(staged)
            _check_wanted(still_wanted)
            return Change(table.latest_version())
        _check_wanted(still_wanted, lambda: table.discard(staged))  # waits out a cancellation still on its way
        if mode == OVERWRITE:
            committed = owner.commit(Overwrite(tuple(staged), schema, wanted=still_wanted))
            return Change(committed.version, inserted=rows)
        current = list(staged)

        def prepare(attempt: int) -> Append:  # an embedding function switched meanwhile: staged again for it
            if attempt:
                current[:] = self._restage(table, current, table.schema(), bad)
            return Append(tuple(current), wanted=still_wanted)

        try:
            committed = owner.commit_prepared(prepare)
        except CommittedNotDurable:
            raise
        except BaseException:  # refused, or a restage failed: the staged rows are no one's
            table.discard(current)
            raise
        memory.release_unused()  # the batches' buffers, freed, go back to the system
        return Change(committed.version, inserted=rows)

    def _restage(self, table: Table, staged: list[Staged], schema: pa.Schema, bad: BadVectors) -> list[Staged]:
        """Staged rows again for `schema`, which an embedding-function switch made the latest while they were
        staged: columns the switch changed (or dropped) are left out, so their vectors come from the new
        function, and columns it added are computed."""
        before = staged[0].schema if staged else schema
        for f in before:  # a rename, cast or drop of another column (alter_columns...) is not restaged
            if not is_vector(f) and (schema.get_field_index(f.name) < 0 or not schema.field(f.name).equals(f)):
                table.discard(staged)
                raise Aborted(f"table {table.name!r}: column {f.name!r} was altered or dropped while the rows "
                              "were written; retry the add", reason="WRITE_CONFLICT", table=table.name)
        changed = {f.name for f in before if schema.get_field_index(f.name) < 0 or not schema.field(f.name).equals(f)}
        old_functions = {c.vector_column: c for c in functions_of(before)}
        changed |= {c.vector_column for c in functions_of(schema) if old_functions.get(c.vector_column) != c}
        preparer = self._preparer(schema, bad)
        again: list[Staged] = []
        try:
            for item in staged:
                if item.rows:
                    tables = (preparer.prepare(pa.Table.from_batches([batch]).drop_columns(
                        [c for c in batch.schema.names if c in changed])) for batch in table.staged_batches(item))
                    again.append(table.stage_stream(tables, schema))
        except BaseException:
            table.discard(again)
            raise
        table.discard(staged)
        return again

    def search(self, name: str, query: np.ndarray | Query, request: VectorSearch, *, version: int = 0,
               deadline: Deadline = NO_DEADLINE, computed: Mapping[str, str] | None = None,
               rerank: Reranking | None = None) -> tuple[pa.Table, int]:
        """The nearest rows to `query` (a vector, vectors, or text / an image the column's function embeds),
        with `computed` columns evaluated for them, reranked by a model when `rerank` says so."""
        if rerank is not None:
            text = query.text if isinstance(query, Query) else None
            return self._reranked(name, lambda select, at: self.search(
                name, query, dataclasses.replace(request, select=select), version=at, deadline=deadline),
                request.select, rerank, text, version, deadline, computed,
                (request.limit + request.offset) * (len(query) if isinstance(query, np.ndarray) and query.ndim == 2
                                                    else 1))
        computed = dict(computed or {})
        if not computed:
            return self._search(name, query, request, version=version, deadline=deadline)
        judged = computed_columns.check(computed)
        keep_row_id = ROW_ID in request.select
        fetched = dataclasses.replace(request, select=computed_columns.with_row_ids(request.select))
        rows, version = self._search(name, query, fetched, version=version, deadline=deadline)
        view = self.owner(name).view(version)
        return computed_columns.attach(view, rows, judged, keep_row_id=keep_row_id,
                                       max_bytes=self.limits.max_response_bytes), version

    def _search(self, name: str, query: np.ndarray | Query, request: VectorSearch, *, version: int = 0,
                deadline: Deadline = NO_DEADLINE) -> tuple[pa.Table, int]:
        self._check_limit(request.limit, request.offset)
        owner = self.owner(name)
        view = owner.view(version)
        if not request.vector_column and isinstance(query, np.ndarray) and query.size:
            request = dataclasses.replace(request, vector_column=pick_vector_column(
                view.schema, dims=int(query.shape[-1])))
        column = search.check_request(view, request)
        multi = is_multivector(field_at(view.schema, column))  # several vectors are one query of such a column
        several = isinstance(query, np.ndarray) and query.ndim == 2
        count = len(query) if isinstance(query, np.ndarray) else 1
        batch = several and not multi
        if several and count > self.limits.max_batch_queries:
            raise InvalidArgument(f"{count} query vectors in one search; at most {self.limits.max_batch_queries}",
                                  reason="TOO_MANY_QUERIES", limit=self.limits.max_batch_queries)
        if batch and count * (request.limit + request.offset) > self.limits.max_read_rows:
            raise InvalidArgument(f"{count} queries x (limit + offset) {request.limit + request.offset} is above "
                                  f"the most rows one search answers ({self.limits.max_read_rows})",
                                  reason="LIMIT_TOO_LARGE", limit=self.limits.max_read_rows)
        if isinstance(query, Query):
            query = self.embedder.embed_query(self._function_of(view, column), query, deadline)
        index = None if request.exact else owner.index_for(view, column)
        if multi:
            found = multivector.search(view, query, request, index,
                                       still_in_time=lambda: deadline.check("the multivector query was searched"))
            return found, view.version
        if batch:
            found = search.search_many(view, query, request, index,
                                       still_in_time=lambda: deadline.check("every query of the batch was searched"))
            return self._within_response(found, "the batch's results"), view.version
        return search.search(view, query, request, index), view.version

    def search_text(self, name: str, query: TextQuery, request: TextSearch, *, version: int = 0,
                    computed: Mapping[str, str] | None = None, rerank: Reranking | None = None,
                    deadline: Deadline = NO_DEADLINE) -> tuple[pa.Table, int]:
        """The rows that best match a full-text query (BM25 over the table's FTS indexes), `_score` highest
        first, with `computed` columns evaluated for them, reranked by a model when `rerank` says so."""
        if rerank is not None:
            text = query.text if isinstance(query, full_text.Terms) else None
            return self._reranked(name, lambda select, at: self.search_text(
                name, query, dataclasses.replace(request, select=select), version=at),
                request.select, rerank, text, version, deadline, computed, request.limit + request.offset)
        self._check_limit(request.limit, request.offset)
        computed = dict(computed or {})
        judged = computed_columns.check(computed) if computed else {}
        fetched = dataclasses.replace(request, select=computed_columns.with_row_ids(request.select)) \
            if computed else request
        view = self.owner(name).view(version)
        where = None
        if request.where.strip():
            where = filters.lance_filter(request.where, view.snapshot, self.limits.max_filter_length)
        rows = full_text.search(view, query, fetched, where=where)
        if computed:
            rows = computed_columns.attach(view, rows, judged, keep_row_id=ROW_ID in request.select,
                                           max_bytes=self.limits.max_response_bytes)
        return self._within_response(rows, "the results"), view.version

    def search_hybrid(self, name: str, query: np.ndarray | Query, vector_request: VectorSearch,
                      text_query: TextQuery, text_request: TextSearch, fusion: Fusion, *, version: int = 0,
                      deadline: Deadline = NO_DEADLINE, rerank: Reranking | None = None) -> tuple[pa.Table, int]:
        """A vector search and a full-text search of one version, `limit + offset` rows each, fused
        (`search/hybrid.py`) or, with `rerank`, merged and reranked by a model; the full-text half runs
        beside the vector half (and its query's embedding)."""
        fusion.check()
        limit, offset = vector_request.limit, vector_request.offset
        self._check_limit(limit, offset)
        view = self.owner(name).view(version)
        if rerank is not None:
            rerank.check_count(2 * (limit + offset))
            rerank.check(view.schema)
        wanted = list(reranking.with_column(vector_request.select, rerank)) or list(view.schema.names)
        keep_row_id = ROW_ID in wanted
        select = tuple(n for n in wanted if n != ROW_ID) + (ROW_ID,)
        each = limit + offset
        with self._hybrid_lock:
            if self._hybrid_waiting >= HYBRID_QUEUE:
                raise ResourceExhausted(f"{HYBRID_QUEUE} hybrid searches are waiting for their full-text half; "
                                        "retry shortly", reason="SERVER_BUSY", limit=HYBRID_QUEUE)
            self._hybrid_waiting += 1
        try:
            text_half = self._hybrid_pool.submit(
                self.search_text, name, text_query,
                dataclasses.replace(text_request, limit=each, offset=0, select=select), version=view.version)
            try:
                vector_rows, _ = self.search(name, query, dataclasses.replace(vector_request, limit=each, offset=0,
                                                                              select=select),
                                             version=view.version, deadline=deadline)
                text_rows, _ = text_half.result(timeout=deadline.remaining(HYBRID_WAIT_S))
            except FutureTimeout:
                raise DeadlineExceeded("the full-text half of the hybrid search did not finish in time",
                                       reason="DEADLINE_EXCEEDED") from None
            finally:
                text_half.cancel()  # (one already running finishes on its own)
        finally:
            with self._hybrid_lock:
                self._hybrid_waiting -= 1
        if rerank is None:
            fused = hybrid.fuse(vector_rows, text_rows, fusion, limit=limit, offset=offset, keep_row_id=keep_row_id)
            return self._within_response(fused, "the results"), view.version
        text = rerank.query_for(query.text if isinstance(query, Query) else
                                text_query.text if isinstance(text_query, full_text.Terms) else None)
        ranked = reranking.rerank(hybrid.merge(vector_rows, text_rows), rerank, text, self._scorer(deadline),
                                  keep=tuple(vector_request.select) or None).slice(offset, limit)
        if not keep_row_id:
            ranked = ranked.drop_columns([ROW_ID])
        return self._within_response(ranked, "the results"), view.version

    def explain_search(self, name: str, *, query: np.ndarray | Query | None, vector: VectorSearch | None,
                       text: tuple[TextQuery, TextSearch] | None, fusion: Fusion | None = None,
                       rerank: Reranking | None = None, version: int = 0, verbose: bool = False,
                       analyze: bool = False, deadline: Deadline = NO_DEADLINE) -> str:
        """How the search (vector, full-text or both; neither: a plain read) runs (`search/explain.py`);
        `analyze`: run it too, with what it measured."""
        view = self.owner(name).view(version)
        both = vector is not None and text is not None
        text_plan = ""
        if text is not None:
            text_query, text_request = text
            if vector is not None:  # a hybrid search: each half searches for limit + offset rows
                text_request = dataclasses.replace(text_request, limit=vector.limit + vector.offset, offset=0)
            self._check_limit(text_request.limit, text_request.offset)
            where = filters.lance_filter(text_request.where, view.snapshot, self.limits.max_filter_length) \
                if text_request.where.strip() else None
            text_plan = full_text.explain(view, text_query, text_request, where=where, verbose=verbose,
                                          analyze=analyze)
            if vector is None:
                return text_plan + (f"\nRerank: the results scored by the embed service's "
                                    f"{rerank.function.name!r} on column {rerank.column!r}" if rerank else "")
        if vector is None:
            raise InvalidArgument("explain a search: give a query, a full-text query or both",
                                  reason="UNSUPPORTED_SEARCH")
        self._check_limit(vector.limit, vector.offset)
        half = dataclasses.replace(vector, limit=vector.limit + vector.offset, offset=0) if both else vector
        if not half.vector_column and isinstance(query, np.ndarray) and query.size:
            half = dataclasses.replace(half, vector_column=pick_vector_column(view.schema, dims=int(query.shape[-1])))
        column = search.check_request(view, half)
        if half.where.strip():
            filters.lance_filter(half.where, view.snapshot, self.limits.max_filter_length)  # refused as a search would
        entry = next((e for e in catalog.entries(view.snapshot.manifest) if e.vector_column == column), None)
        lines = explain.vector_plan(half, column, entry, num_rows=view.num_rows, fragments=len(view.parts),
                                    table=name, version=view.version, verbose=verbose)
        if analyze and query is not None:
            started = time.perf_counter()
            rows, _ = self.search(name, query, half, version=view.version, deadline=deadline)
            lines = explain.measured(lines, rows.num_rows, time.perf_counter() - started)
        if not both:
            return "\n".join(lines) + (f"\n  Rerank: the results scored by the embed service's "
                                       f"{rerank.function.name!r} on column {rerank.column!r}" if rerank else "")
        return explain.hybrid(lines, text_plan, None if rerank else fusion,
                              reranked_by=rerank.function.name if rerank else "")

    def _reranked(self, name: str, run: Callable[[tuple[str, ...], int], tuple[pa.Table, int]],
                  select: tuple[str, ...], rerank: Reranking, text: str | None, version: int, deadline: Deadline,
                  computed: Mapping[str, str] | None, results: int) -> tuple[pa.Table, int]:
        """A search's results (`run(select, version)`, at most `results`) reranked by a model of the embed
        service."""
        rerank.check_count(results)
        if computed:
            raise InvalidArgument("a reranked search returns columns, not computed_columns",
                                  reason="UNSUPPORTED_SEARCH")
        view = self.owner(name).view(version)
        rerank.check(view.schema)
        query = rerank.query_for(text)
        rows, at = run(reranking.with_column(select, rerank), view.version)
        ranked = reranking.rerank(rows, rerank, query, self._scorer(deadline), keep=select or None)
        return self._within_response(ranked, "the results"), at

    def in_order(self, rows: pa.Table, orderings: tuple[ColumnOrdering, ...], *, offset: int, limit: int,
                 drop: tuple[str, ...] = ()) -> pa.Table:
        """A search's `limit + offset` best rows sorted by columns (`search/ordering.py`), `offset` skipped."""
        return ordering.apply(self._within_response(rows, "the rows to order"), orderings, offset=offset,
                              limit=limit, drop=drop)

    def _scorer(self, deadline: Deadline) -> reranking.Scorer:
        return lambda config, query, texts: self.embedder.rerank(config, query, texts, deadline)

    def _check_limit(self, limit: int, offset: int) -> None:
        if limit + offset > self.limits.max_search_limit:
            raise InvalidArgument(f"limit + offset ({limit} + {offset}) is above the most this store searches for "
                                  f"({self.limits.max_search_limit})", reason="LIMIT_TOO_LARGE",
                                  limit=self.limits.max_search_limit)

    def _preparer(self, schema: pa.Schema, bad: BadVectors, deadline: Deadline = NO_DEADLINE) -> RowPreparer:
        return RowPreparer(schema, self.embedder, bad, deadline, max_subvectors=self.limits.max_subvectors_per_row)

    def _within_response(self, rows: pa.Table, what: str) -> pa.Table:
        """`rows`, unless they are more than one response may carry."""
        if rows.nbytes > self.limits.max_response_bytes:
            raise InvalidArgument(f"{what} hold {rows.nbytes} bytes; one response carries at most "
                                  f"{self.limits.max_response_bytes}: ask for fewer rows or columns",
                                  reason="RESPONSE_TOO_LARGE", limit=self.limits.max_response_bytes)
        return rows

    def _function_of(self, view: TableView, column: str) -> FunctionConfig:
        for config in functions_of(view.schema):
            if config.vector_column == column:
                return config
        raise InvalidArgument(f"vector column {column!r} has no embedding function; search it with a vector",
                              reason="NO_EMBEDDING_FUNCTION", column=column)

    def read(self, name: str, *, where: str = "", select: tuple[str, ...] = (), limit: int = 0, offset: int = 0,
             version: int = 0, as_json: bool = False, offsets: np.ndarray | None = None,
             row_ids: np.ndarray | None = None, computed: Mapping[str, str] | None = None,
             orderings: tuple[ColumnOrdering, ...] = ()) -> tuple[pa.Table, int, int]:
        """(rows, version, next offset): one page of the matching rows (see `reads.page`; in `orderings`'
        order when given), or the rows asked for by position or stable id (`reads.take`), with `computed`
        columns evaluated for them."""
        computed = dict(computed or {})
        judged = computed_columns.check(computed) if computed else {}
        view = self.owner(name).view(version)
        fetched = computed_columns.with_row_ids(select) if computed else select
        if orderings and (offsets is not None or row_ids is not None):
            raise InvalidArgument("rows taken by position or id come in the order asked for: no order_by",
                                  reason="INVALID_ORDERING")
        if offsets is not None or row_ids is not None:
            rows = self._within_response(reads.take(view, self.limits.max_read_rows, fetched, offsets, row_ids),
                                         "the rows asked for")
            next_offset = 0
        else:
            budget = self.limits.max_response_bytes // (4 if as_json else 1)
            rows, next_offset = reads.page(view, fetched, where=where, limit=limit, offset=offset,
                                           max_rows=self.limits.max_read_rows, max_bytes=budget,
                                           orderings=orderings)
        if computed:
            rows = computed_columns.attach(view, rows, judged, keep_row_id=ROW_ID in select,
                                          max_bytes=self.limits.max_response_bytes)
        return rows, view.version, next_offset

    def count(self, name: str, *, where: str = "", version: int = 0) -> int:
        view = self.owner(name).view(version)
        return int(view.mask(where).sum()) if where.strip() else view.num_rows

    def delete(self, name: str, where: str) -> Change:
        if not where.strip():
            raise InvalidArgument("delete needs a filter; use 'true' to delete every row", reason="MISSING_FILTER")
        owner = self.owner(name)

        def attempt() -> Change:
            with owner.changing():
                view = owner.latest_view()
                ids = view.row_ids[view.mask(where)]
                if len(ids) == 0:
                    return Change(view.version)
                committed = owner.commit(Delete(view.locate(ids), view.snapshot.manifest))
            return Change(committed.version, deleted=len(ids))

        return _again_on_conflict(attempt)

    def update(self, name: str, where: str, values: pa.Table, *, expressions: dict[str, str] | None = None,
               deadline: Deadline = NO_DEADLINE) -> Change:
        """Sets columns on the matching rows: to one row of `values`, or to SQL `expressions` computed from
        each row's current values (LanceDB's `values_sql`); vectors of changed sources are recomputed."""
        expressions = dict(expressions or {})
        if values.num_columns and values.num_rows != 1:
            raise InvalidArgument("update needs one value per column to set", reason="MISSING_VALUES")
        if not values.num_columns and not expressions:
            raise InvalidArgument("update needs values or SQL expressions to set", reason="MISSING_VALUES")
        both = sorted(set(values.column_names) & set(expressions))
        if both:
            raise InvalidArgument(f"column {both[0]!r} is given both a value and an expression",
                                  reason="MISSING_VALUES", column=both[0])
        judged = {column: schema_changes.check_expression(column, expression, kind="updated column")
                  for column, expression in expressions.items()}
        owner = self.owner(name)
        return _again_on_conflict(lambda: self._update(owner, where, values, expressions, judged, deadline))

    def _update(self, owner: TableOwner, where: str, values: pa.Table, expressions: dict[str, str],
                judged: dict[str, Any], deadline: Deadline) -> Change:
        table = owner.table
        with owner.changing():
            view = owner.latest_view()
            selected = view.mask(where) if where.strip() else np.ones(view.num_rows, dtype=bool)
            chosen = np.flatnonzero(selected)
            rows = view.take(chosen, view.schema.names + [ROW_ID])
            if rows.num_rows == 0:
                return Change(view.version)
            ids = rows.column(ROW_ID).to_numpy()
            rows = rows.drop_columns([ROW_ID])
            for column in expressions:
                if column == ROW_ID or column not in view.schema.names:
                    raise InvalidArgument(f"column {column!r} is not in the table", reason="UNKNOWN_COLUMN",
                                          column=column)
            computed = lance_sql.computed(view.snapshot, view.refs_at(chosen), ids, judged,
                                          max_output_bytes=EVALUATION.total_bytes)
            for column, computed_values in computed.items():
                rows = rows.set_column(rows.column_names.index(column), column, computed_values)  # conformed below
            for column in values.column_names:
                if column == ROW_ID or column not in view.schema.names:
                    raise InvalidArgument(f"column {column!r} is not in the table", reason="UNKNOWN_COLUMN",
                                          column=column)
                repeated = pa.repeat(values.column(column)[0], rows.num_rows)  # conformed (and checked) below
                rows = rows.set_column(rows.column_names.index(column), column, repeated)
            changed = set(values.column_names) | set(expressions)
            for config in functions_of(view.schema):
                if config.source_column in changed and config.vector_column not in changed:
                    index = rows.column_names.index(config.vector_column)
                    rows = rows.set_column(index, config.vector_column,
                                           pa.nulls(rows.num_rows, view.schema.field(index).type))
            preparer = self._preparer(view.schema, BadVectors(), deadline)
            staged = (table.stage(preparer.prepare(rows), view.schema),)
            committed = owner.commit(Update(staged, view.locate(ids), view.snapshot.manifest))
        return Change(committed.version, updated=len(ids))

    def merge_insert(self, name: str, batches: Iterable[Batch], rules: MergeRules, *,
                     bad: BadVectors = BadVectors(), deadline: Deadline = NO_DEADLINE,
                     still_wanted: StillWanted = _always) -> Change:
        owner = self.owner(name)
        table = owner.table
        incoming = list(_present(batches))
        _check_wanted(still_wanted)  # waits out a cancellation still on its way, before taking the lock
        images = {uri: data for batch in incoming for uri, data in batch.images.items()}
        with owner.changing():
            view = owner.latest_view()
            new_rows = _concat([b.rows for b in incoming], view.schema)
            plan = plan_merge(view, new_rows, rules)
            preparer = self._preparer(view.schema, bad, deadline)
            staged = ((table.stage(preparer.prepare(plan.write, images), view.schema),)
                      if plan.write.num_rows else ())
            if not staged and len(plan.delete_row_ids) == 0:
                return Change(view.version)
            committed = owner.commit(Merge(staged, view.locate(plan.delete_row_ids), view.snapshot.manifest,
                                           wanted=still_wanted))
        memory.release_unused()
        return Change(committed.version, inserted=plan.inserted, updated=plan.updated, deleted=plan.deleted)

    # ----- indexes ------------------------------------------------------------------------------------
    def create_index(self, name: str, params: IndexParams, *, vector_column: str = "", index_name: str = "",
                     replace: bool = False) -> tuple[IndexEntry, int]:
        """Builds an index as a job: if this process dies during it, another serving the table finishes it."""
        done = self.jobs.run(self.owner(name), jobs.CREATE_INDEX, {
            "params": dataclasses.asdict(params), "vector_column": vector_column, "index_name": index_name,
            "replace": replace})
        return IndexEntry.from_json(done["entry"]), int(done["version"])

    def create_text_index(self, name: str, column: str, params: TextIndexParams, *, index_name: str = "",
                          replace: bool = False, resources: BuildResources = BuildResources()) -> tuple[TextIndexEntry,
                                                                                                       int]:
        """Builds an FTS index as a job (finished by another store if this one dies during it)."""
        params.check()
        resources.check()
        done = self.jobs.run(self.owner(name), jobs.CREATE_INDEX, {
            "fts": dataclasses.asdict(params), "column": column, "index_name": index_name, "replace": replace,
            "resources": dataclasses.asdict(resources)})
        entry = done["entry"]
        return TextIndexEntry(entry["name"], entry["column"], entry["uuid"], int(entry["version"]),
                              frozenset(entry["fragments"])), int(done["version"])

    @staticmethod
    def _build_index(owner: TableOwner, job: dict[str, Any]) -> dict[str, Any]:
        if "fts" in job:
            stop_words = job["fts"].get("custom_stop_words")
            settings = TextIndexParams(**{**job["fts"], "custom_stop_words": None if stop_words is None
                                          else tuple(stop_words)})
            made, committed = text_index.create(owner, job["column"], settings, name=job["index_name"],
                                                replace=bool(job["replace"]),
                                                resources=BuildResources(**job.get("resources", {})))
            log.info("table %s: built FTS index %s on %s", owner.name, made.name, made.column)
            return {"entry": {**dataclasses.asdict(made), "fragments": sorted(made.fragments)},
                    "version": committed.version}
        params = IndexParams(**job["params"])
        entry, committed = catalog.create(owner, params, vector_column=job["vector_column"],
                                          name=job["index_name"], replace=bool(job["replace"]))
        memory.release_unused(force=True)  # what the build read and trained on
        log.info("table %s: built %s index %s on %s", owner.name, params.kind, entry.name, entry.vector_column)
        return {"entry": entry.to_json(), "version": committed.version}

    def take_over_work(self, steal: bool = False) -> int:
        """Resumes the re-embedding operations and finishes the jobs (index builds, optimizations) that a
        store process which died left behind, where no live process holds them (`steal`: whatever their
        leases say, for a store that holds its directory alone); how many."""
        owners = []
        for table in self.tables.names():
            try:
                owners.append(self.owner(table))
            except ServiceError:
                continue  # dropped meanwhile
        return self.functions.resume_all(steal) + self.jobs.take_over(owners, steal)

    def list_indexes(self, name: str) -> list[IndexEntry | tuple[TextIndexEntry, dict[str, Any], int]]:
        """The vector indexes, and the FTS indexes with their tokenizer settings and format version."""
        owner = self.owner(name)
        snapshot = owner.table.snapshot(owner.latest_version())
        text_indexes = text_index.entries(snapshot)
        formats = text_index.format_versions(snapshot) if text_indexes else {}
        return [*catalog.entries(snapshot.manifest),
                *((e, text_index.reported_parameters(snapshot, e.name), formats.get(e.uuid, 0)) for e in text_indexes)]

    def tokenize(self, text: str, *, table: str = "", column: str = "", index_name: str = "",
                 params: TextIndexParams | None = None, version: int = 0) -> list[tuple[str, int]]:
        """`text`'s tokens as the table's FTS index on `column` (or named `index_name`) keeps them; without a
        table, as an index with `params` would."""
        if not table:
            return text_index.tokenize(params or TextIndexParams(), text)
        owner = self.owner(table)
        snapshot = owner.table.snapshot(check_version(version) or owner.latest_version())
        return text_index.tokenize(text_index.tokenizer_of(snapshot, column=column, name=index_name), text)

    def drop_index(self, name: str, index_name: str) -> int:
        owner = self.owner(name)
        if any(e.name == index_name for e in text_index.entries(owner.latest_view().snapshot)):
            return text_index.drop(owner, index_name).version
        return catalog.drop(owner, index_name).version

    # ----- versions -----------------------------------------------------------------------------------
    def list_versions(self, name: str, page_size: int = 0, page_token: str = "") -> tuple[list[Manifest], str]:
        history = {m.version: m for m in self.owner(name).table.history()}
        numbers, next_token = paging.page(sorted(history), int, page_size, page_token)
        return [history[n] for n in numbers], next_token

    def restore(self, name: str, version: int) -> int:
        if check_version(version) == 0:
            raise InvalidArgument("restore needs a version (versions count from 1)", reason="INVALID_VERSION")
        owner = self.owner(name)
        owner.table.dataset(version)  # VERSION_NOT_FOUND before anything is written
        return owner.commit(Restore(version)).version

    # ----- maintenance --------------------------------------------------------------------------------
    def optimize(self, name: str, *, cleanup_older_than: float = DEFAULT_RETENTION_S) -> Optimized:
        """Compaction, indexes caught up, cleanup of versions older than `cleanup_older_than` seconds
        (negative: none), in that order (LanceDB's `optimize()`); a job, like an index build."""
        if not math.isfinite(cleanup_older_than) or cleanup_older_than > MAX_RETENTION_S:
            raise InvalidArgument(f"cleanup_older_than must be a finite number of seconds up to {MAX_RETENTION_S:.0f}",
                                  reason="OUT_OF_RANGE", field="cleanup_older_than_seconds")
        done = self.jobs.run(self.owner(name), jobs.OPTIMIZE, {"cleanup_older_than": cleanup_older_than})
        return Optimized(**done)

    def _optimize_now(self, owner: TableOwner, job: dict[str, Any]) -> dict[str, Any]:
        name, table, cleanup_older_than = owner.name, owner.table, float(job["cleanup_older_than"])
        with owner.changing():
            before = {f.data_key for f in table.manifest().fragments}
            self._compact(owner)
            after = {f.data_key for f in table.manifest().fragments}
            caught_up = [*catalog.catch_up(owner), *text_index.catch_up(owner)]
        cleaned = Cleaned()
        if cleanup_older_than >= 0:
            cleaned = maintenance.cleanup(table, datetime.timedelta(seconds=cleanup_older_than))
        log.info("table %s optimized: %d fragments into %d, %d indexes caught up, %d versions removed", name,
                 len(before - after), len(after - before), len(caught_up), cleaned.versions)
        return dataclasses.asdict(Optimized(table.latest_version(), fragments_removed=len(before - after),
                                            fragments_added=len(after - before), indexes_caught_up=len(caught_up),
                                            versions_removed=cleaned.versions, bytes_removed=cleaned.bytes))

    @staticmethod
    def _compact(owner: TableOwner) -> None:
        for attempt in range(PREPARE_ATTEMPTS):
            operation = maintenance.prepare_compaction(owner.table)
            if operation is None:
                return
            try:
                owner.commit(operation)
                return
            except Moved:  # a fragment it rewrote changed meanwhile: planned again
                owner.table.remove_files(operation.files)
                if attempt == PREPARE_ATTEMPTS - 1:
                    raise

    def stats(self, name: str) -> TableStats:
        table = self.owner(name).table
        latest = table.manifest()
        lengths = np.array([f.rows for f in latest.fragments], dtype=np.int64)
        files = [p for f in latest.fragments for p in (*f.files, *((f.deletion,) if f.deletion else ()))]
        total = sum(table.file_size(p) for p in files)
        return TableStats(version=latest.version, num_rows=latest.rows,
                          num_deleted_rows=sum(f.deleted for f in latest.fragments),
                          num_fragments=len(latest.fragments),
                          num_small_fragments=int((lengths < SMALL_FRAGMENT_ROWS).sum()),
                          total_bytes=total, num_indices=len(latest.indexes) + len(text_index.entries(
                              table.snapshot(latest.version))), lengths=lengths)

    # ----- schema evolution ---------------------------------------------------------------------------
    def add_columns(self, name: str, *, expressions: dict[str, str] | None = None,
                    null_columns: pa.Schema | None = None) -> int:
        """LanceDB's `add_columns`: columns computed by SQL expressions, or all-null columns of given types."""
        if bool(expressions) == bool(null_columns is not None and len(null_columns)):
            raise InvalidArgument("add_columns takes either SQL expressions or null columns (fields), one of them",
                                  reason="MISSING_COLUMNS")
        owner = self.owner(name)
        with owner.changing():
            latest = owner.table.manifest()
            plan = (schema_changes.plan_add_expressions(latest.schema, dict(expressions or {})) if expressions
                    else schema_changes.plan_add_nulls(latest.schema, null_columns))
            return self._change_schema(owner, [plan], latest)

    def merge_columns(self, name: str, other: pa.Table, left_on: str, right_on: str = "") -> int:
        """LanceDB's `merge`: new columns from `other`, joined to each row by its key (a left join)."""
        owner = self.owner(name)
        with owner.changing():
            latest = owner.table.manifest()
            plan = schema_changes.plan_merge(latest.schema, other, left_on, right_on or left_on)
            return self._change_schema(owner, [plan], latest)

    def alter_columns(self, name: str, alterations: list[schema_changes.Alteration]) -> int:
        """LanceDB's `alter_columns`: renames (functions and indexes follow), nullability, casts."""
        owner = self.owner(name)
        with owner.changing():
            view = owner.latest_view()
            stricter = [a.path for a in alterations if a.nullable is False and view.schema.get_field_index(a.path) >= 0]
            nulls = {c: view.columns([c]).column(c).null_count for c in stricter}
            plans = schema_changes.plan_alter(view.schema, alterations, nulls)
            return self._change_schema(owner, plans, view.snapshot.manifest)

    def drop_columns(self, name: str, columns: list[str]) -> int:
        owner = self.owner(name)
        with owner.changing():
            latest = owner.table.manifest()
            return self._change_schema(owner, [schema_changes.plan_drop(latest.schema, columns)], latest)

    @staticmethod
    def _change_schema(owner: TableOwner, plans: list[schema_changes.Plan], read_at: Manifest) -> int:
        for plan in plans:
            if plan.new_columns is None:
                read_at = owner.commit(ChangeSchema(plan.edit, read_at, name=plan.operation))
            else:
                read_at = StoreCore._commit_new_columns(owner, plan, plan.new_columns, read_at)
            log.info("table %s: %s (version %d)", owner.name, plan.operation, read_at.version)
        return read_at.version

    @staticmethod
    def _commit_new_columns(owner: TableOwner, plan: schema_changes.Plan, new_columns: NewColumns,
                            read_at: Manifest) -> Manifest:
        """A schema change adding columns: their files computed fragment by fragment outside the writer's
        lock (again for fragments added before the commit), then one commit."""
        files = ColumnFiles(owner.table, new_columns)

        def prepare(attempt: int) -> ChangeSchema:
            files.cover(owner.table.snapshot())
            return ChangeSchema(plan.edit, read_at, dict(files.done), files.fields_without_fragments,
                                name=plan.operation)

        try:
            committed = owner.commit_prepared(prepare)
        except CommittedNotDurable:
            raise  # committed: its files are the version's
        except BaseException:
            files.discard()
            raise
        files.keep_used(committed)
        return committed

    def tags(self, name: str) -> dict[str, int]:
        return self.owner(name).table.tags()

    def create_tag(self, name: str, tag: str, version: int = 0) -> int:
        table = self.owner(name).table
        version = check_version(version) or table.latest_version()
        table.create_tag(tag, version)
        return version

    def delete_tag(self, name: str, tag: str) -> None:
        self.owner(name).table.delete_tag(tag)


def _check_wanted(still_wanted: StillWanted, undo: Callable[[], None] = lambda: None) -> None:
    if not still_wanted():
        undo()
        raise Cancelled("the caller went away before the change was committed; nothing was committed",
                        reason="CALLER_GONE")


def _present(batches: Iterable[Batch]) -> Iterator[Batch]:
    return (b for b in batches if b.rows is not None and b.rows.num_rows)


def _concat(batches: list[pa.Table], schema: pa.Schema) -> pa.Table:
    if not batches:
        return pa.table({name: pa.array([], type=schema.field(name).type) for name in schema.names})
    if len(batches) == 1:
        return batches[0]
    try:
        return pa.concat_tables(batches, promote_options="permissive")
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise InvalidArgument(f"the batches of rows do not share one schema ({exc})", reason="SCHEMA_MISMATCH") \
            from None
