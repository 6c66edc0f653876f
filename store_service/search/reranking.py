"""A search's results reranked by a model of the embed service (LanceDB's CrossEncoderReranker and the other
model rerankers): each result's text in `column` is scored against the query's text, the scores become
`_relevance_score`, and the rows are ordered by it, highest first (ties keep the search's order).
`_distance` and `_score` go unless `return_all_scores`, as LanceDB's `return_score="relevance"` drops them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.schema import FunctionConfig
from store_service.search.full_text import SCORE
from store_service.search.hybrid import RELEVANCE
from store_service.search.vector_search import DISTANCE

DEFAULT_COLUMN = "text"
MAX_DOCUMENTS = 1000  # results one rerank scores (the embed service's --max-rerank-documents by default)
MAX_QUERY_BYTES = 65_536
MAX_TEXT_CHARS = 64 * 512  # of each result's text sent: 64 characters per token of a 512-token window
Scorer = Callable[[FunctionConfig, str, list[str]], np.ndarray]


@dataclass(frozen=True)
class Reranking:
    function: FunctionConfig
    column: str = DEFAULT_COLUMN
    query: str = ""  # empty: the search's own text
    return_all_scores: bool = False

    def query_for(self, search_text: str | None) -> str:
        """The text the results are scored against."""
        text = self.query or search_text
        if text and len(text.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES:
            text = text.encode("utf-8", "surrogatepass")[:MAX_QUERY_BYTES].decode("utf-8", "ignore")
        if not text:
            raise InvalidArgument("reranking needs the query's text: a vector search's rerank names it "
                                  "(`rerank.query`)", reason="MISSING_RERANK_QUERY")
        return text

    def check_count(self, results: int) -> None:
        """RERANK_TOO_MANY before searching when the search may return more results than one rerank scores."""
        if results > MAX_DOCUMENTS:
            raise InvalidArgument(f"a reranked search scores at most {MAX_DOCUMENTS} results; this one may return "
                                  f"{results} (a hybrid search's two lists count twice)", reason="RERANK_TOO_MANY",
                                  limit=MAX_DOCUMENTS)
        if len(self.query.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES:
            raise InvalidArgument(f"the rerank query holds more than {MAX_QUERY_BYTES} bytes",
                                  reason="QUERY_TOO_LONG", limit=MAX_QUERY_BYTES)

    def check(self, schema: pa.Schema) -> None:
        if self.column not in schema.names:
            raise InvalidArgument(f"rerank column {self.column!r} is not in the table", reason="UNKNOWN_COLUMN",
                                  column=self.column)
        kind = schema.field(self.column).type
        if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
            raise InvalidArgument(f"rerank column {self.column!r} holds {kind}; it must hold text",
                                  reason="INVALID_COLUMN_TYPE", column=self.column)


def with_column(select: tuple[str, ...], reranking: Reranking | None) -> tuple[str, ...]:
    """The columns a search reads so that its results can be reranked (its own, and the scored one)."""
    if reranking is None or not select or reranking.column in select:
        return select
    return (*select, reranking.column)


def rerank(rows: pa.Table, reranking: Reranking, query: str, score: Scorer, *,
           keep: tuple[str, ...] | None = None) -> pa.Table:
    """`rows` scored and reordered; `keep`: the columns asked for (the scored one is dropped if not)."""
    texts = ["" if text is None else str(text)[:MAX_TEXT_CHARS] for text in rows.column(reranking.column).to_pylist()]
    scores = score(reranking.function, query, texts) if texts else np.empty(0, dtype=np.float32)
    order = np.argsort(-scores, kind="stable")
    ranked = rows.take(pa.array(order, type=pa.int64()))
    ranked = ranked.append_column(pa.field(RELEVANCE, pa.float32()), pa.array(scores[order], type=pa.float32()))
    dropped = [] if reranking.return_all_scores else [DISTANCE, SCORE]
    if keep and reranking.column not in keep:
        dropped.append(reranking.column)
    return ranked.drop_columns([n for n in dropped if n in ranked.column_names])
