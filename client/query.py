"""Query builders, LanceDB style: `table.search("dog").where("age > 2").limit(10).to_pandas()` and
`table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().execute(rows)`."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pydantic

from vectorlane import _ops
from vectorlane.store.v1 import store_service_pb2 as pb

if TYPE_CHECKING:
    from vectorlane.embeddings.config import EmbeddingFunctionConfig
    from vectorlane.table import Table

DEFAULT_LIMIT = 10
_QUERY_TYPES = ("auto", "vector", "text", "image")


def _image_bytes(image: Any) -> bytes:
    """A PIL image as PNG bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _is_pil(value: Any) -> bool:
    return type(value).__module__.startswith("PIL.") and hasattr(value, "save")


class Query:
    def __init__(self, table: "Table", query: Any, vector_column: str | None, query_type: str) -> None:
        if query_type not in _QUERY_TYPES:
            raise ValueError(f"query_type must be one of {_QUERY_TYPES}, not {query_type!r}")
        self._table = table
        self._query = query
        self._vector_column = vector_column or ""
        self._query_type = query_type
        self._where = ""
        self._postfilter = False
        self._select: list[str] = []
        self._limit = DEFAULT_LIMIT
        self._offset = 0
        self._metric = ""
        self._nprobes = self._ef = self._refine = 0
        self._range: tuple[float | None, float | None] = (None, None)

    # ----- building -----------------------------------------------------------------------------------
    def where(self, where: str, prefilter: bool = True) -> "Query":
        """A SQL-style filter, applied before the vector search (default) or after it."""
        self._where, self._postfilter = where, not prefilter
        return self

    def select(self, columns: list[str]) -> "Query":
        self._select = list(columns)
        return self

    def limit(self, limit: int) -> "Query":
        if limit is None or limit <= 0:
            raise ValueError("limit must be positive")
        self._limit = int(limit)
        return self

    def offset(self, offset: int) -> "Query":
        if offset < 0:
            raise ValueError("offset must not be negative")
        self._offset = int(offset)
        return self

    def metric(self, metric: str) -> "Query":
        _ops.choice(metric, _ops.METRICS, "metric")
        self._metric = metric
        return self

    distance_type = metric

    def nprobes(self, nprobes: int) -> "Query":
        self._nprobes = int(nprobes)
        return self

    def ef(self, ef: int) -> "Query":
        self._ef = int(ef)
        return self

    def refine_factor(self, refine_factor: int) -> "Query":
        self._refine = int(refine_factor)
        return self

    def distance_range(self, lower_bound: float | None = None, upper_bound: float | None = None) -> "Query":
        self._range = (lower_bound, upper_bound)
        return self

    # ----- running ------------------------------------------------------------------------------------
    def to_arrow(self) -> Any:
        if self._query is None:
            if self._metric or self._nprobes or self._ef or self._refine or self._range != (None, None):
                raise ValueError("vector search options need a query")
            return self._table._run(_ops.read(self._table, self._where, self._select, self._limit,
                                              self._table._checked_out, self._offset))
        return self._table._run(_ops.search(self.to_request()))

    def to_pandas(self) -> Any:
        return self._then(lambda t: t.to_pandas())

    def to_list(self) -> Any:
        return self._then(lambda t: t.to_pylist())

    def to_pydantic(self, model: type[pydantic.BaseModel]) -> Any:
        """The rows as instances of `model` (columns it does not declare, such as `_distance`, left out)."""
        names = set(model.model_fields)
        return self._then(lambda t: [model(**{k: v for k, v in row.items() if k in names}) for row in t.to_pylist()])

    def _then(self, after: Any) -> Any:
        from vectorlane.table import _then
        return _then(self._table._connection, self.to_arrow(), after)

    def to_request(self) -> pb.SearchRequest:
        """The SearchRequest this query sends (what grpcurl would send for it)."""
        request = pb.SearchRequest(table=self._table.name, vector_column=self._vector_column, where=self._where,
                                   postfilter=self._postfilter, select=self._select, limit=self._limit,
                                   offset=self._offset, nprobes=self._nprobes, ef=self._ef,
                                   refine_factor=self._refine, version=self._table._checked_out,
                                   format=pb.ROW_FORMAT_ARROW)
        if self._metric:
            request.metric = _ops.METRICS[self._metric]
        lower, upper = self._range
        if lower is not None:
            request.distance_range.lower = lower
        if upper is not None:
            request.distance_range.upper = upper
        self._set_query(request)
        return request

    def _function(self) -> "EmbeddingFunctionConfig | None":
        configs = self._table.function_configs()
        if self._vector_column:
            return next((c for c in configs if c.vector_column == self._vector_column), None)
        return configs[0] if len(configs) == 1 else None

    def _set_query(self, request: pb.SearchRequest) -> None:
        query, kind = self._query, self._query_type
        if kind == "vector" or (kind == "auto" and isinstance(query, (list, tuple, np.ndarray))):
            request.vector.values.extend(np.asarray(query, dtype=np.float32).reshape(-1).tolist())
            return
        config = self._function()
        if config is not None and config.function.is_local:  # computed here, sent as a vector
            vectors = config.function.compute_query_embeddings(query)
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


class MergeInsertBuilder:
    def __init__(self, table: "Table", on: list[str]) -> None:
        self._table, self._on = table, on
        self._update_all = self._insert_all = self._delete = False
        self._delete_where = ""

    def when_matched_update_all(self) -> "MergeInsertBuilder":
        self._update_all = True
        return self

    def when_not_matched_insert_all(self) -> "MergeInsertBuilder":
        self._insert_all = True
        return self

    def when_not_matched_by_source_delete(self, condition: str | None = None) -> "MergeInsertBuilder":
        self._delete, self._delete_where = True, condition or ""
        return self

    def execute(self, data: Any, on_bad_vectors: str = "error", fill_value: float = 0.0) -> Any:
        """Runs the merge in one new version; returns the store's counts (rows_inserted/updated/deleted)."""
        return self._table._run(_ops.merge_insert(self._table, data, self._on, self._update_all, self._insert_all,
                                                  self._delete, self._delete_where, on_bad_vectors, fill_value))


__all__ = ["DEFAULT_LIMIT", "MergeInsertBuilder", "Query"]
