"""LanceDB's query object (`builder.to_query_object()`): a plain, serializable description of a query, with
LanceDB's field names and its convention that a setting left alone is None. What is sent to the store is
`to_request()`'s SearchRequest; this is the same query as LanceDB code reads it (to log it, compare it, or
check what `phrase_query()` made of the text)."""

from __future__ import annotations

from typing import Any, Union

import pydantic

from vectorlane.full_text import FullTextQuery


class FullTextSearchQuery(pydantic.BaseModel):
    """A full-text search: the string (a match of its words, or a phrase when quoted) or query object, and
    the columns to search (None: the table's one FTS index)."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    columns: list[str] | None = None
    query: Union[str, FullTextQuery]


class QueryObject(pydantic.BaseModel):
    """LanceDB's `Query` model (vectorlane's `Query` is the runnable sync query, hence the name). A vector
    search by text or image has `vector` None: the store embeds it."""

    model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)

    vector_column: str | None = None
    vector: list[float] | list[list[float]] | None = None
    filter: str | None = None
    postfilter: bool | None = None
    full_text_query: FullTextSearchQuery | None = None
    limit: int | None = None
    offset: int | None = None
    distance_type: str | None = None
    columns: list[str] | dict[str, str] | None = None
    minimum_nprobes: int | None = None
    maximum_nprobes: int | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    refine_factor: int | None = None
    ef: int | None = None
    with_row_id: bool | None = None
    fast_search: bool | None = None
    bypass_vector_index: bool | None = None
    order_by: list[Any] | None = None
