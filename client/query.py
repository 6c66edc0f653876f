"""Query builders, LanceDB style: `table.search("dog").where("age > 2").limit(10).to_pandas()` and
`table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)`.

Each builder is written once (`QueryBuilder`, `TakeBuilder`, `MergeBuilder`: what the query is, as the
operation that runs it); `Query` / `AsyncQuery` and the others run it, returning results or awaiting them."""

from __future__ import annotations

import copy
import datetime
import io
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TypeVar, cast

import numpy as np
import pyarrow as pa
import pydantic

from vectorlane import _ops, full_text, hybrid
from vectorlane.errors import DeadlineExceededError
from vectorlane.expr import Expr, sql_of
from vectorlane.full_text import (BooleanQuery, BoostQuery, FullTextOperator, FullTextQuery, FullTextQueryType,
                                  MatchQuery, MultiMatchQuery, Occur, PhraseQuery)
from vectorlane.rerankers import FusionReranker, ModelReranker, Reranker, RRFReranker
from vectorlane.query_object import FullTextSearchQuery, QueryObject
from vectorlane.results import MergeResult
from vectorlane_contract.store.v1 import store_service_pb2 as pb

if TYPE_CHECKING:
    import pandas as pd
    import polars as pl

    from vectorlane.embeddings.config import EmbeddingFunctionConfig
    from vectorlane.table import AsyncTable, Table, TableOps

M = TypeVar("M", bound=pydantic.BaseModel)

DEFAULT_LIMIT = 10  # a vector search's, as LanceDB's; a plain read returns every row unless limited
ROW_ID = "_rowid"
DEFAULT_NPROBES = 20  # LanceDB's, when only one of minimum_nprobes / maximum_nprobes is given
_QUERY_TYPES = ("auto", "vector", "text", "image", "fts", "hybrid")
FTS, VECTOR, READ, HYBRID = "fts", "vector", "read", "hybrid"
DEFAULT_HYBRID_LIMIT = 10


def _image_bytes(image: Any) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save")


def seconds(timeout: Any) -> float | None:
    """A call's timeout as seconds: a `datetime.timedelta` (LanceDB's form), a number, or None."""
    if timeout is None:
        return None
    if isinstance(timeout, datetime.timedelta):
        return max(0.0, timeout.total_seconds())
    value = float(timeout)
    if value < 0:
        raise ValueError("a timeout must not be negative")
    return value


def ensure_vector_query(query: Any) -> Any:
    """LanceDB's check of a vector query: a non-empty vector, or a non-empty list of non-empty vectors."""
    if isinstance(query, (list, tuple, np.ndarray)) and (
            len(query) == 0 or (_is_vector_batch(query) and any(len(q) == 0 for q in query))):
        raise ValueError("a query vector must be non-empty")
    return query


def _is_vector_batch(query: Any) -> bool:
    """Whether a query is several vectors (LanceDB's `search([v1, v2, ...])`)."""
    if isinstance(query, np.ndarray):
        return query.ndim == 2
    return (isinstance(query, (list, tuple)) and len(query) > 0
            and all(isinstance(q, (list, tuple, np.ndarray)) for q in query))


def _flattened(table: pa.Table, flatten: bool | int | None) -> pa.Table:
    """LanceDB's `to_pandas(flatten=)`: struct columns split into `parent.child` columns, `flatten` levels
    deep (True: all of them)."""
    levels = 0 if not flatten else (1 << 30 if flatten is True else int(flatten))
    while levels > 0 and any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
        levels -= 1
    return table


def _columns(columns: list[str] | dict[str, str]) -> tuple[list[str], dict[str, str]]:
    """`select`'s argument as (names, computed columns): a dict is LanceDB's {name: SQL expression}."""
    if isinstance(columns, dict):
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
            raise TypeError("select({name: expression}) takes SQL expressions as strings")
        return [], dict(columns)
    if isinstance(columns, str):
        return [columns], {}
    return list(columns), {}


class ColumnOrdering(pydantic.BaseModel):
    """One column of LanceDB's `order_by`: results sorted by it, ascending by default, nulls last."""

    column_name: str
    ascending: bool = True
    nulls_first: bool = False

    def to_proto(self) -> pb.ColumnOrdering:
        return pb.ColumnOrdering(column=self.column_name, descending=not self.ascending, nulls_first=self.nulls_first)


class QueryBuilder:
    """One query: by text, image or vector (`table.search(q)`), several vectors at once
    (`table.search([v1, v2])`, each result row with `query_index`), or none (a plain read of the rows, every
    row unless `limit`). Vector searches return 10 rows unless `limit` says otherwise. `Query` runs it
    (sync), `AsyncQuery` awaits it."""

    def __init__(self, table: "TableOps", query: Any, vector_column: str | None, query_type: str,
                 fts_columns: str | list[str] | None = None, fast_search: bool | None = None) -> None:
        if query_type not in _QUERY_TYPES:
            raise ValueError(f"Unknown query type: {query_type!r} (one of {', '.join(_QUERY_TYPES)})")
        if query_type == FTS and not isinstance(query, (str, FullTextQuery)):
            raise TypeError(f"'fts' query must be a string or FullTextQuery: {type(query)}")
        ensure_vector_query(query)
        self._fts_columns = [fts_columns] if isinstance(fts_columns, str) else list(fts_columns or ())
        self._phrase = False
        self._fast_search = bool(fast_search)
        self._hybrid_vector: Any = None  # a hybrid search's `vector()` and `text()`
        self._hybrid_text: Any = None
        self._reranker: Any = None  # a Reranker (or, for a vector or full-text search, any object like one)
        self._normalize = "score"
        self._rerank_query: str | None = None
        self._table = table
        self._query = query
        self._vector_column = vector_column or ""
        self._query_type = query_type
        self._where = ""
        self._postfilter = False
        self._select: list[str] = []
        self._limit: int | None = DEFAULT_LIMIT if query is not None or query_type == HYBRID else None
        self._offset = 0
        self._metric = ""
        self._nprobes = self._ef = self._refine = 0
        self._min_nprobes: int | None = None
        self._max_nprobes: int | None = None
        self._range: tuple[float | None, float | None] = (None, None)
        self._with_row_id = False
        self._computed: dict[str, str] = {}
        self._exact = False
        self._order_by: list[ColumnOrdering] = []

    # ----- building -----------------------------------------------------------------------------------
    def where(self, where: "str | Expr", prefilter: bool = True) -> Self:
        """A SQL-style filter (or an `Expr`), applied before the vector search (default) or after it. Called
        again, the filters combine with AND."""
        text = sql_of(where)
        self._where = f"({self._where}) AND ({text})" if self._where else text
        self._postfilter = not prefilter
        return self

    def select(self, columns: list[str] | dict[str, str]) -> Self:
        """The columns to return: names, or LanceDB's {name: SQL expression} computed by the store from each
        result row (`{"id2": "id * 2", "title": "title"}`)."""
        self._select, self._computed = _columns(columns)
        return self

    def limit(self, limit: int | None) -> Self:
        """The most rows to return. A vector search needs a positive limit; a plain read takes None (or 0)
        for every row."""
        if limit is None or limit <= 0:
            if self._query is not None:
                raise ValueError("Limit is required for ANN/KNN queries: give a positive limit")
            self._limit = None
            return self
        self._limit = int(limit)
        return self

    def offset(self, offset: int) -> Self:
        if offset < 0:
            raise ValueError("offset must not be negative")
        self._offset = int(offset)
        return self

    def order_by(self, ordering: "list[ColumnOrdering] | None") -> Self:
        """Sort the results by these columns instead of relevance (None: relevance again). A search sorts its
        `limit + offset` best rows (then skips `offset`); a plain read sorts every matching row."""
        given = list(ordering or ())
        if not all(isinstance(o, (ColumnOrdering, dict)) for o in given):
            raise TypeError("order_by takes ColumnOrdering objects")
        self._order_by = [o if isinstance(o, ColumnOrdering) else ColumnOrdering(**o) for o in given]
        return self

    def _orderings(self) -> list[pb.ColumnOrdering]:
        return [o.to_proto() for o in self._order_by]

    def with_row_id(self, with_row_id: bool = True) -> Self:
        """Also return `_rowid`, each row's stable id (what `take_row_ids` takes)."""
        self._with_row_id = bool(with_row_id)
        return self

    def metric(self, metric: str) -> Self:
        metric = metric.lower() if isinstance(metric, str) else metric
        _ops.choice(metric, _ops.METRICS, "metric")
        self._metric = metric
        return self

    distance_type = metric

    def postfilter(self) -> Self:
        """LanceDB's vector-query form of `where(..., prefilter=False)`: filter the nearest rows afterwards."""
        self._postfilter = True
        return self

    def phrase_query(self, phrase_query: bool = True) -> Self:
        """A full-text search's string as one phrase (its words in order; the index needs positions)."""
        self._phrase = bool(phrase_query)
        return self

    def fast_search(self) -> Self:
        """A full-text search of only the rows its index covers, skipping the flat search of rows added
        since the index was built (faster; those rows are missed until `optimize()`)."""
        self._fast_search = True
        return self

    def vector(self, vector: Any) -> Self:
        """A hybrid search's vector half: this vector (or a text embedded by the column's function)."""
        self._hybrid_vector = vector
        return self

    def text(self, text: "str | FullTextQuery") -> Self:
        """A hybrid search's full-text half: this string or query object."""
        self._hybrid_text = text
        return self

    def rerank(self, reranker: Reranker | None = None, normalize: str = "score",
               query_string: str | None = None) -> Self:
        """Reranks the results. A hybrid search's two lists are fused (RRFReranker by default; `normalize`:
        "score" or "rank" makes their scores comparable first): by the store for the rerankers of
        `vectorlane.rerankers`, here for one of your own. A vector or full-text search's results go through
        `reranker.rerank_vector` / `rerank_fts` with the query's text (`query_string` for a vector query)."""
        if normalize not in ("rank", "score") and self._kind() != HYBRID and query_string is None:
            normalize, query_string = "score", normalize  # a vector / FTS query's rerank(reranker, query_string)
        if normalize not in ("rank", "score"):
            raise ValueError("normalize must be 'rank' or 'score'.")
        if reranker is not None and self._kind() == HYBRID and not isinstance(reranker, Reranker):
            raise ValueError("reranker must be an instance of Reranker class.")
        self._reranker = reranker if reranker is not None else RRFReranker()
        self._normalize = normalize
        self._rerank_query = query_string
        if getattr(self._reranker, "score", None) == "all":  # as LanceDB: every score, and the row ids
            self._with_row_id = True
        if self._kind() == VECTOR and query_string is None and not isinstance(self._query, str):
            raise ValueError("reranking a vector search needs the query's text: rerank(reranker, "
                             "query_string=\"...\")")
        return self

    def bypass_vector_index(self) -> Self:
        """Search every row exactly, without the column's index: the true nearest rows, at a full scan's cost."""
        self._exact = True
        return self

    def nprobes(self, nprobes: int) -> Self:
        self._nprobes = int(nprobes)
        self._min_nprobes = self._max_nprobes = None
        return self

    def minimum_nprobes(self, minimum_nprobes: int) -> Self:
        """LanceDB's lower bound on partitions probed; the store probes exactly this many."""
        self._min_nprobes = int(minimum_nprobes)
        return self

    def maximum_nprobes(self, maximum_nprobes: int) -> Self:
        """LanceDB's upper bound on partitions probed (0: no bound); checked against the minimum."""
        self._max_nprobes = int(maximum_nprobes)
        return self

    def ef(self, ef: int) -> Self:
        self._ef = int(ef)
        return self

    def refine_factor(self, refine_factor: int) -> Self:
        self._refine = int(refine_factor)
        return self

    def distance_range(self, lower_bound: float | None = None, upper_bound: float | None = None) -> Self:
        self._range = (lower_bound, upper_bound)
        return self

    # ----- running ------------------------------------------------------------------------------------
    def _rows(self, timeout: Any = None) -> _ops.Op[pa.Table]:
        """The operation that runs the query (`timeout`: seconds or a timedelta for this call); past its
        deadline, DeadlineExceededError in LanceDB's words ("Query timeout")."""
        return _worded_timeout(self._operation(seconds(timeout)))

    def _operation(self, limit: float | None) -> _ops.Op[pa.Table]:
        kind = self._kind()
        if kind == HYBRID:
            return self._hybrid(limit)
        if self._reranker is not None and kind in (FTS, VECTOR) and not isinstance(self._reranker, ModelReranker):
            if self._order_by:
                raise ValueError("order_by with a reranker that runs in this process: sort its results instead")
            return self._reranked(kind, limit)
        if kind == FTS:
            return _ops.search(self._text_request(), timeout=limit)
        if self._query is None:
            if self._metric or self._nprobes or self._ef or self._refine or self._range != (None, None):
                raise ValueError("vector search options need a query")
            return _ops.read(self._table, self._where, self._selected(), self._limit or 0,
                             self._table._checked_out, self._offset, timeout=limit, computed=self._computed,
                             order_by=self._orderings())
        return self._search(limit)

    def _explained(self, verbose: bool, analyze: bool) -> _ops.Op[str]:
        """How the store runs this search (LanceDB's `explain_plan` / `analyze_plan`); a reranker that runs
        in this process is not part of it."""
        kind = self._kind()
        if kind == READ:
            raise ValueError("explain_plan explains a search: give a query, a full-text query or both")
        if kind == HYBRID:
            vector_half, text_half = self._halves()
            reranker = self._reranker or RRFReranker()
            fusion = (reranker.fusion(self._normalize) if isinstance(reranker, FusionReranker) else None) \
                or pb.Fusion()
            request = (yield _ops.Compute(self._hybrid_request, (vector_half, text_half, fusion))) \
                if vector_half._embeds_locally() else self._hybrid_request(vector_half, text_half, fusion)
        elif kind == FTS:
            request = self._text_request()
        else:
            request = (yield _ops.Compute(self.to_request)) if self._embeds_locally() else self.to_request()
        return (yield from _ops.explain(request, verbose, analyze))

    def _search(self, timeout: float | None) -> _ops.Op[pa.Table]:
        if self._embeds_locally():  # the query's vector comes from a local function: off the event loop
            request = yield _ops.Compute(self.to_request)
        else:
            request = self.to_request()
        return (yield from _ops.search(request, timeout=timeout))

    def _reranked(self, kind: str, timeout: float | None) -> _ops.Op[pa.Table]:
        """A vector or full-text search's results through the reranker, here (LanceDB's `rerank`)."""
        rows = yield from (_ops.search(self._text_request(), timeout=timeout) if kind == FTS
                           else self._search(timeout))
        reranker = self._reranker
        query = self._rerank_query if self._rerank_query is not None else self._query
        if kind == FTS:
            results = reranker.rerank_fts(query, rows)
        else:
            results = reranker.rerank_vector(query, rows)
        if not isinstance(results, pa.Table) or "_relevance_score" not in results.column_names:
            raise ValueError("a reranker must return an Arrow table with a _relevance_score column")
        return results

    def _halves(self) -> tuple["QueryBuilder", "QueryBuilder"]:
        """A hybrid search's vector and full-text searches, as LanceDB splits one."""
        if self._query is not None and (self._hybrid_vector is not None or self._hybrid_text is not None):
            raise ValueError("You can either provide a string query in search() method or set `vector()` and "
                             "`text()` explicitly for hybrid search. But not both.")
        vector_query = self._hybrid_vector if self._hybrid_vector is not None else self._query
        if not isinstance(vector_query, (str, list, tuple, np.ndarray)):
            raise ValueError("Vector query must be either a string or a vector")
        text_query = self._hybrid_text or self._query
        if text_query is None:
            raise ValueError("Text query must be provided for hybrid search.")
        if not isinstance(text_query, (str, FullTextQuery)):
            raise ValueError("Text query must be a string or FullTextQuery")
        limit = (self._limit or DEFAULT_HYBRID_LIMIT) + self._offset
        select = [n for n in (self._select or self._table._schema.names) if n != ROW_ID] + [ROW_ID]
        halves = []
        for query, kind in ((vector_query, "text" if isinstance(vector_query, str) else "vector"),
                            (text_query, FTS)):
            half = copy.copy(self)
            half._query, half._query_type, half._reranker = query, kind, None
            half._limit, half._offset, half._select, half._with_row_id = limit, 0, select, False
            if kind == FTS:  # the vector options are the vector half's
                half._metric, half._nprobes, half._ef, half._refine, half._exact = "", 0, 0, 0, False
                half._min_nprobes = half._max_nprobes = None
                half._range = (None, None)
            halves.append(half)
        return halves[0], halves[1]

    def _hybrid(self, timeout: float | None) -> _ops.Op[pa.Table]:
        if self._computed:
            raise ValueError("a hybrid search returns columns: select names, not {name: expression}")
        vector_half, text_half = self._halves()
        reranker = self._reranker or RRFReranker()
        fusion = reranker.fusion(self._normalize) if isinstance(reranker, FusionReranker) else \
            pb.Fusion() if isinstance(reranker, ModelReranker) else None
        keep_row_id = self._with_row_id or ROW_ID in self._select
        if fusion is not None:  # the store fuses: one call
            request = (yield _ops.Compute(self._hybrid_request, (vector_half, text_half, fusion))) \
                if vector_half._embeds_locally() else self._hybrid_request(vector_half, text_half, fusion)
            return (yield from _ops.search(request, timeout=timeout))
        if self._order_by:
            raise ValueError("order_by with a reranker that runs in this process: sort its results instead")
        vector_rows = yield from vector_half._search(timeout)
        text_rows = yield from _ops.search(text_half._text_request(), timeout=timeout)
        return hybrid.combine(vector_rows, text_rows, normalize=self._normalize, query=text_half._query,
                              reranker=reranker, limit=self._limit or DEFAULT_HYBRID_LIMIT, offset=self._offset,
                              keep_row_id=keep_row_id)

    def _hybrid_request(self, vector_half: "QueryBuilder", text_half: "QueryBuilder",
                        fusion: pb.Fusion) -> pb.SearchRequest:
        request = vector_half.to_request()
        request.full_text.CopyFrom(text_half._text_request().full_text)
        request.fast_search = self._fast_search
        request.fusion.CopyFrom(fusion)
        if isinstance(self._reranker, ModelReranker):
            request.rerank.CopyFrom(self._reranker.to_proto(self._rerank_query))
        request.limit, request.offset = self._limit or DEFAULT_HYBRID_LIMIT, self._offset
        del request.select[:]
        request.select.extend(self._selected())
        del request.order_by[:]
        request.order_by.extend(self._orderings())
        return request

    def _kind(self) -> str:
        """What runs the query: a full-text search, a vector search (a text or image embedded first), or a
        plain read. LanceDB's "auto": a string searches by text when the vector column has an embedding
        function, and full-text otherwise; a query object is always full-text."""
        query, kind = self._query, self._query_type
        if kind == HYBRID:
            return HYBRID
        if query is None:
            return READ
        if kind == FTS or isinstance(query, FullTextQuery):
            return FTS
        if kind == "auto" and isinstance(query, str) and self._fts_by_default():
            return FTS
        return VECTOR

    def _fts_by_default(self) -> bool:
        configs = self._table.function_configs()
        if self._vector_column:
            return not any(c.vector_column == self._vector_column for c in configs)
        return not configs

    def _embeds_locally(self) -> bool:
        if self._kind() != VECTOR or self._query_type == "vector" or isinstance(self._query, (list, tuple, np.ndarray)):
            return False
        config = self._function()
        return config is not None and config.function.is_local

    def _empty(self) -> Self:
        """This query with a filter no row passes (what `output_schema` runs)."""
        empty = copy.copy(self)
        empty._where, empty._postfilter = "FALSE", False
        if self._kind() == FTS:  # as LanceDB plans a full-text query's schema: the selected columns
            empty._query, empty._query_type = None, "auto"
        return empty

    def _selected(self) -> list[str]:
        if not self._with_row_id:
            return self._select
        return [*(self._select or ([] if self._computed else self._table._schema.names)), ROW_ID]

    def _probes(self) -> int:
        """The partitions to probe: `nprobes`, or LanceDB's minimum (checked against its maximum; both
        default to nprobes, itself 20 by default)."""
        if self._min_nprobes is None and self._max_nprobes is None:
            return self._nprobes
        base = self._nprobes or DEFAULT_NPROBES
        low = base if self._min_nprobes is None else self._min_nprobes
        high = base if self._max_nprobes is None else self._max_nprobes
        if low <= 0:
            raise ValueError("minimum_nprobes must be greater than 0")
        if high and high < low:
            if self._min_nprobes is None:
                raise ValueError("maximum_nprobes must be greater than or equal to minimum_nprobes")
            raise ValueError("minimum_nprobes must be less than or equal to maximum_nprobes")
        return low

    def _text_request(self) -> pb.SearchRequest:
        if self._metric or self._nprobes or self._ef or self._refine or self._range != (None, None) or self._exact:
            raise ValueError("vector search options (metric, nprobes, ef, refine_factor, distance_range, "
                             "bypass_vector_index) do not apply to a full-text search")
        query = full_text.as_phrase(self._query) if self._phrase else self._query
        request = pb.SearchRequest(table=self._table.name, where=self._where, postfilter=self._postfilter,
                                   select=self._selected(), limit=self._limit or 0, offset=self._offset,
                                   version=self._table._checked_out, format=pb.ROW_FORMAT_ARROW,
                                   full_text=full_text.to_proto(query, self._fts_columns),
                                   fast_search=self._fast_search, order_by=self._orderings())
        request.computed_columns.extend(_ops.computed_columns(self._computed))
        self._set_rerank(request)
        return request

    def _set_rerank(self, request: pb.SearchRequest) -> None:
        """A model reranker goes with the search: the store has the embed service score the results."""
        if isinstance(self._reranker, ModelReranker):
            request.rerank.CopyFrom(self._reranker.to_proto(self._rerank_query))

    def to_request(self) -> pb.SearchRequest:
        """The SearchRequest this query sends (what grpcurl would send for it)."""
        if self._kind() == FTS:
            return self._text_request()
        request = pb.SearchRequest(table=self._table.name, vector_column=self._vector_column, where=self._where,
                                   postfilter=self._postfilter, select=self._selected(), limit=self._limit or 0,
                                   offset=self._offset, nprobes=self._probes(), ef=self._ef,
                                   refine_factor=self._refine, version=self._table._checked_out,
                                   format=pb.ROW_FORMAT_ARROW, order_by=self._orderings())
        request.computed_columns.extend(_ops.computed_columns(self._computed))
        request.bypass_vector_index = self._exact
        if self._metric:
            request.metric = _ops.METRICS[self._metric]
        lower, upper = self._range
        if lower is not None:
            request.distance_range.lower = lower
        if upper is not None:
            request.distance_range.upper = upper
        self._set_query(request)
        self._set_rerank(request)
        return request

    def to_query_object(self) -> QueryObject:
        """LanceDB's serializable description of this query (its `Query` model's fields; None where a setting
        was left alone). A hybrid query has none, as in LanceDB."""
        kind = self._kind()
        if kind == HYBRID:
            raise NotImplementedError("to_query_object not yet supported on a hybrid query")
        common: dict[str, Any] = dict(
            filter=self._where or None, postfilter=True if self._postfilter else None, limit=self._limit,
            offset=self._offset or None, with_row_id=True if self._with_row_id else None,
            columns=dict(self._computed) if self._computed else (list(self._select) or None),
            order_by=list(self._order_by) or None)
        if kind == FTS:
            query = full_text.as_phrase(self._query) if self._phrase else self._query
            return QueryObject(**common, full_text_query=FullTextSearchQuery(query=query,
                                                                             columns=self._fts_columns or None),
                               fast_search=True if self._fast_search else None)
        if kind == READ:
            return QueryObject(**common)
        lower, upper = self._range
        return QueryObject(
            **common, vector_column=self._vector_column or None, vector=self._vector_value(),
            distance_type=self._metric or None,  # nprobes(n) is both bounds, as in LanceDB
            minimum_nprobes=self._min_nprobes if self._min_nprobes is not None else (self._nprobes or None),
            maximum_nprobes=self._max_nprobes if self._max_nprobes is not None else (self._nprobes or None),
            lower_bound=lower, upper_bound=upper, refine_factor=self._refine or None, ef=self._ef or None,
            bypass_vector_index=True if self._exact else None)

    def _vector_value(self) -> list[float] | list[list[float]] | None:
        """The query vector(s) as lists of floats; None for a text or image (embedded by the store)."""
        query, kind = self._query, self._query_type
        if kind in ("auto", "vector") and _is_vector_batch(query):
            return [np.asarray(v, dtype=np.float64).reshape(-1).tolist() for v in query]
        if kind == "vector" or (kind == "auto" and isinstance(query, (list, tuple, np.ndarray))):
            return np.asarray(query, dtype=np.float64).reshape(-1).tolist()
        return None

    def _function(self) -> "EmbeddingFunctionConfig | None":
        configs = self._table.function_configs()
        if self._vector_column:
            return next((c for c in configs if c.vector_column == self._vector_column), None)
        return configs[0] if len(configs) == 1 else None

    def _set_query(self, request: pb.SearchRequest) -> None:
        query, kind = self._query, self._query_type
        if kind in ("auto", "vector") and _is_vector_batch(query):
            for vector in query:
                request.vectors.vectors.add().values.extend(np.asarray(vector, dtype=np.float32).reshape(-1).tolist())
            return
        if kind == "vector" or (kind == "auto" and isinstance(query, (list, tuple, np.ndarray))):
            request.vector.values.extend(np.asarray(query, dtype=np.float32).reshape(-1).tolist())
            return
        config = self._function()
        if config is not None and config.function.is_local:  # computed here, sent as a vector
            vectors = config.function.compute_query_embeddings_with_retry(query)
            request.vector.values.extend(np.asarray(vectors[0], dtype=np.float32).reshape(-1).tolist())
            return
        if _is_pil(query):
            request.image_bytes = _image_bytes(query)
        elif isinstance(query, (bytes, bytearray)):
            request.image_bytes = bytes(query)
        elif isinstance(query, Path):
            request.image_bytes = query.read_bytes()
        elif isinstance(query, str) and kind == "image":
            path = Path(query)
            if path.is_file():  # a local file is read here; anything else is a URI the embed service fetches
                request.image_bytes = path.read_bytes()
            else:
                request.image_uri = query
        elif isinstance(query, str):
            request.text = query
        else:
            raise TypeError(f"cannot search by {type(query).__name__}: use text, an image, bytes, a path or a vector")


def _worded_timeout(operation: _ops.Op[pa.Table]) -> _ops.Op[pa.Table]:
    try:
        return (yield from operation)
    except DeadlineExceededError as exc:
        raise DeadlineExceededError(f"Query timeout ({exc.message})", reason=exc.reason,
                                    metadata=exc.metadata) from None


def _as_models(table: pa.Table, model: type[M]) -> list[M]:
    """Rows as instances of `model`; a field with an alias reads the column of that name (as
    `distance: float = Field(alias="_distance")`), columns it does not declare are left out."""
    keys = {info.alias or name for name, info in model.model_fields.items()}
    return [model.model_validate({k: v for k, v in row.items() if k in keys}) for row in table.to_pylist()]


def _batches(table: pa.Table, batch_size: int | None) -> list[pa.RecordBatch]:
    return list(table.combine_chunks().to_batches(max_chunksize=batch_size))


def _polars(table: pa.Table) -> "pl.DataFrame":
    import polars as pl
    return pl.DataFrame(pl.from_arrow(table))


async def _async_iter(items: list[pa.RecordBatch]) -> AsyncIterator[pa.RecordBatch]:
    for item in items:
        yield item


class _Results:
    """The `to_*` forms of a query's results, run now (`_arrow` is the one call)."""

    def output_schema(self) -> pa.Schema:
        """The schema of this query's results (selected and computed columns, `_distance`, `_rowid`), as the
        store answers the same query with a filter no row passes."""
        return self._empty()._arrow(None).schema  # type: ignore[attr-defined]

    def _arrow(self, timeout: Any) -> pa.Table:
        raise NotImplementedError

    def to_arrow(self, *, timeout: Any = None) -> pa.Table:
        """Runs the query (`timeout`: seconds or a timedelta for this call)."""
        return self._arrow(timeout)

    def to_pandas(self, flatten: bool | int | None = None, *, timeout: Any = None, **kwargs: Any
                  ) -> "pd.DataFrame":
        """The results as pandas; `flatten` splits struct columns into `parent.child` columns, that many
        levels deep (True: all); other keywords go to pyarrow's `Table.to_pandas` (`types_mapper`, ...)."""
        return _flattened(self._arrow(timeout), flatten).to_pandas(**kwargs)

    def to_polars(self, *, timeout: Any = None) -> "pl.DataFrame":
        return _polars(self._arrow(timeout))

    def to_list(self, *, timeout: Any = None) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], self._arrow(timeout).to_pylist())

    def to_batches(self, batch_size: int | None = None, *, timeout: Any = None) -> Iterator[pa.RecordBatch]:
        """The results as Arrow record batches of at most `batch_size` rows."""
        return iter(_batches(self._arrow(timeout), batch_size))

    def to_pydantic(self, model: type[M], *, timeout: Any = None) -> list[M]:
        return _as_models(self._arrow(timeout), model)


class _AsyncResults:
    """The `to_*` forms of a query's results, awaited."""

    async def output_schema(self) -> pa.Schema:
        """The schema of this query's results, as the store answers it with a filter no row passes."""
        return (await self._empty()._arrow(None)).schema  # type: ignore[attr-defined]

    async def _arrow(self, timeout: Any) -> pa.Table:
        raise NotImplementedError

    async def to_arrow(self, *, timeout: Any = None) -> pa.Table:
        return await self._arrow(timeout)

    async def to_pandas(self, flatten: bool | int | None = None, *, timeout: Any = None, **kwargs: Any
                        ) -> "pd.DataFrame":
        return _flattened(await self._arrow(timeout), flatten).to_pandas(**kwargs)

    async def to_polars(self, *, timeout: Any = None) -> "pl.DataFrame":
        return _polars(await self._arrow(timeout))

    async def to_list(self, *, timeout: Any = None) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], (await self._arrow(timeout)).to_pylist())

    async def to_batches(self, batch_size: int | None = None, *, timeout: Any = None
                         ) -> AsyncIterator[pa.RecordBatch]:
        """The results as Arrow record batches, for `async for`."""
        return _async_iter(_batches(await self._arrow(timeout), batch_size))

    async def to_pydantic(self, model: type[M], *, timeout: Any = None) -> list[M]:
        return _as_models(await self._arrow(timeout), model)


class Query(QueryBuilder, _Results):
    """A query of a `Table`, run by its `to_*` methods."""

    _table: "Table"

    def _arrow(self, timeout: Any) -> pa.Table:
        return self._table._run(self._rows(timeout))

    def explain_plan(self, verbose: bool = False) -> str:
        """How the store runs this search: a vector search's steps (FAISS or an exact scan, filters), a
        full-text search's Lance plan, a hybrid search's both (LanceDB's `explain_plan`)."""
        return cast(str, self._table._run(self._explained(verbose, False)))

    def analyze_plan(self) -> str:
        """The plan with what running the search measured (LanceDB's `analyze_plan`)."""
        return cast(str, self._table._run(self._explained(False, True)))


class AsyncQueryBase(QueryBuilder, _AsyncResults):
    """A query of an `AsyncTable`, run by its awaited `to_*` methods (LanceDB's base of its async queries).
    Awaiting the query itself gives it back, so LanceDB's `await table.search(q)` and
    `table.search(q).limit(5)` both work."""

    _table: "AsyncTable"

    async def _arrow(self, timeout: Any) -> pa.Table:
        await self._resolve_auto()
        return await self._table._run(self._rows(timeout))

    async def _resolve_auto(self) -> None:
        """LanceDB's async "auto": a string on a vector column with an embedding function is a hybrid search
        when the function's source column has an FTS index (a vector search otherwise)."""
        if self._query_type != "auto" or not isinstance(self._query, str) or self._kind() != VECTOR:
            return
        config = self._function()
        if config is not None and any(i.index_type == "FTS" and i.columns[:1] == [config.source_column]
                                      for i in await self._table.list_indices()):
            self._query_type = HYBRID

    async def explain_plan(self, verbose: bool = False) -> str:
        return cast(str, await self._table._run(self._explained(verbose, False)))

    async def analyze_plan(self) -> str:
        return cast(str, await self._table._run(self._explained(False, True)))

    def __await__(self) -> Generator[Any, None, Self]:
        return self._itself().__await__()

    async def _itself(self) -> Self:
        """The query awaited (as LanceDB's `await table.search(q)`): of the class its kind has
        (AsyncVectorQuery, AsyncFTSQuery or AsyncHybridQuery), "auto" resolved as LanceDB resolves it."""
        await self._resolve_auto()
        if self._kind() == VECTOR and isinstance(self._query, str) and self._function() is None:
            column = self._vector_column or "vector"
            raise ValueError(f"Column {column!r} has no registered embedding function. "
                             + ("No embedding functions are registered for any columns"
                                if not self._table.function_configs() else "Pass vector_column_name"))
        kind = {VECTOR: AsyncVectorQuery, FTS: AsyncFTSQuery, HYBRID: AsyncHybridQuery}.get(self._kind())
        if kind is None or isinstance(self, kind) or type(self) not in (AsyncQuery, AsyncQueryBase):
            return self
        resolved = copy.copy(self)
        cast(Any, resolved).__class__ = kind
        return resolved


class AsyncQuery(AsyncQueryBase):
    """`AsyncTable.query()` and `search()`: a plain read, or a search by text, image or vector."""

    def _as_hybrid(self, vector: Any, text: Any, columns: Any) -> "AsyncHybridQuery":
        return _as_hybrid_of(self, vector, text, columns)

    def nearest_to(self, vector: Any) -> "AsyncVectorQuery":
        """LanceDB's `table.query().nearest_to(v)`: this query as a search by `vector` (or vectors)."""
        if vector is None:
            raise ValueError("nearest_to needs a query vector, not None")
        if self._kind() == FTS:
            return self._as_hybrid(vector, self._query, self._fts_columns)  # type: ignore[return-value]
        query = AsyncVectorQuery(self._table, vector, self._vector_column or None, "vector")
        built = {k: v for k, v in self.__dict__.items() if k not in ("_query", "_query_type", "_limit")}
        query.__dict__.update(built)  # what was built so far (filters, columns, ...) carries over
        if self._limit is not None:
            query._limit = self._limit
        return query

    def nearest_to_text(self, query: "str | FullTextQuery", columns: str | list[str] | None = None
                        ) -> "AsyncQuery":
        """LanceDB's `table.query().nearest_to_text("puppy")`: this query as a full-text search, or, after
        `nearest_to(v)`, as a hybrid search of both."""
        if self._kind() == VECTOR:
            return self._as_hybrid(self._query, query, columns)
        found = AsyncFTSQuery(self._table, query, None, "fts", fts_columns=columns)
        built = {k: v for k, v in self.__dict__.items()
                 if k not in ("_query", "_query_type", "_limit", "_fts_columns", "_vector_column")}
        found.__dict__.update(built)
        if self._limit is not None:
            found._limit = self._limit
        return found


class AsyncHybridQuery(AsyncQuery):
    """`table.query().nearest_to(v).nearest_to_text(q)`: a hybrid search (LanceDB's name for it)."""


def _as_hybrid_of(query: AsyncQuery, vector: Any, text: Any, columns: Any) -> AsyncHybridQuery:
    found = AsyncHybridQuery(query._table, None, query._vector_column or None, HYBRID, fts_columns=columns)
    carried = {k: v for k, v in query.__dict__.items()
               if k not in ("_query", "_query_type", "_fts_columns", "_hybrid_vector", "_hybrid_text")}
    found.__dict__.update(carried)  # what was built so far (filters, columns, limit, ...) carries over
    found._hybrid_vector, found._hybrid_text = vector, text
    return found


class AsyncFTSQuery(AsyncQuery):
    """`AsyncTable.query().nearest_to_text(q)`: a full-text search (LanceDB's name for it)."""


class AsyncVectorQuery(AsyncQuery):
    """`AsyncTable.vector_search(v)`: a search by vector (LanceDB's name for it)."""


class LanceVectorQueryBuilder(Query):
    """LanceDB's vector query builder, for code that constructs one: `LanceVectorQueryBuilder(table, vector,
    "vector")` is `table.search(vector, vector_column_name="vector")`."""

    def __init__(self, table: "Table", query: Any, vector_column: str, str_query: str | None = None,
                 fast_search: bool | None = None) -> None:
        super().__init__(table, query, vector_column, "vector")


class LanceFtsQueryBuilder(Query):
    """LanceDB's full-text query builder, for code that constructs one: `LanceFtsQueryBuilder(table, "puppy")`
    is `table.search("puppy", query_type="fts")`."""

    def __init__(self, table: "Table", query: "str | FullTextQuery", ordering_field_name: str | None = None,
                 fts_columns: str | list[str] | None = None, fast_search: bool | None = None) -> None:
        super().__init__(table, query, None, "fts", fts_columns=fts_columns, fast_search=fast_search)


class LanceHybridQueryBuilder(Query):
    """LanceDB's hybrid query builder, for code that constructs one or calls its helpers:
    `LanceHybridQueryBuilder(table, "q")` is `table.search("q", query_type="hybrid")`."""

    def __init__(self, table: "Table", query: Any = None, vector_column: str | None = None,
                 fts_columns: str | list[str] | None = None) -> None:
        super().__init__(table, query, vector_column, HYBRID, fts_columns=fts_columns)

    @staticmethod
    def _normalize_scores(scores: pa.Array, invert: bool = False) -> pa.Array:
        return hybrid.normalized(scores, invert)

    @staticmethod
    def _rank(results: pa.Table, column: str, ascending: bool = True) -> pa.Table:
        return hybrid.ranks(results, column, ascending)

    @staticmethod
    def _combine_hybrid_results(fts_results: pa.Table, vector_results: pa.Table, norm: str, fts_query: Any,
                                reranker: Reranker, limit: int, with_row_ids: bool, offset: int | None = None
                                ) -> pa.Table:
        return hybrid.combine(vector_results, fts_results, normalize=norm, query=fts_query, reranker=reranker,
                              limit=limit, offset=offset or 0, keep_row_id=with_row_ids)


class TakeBuilder:
    """Rows by position (`take_offsets`) or by stable row id (`take_row_ids`)."""

    def __init__(self, table: "TableOps", offsets: list[int] | None = None, row_ids: list[int] | None = None
                 ) -> None:
        self._table = table
        self._offsets = None if offsets is None else [int(o) for o in offsets]
        self._row_ids = None if row_ids is None else [int(i) for i in row_ids]
        self._select: list[str] = []
        self._computed: dict[str, str] = {}
        self._with_row_id = False

    def select(self, columns: list[str] | dict[str, str]) -> Self:
        self._select, self._computed = _columns(columns)
        return self

    def with_row_id(self, with_row_id: bool = True) -> Self:
        self._with_row_id = bool(with_row_id)
        return self

    def _empty(self) -> Self:
        empty = copy.copy(self)
        empty._offsets, empty._row_ids = [], None
        return empty

    def _rows(self, timeout: Any) -> _ops.Op[pa.Table]:
        every = [] if self._computed else self._table._schema.names
        select = [*(self._select or every), ROW_ID] if self._with_row_id else self._select
        return _ops.take(self._table, select, self._offsets, self._row_ids, seconds(timeout), self._computed)


class TakeQuery(TakeBuilder, _Results):
    _table: "Table"

    def _arrow(self, timeout: Any) -> pa.Table:
        return self._table._run(self._rows(timeout))


class AsyncTakeQuery(TakeBuilder, _AsyncResults):
    _table: "AsyncTable"

    async def _arrow(self, timeout: Any) -> pa.Table:
        return await self._table._run(self._rows(timeout))


class MergeBuilder:
    """LanceDB's `merge_insert(on)` builder: what happens to matched, new and vanished rows."""

    def __init__(self, table: "TableOps", on: list[str]) -> None:
        self._table, self._on = table, on
        self._update_all = self._insert_all = self._delete = False
        self._update_where = self._delete_where = ""

    def when_matched_update_all(self, where: "str | Expr | None" = None) -> Self:
        """Matched rows are replaced by the new ones; with `where`, only pairs for which it holds (it names
        the existing row's columns as `target.<column>` and the new row's as `source.<column>`)."""
        self._update_all, self._update_where = True, sql_of(where)
        return self

    def when_not_matched_insert_all(self) -> Self:
        self._insert_all = True
        return self

    def when_not_matched_by_source_delete(self, condition: "str | Expr | None" = None) -> Self:
        self._delete, self._delete_where = True, sql_of(condition)
        return self

    def _merge(self, new_data: Any, on_bad_vectors: str, fill_value: float, timeout: Any) -> _ops.Op[MergeResult]:
        try:
            return (yield from _ops.merge_insert(self._table, new_data, self._on, self._update_all, self._insert_all,
                                                 self._delete, self._delete_where, on_bad_vectors, fill_value,
                                                 self._update_where, seconds(timeout)))
        except DeadlineExceededError as exc:  # LanceDB's words for it
            raise DeadlineExceededError(f"merge insert timed out ({exc.message})", reason=exc.reason,
                                        metadata=exc.metadata) from None


class MergeInsertBuilder(MergeBuilder):
    _table: "Table"

    def execute(self, new_data: Any, on_bad_vectors: str = "error", fill_value: float = 0.0,
                timeout: Any = None) -> MergeResult:
        """Runs the merge in one new version (version, num_inserted_rows, num_updated_rows,
        num_deleted_rows). `timeout`: seconds or a timedelta for the call."""
        return self._table._run(self._merge(new_data, on_bad_vectors, fill_value, timeout))


class AsyncMergeInsertBuilder(MergeBuilder):
    _table: "AsyncTable"

    async def execute(self, new_data: Any, on_bad_vectors: str = "error", fill_value: float = 0.0,
                      timeout: Any = None) -> MergeResult:
        return await self._table._run(self._merge(new_data, on_bad_vectors, fill_value, timeout))


__all__ = ["DEFAULT_LIMIT", "AsyncFTSQuery", "AsyncHybridQuery", "AsyncMergeInsertBuilder", "AsyncQuery",
           "AsyncQueryBase", "AsyncTakeQuery", "AsyncVectorQuery", "BooleanQuery", "BoostQuery", "ColumnOrdering",
           "FullTextOperator", "FullTextQuery", "FullTextQueryType", "FullTextSearchQuery", "LanceFtsQueryBuilder",
           "LanceHybridQueryBuilder", "LanceVectorQueryBuilder", "MatchQuery", "MergeBuilder", "MergeInsertBuilder",
           "MultiMatchQuery", "Occur", "PhraseQuery", "Query", "QueryBuilder", "QueryObject", "TakeBuilder",
           "TakeQuery", "ensure_vector_query", "seconds"]
