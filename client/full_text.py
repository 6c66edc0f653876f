"""LanceDB's full-text query objects (`lancedb.query.MatchQuery` and the others), as the store takes them:
`table.search(MatchQuery("puppy", "text", fuzziness=1)).limit(5).to_pandas()`. Combine queries with `&` (both
must match) and `|` (either may). They are sent as the contract's `FullTextQuery` and run by the store over
its FTS indexes (Lance's BM25 inverted index)."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Union

from vectorlane_contract.store.v1 import store_service_pb2 as pb


class FullTextQueryType(str, Enum):
    MATCH = "match"
    MATCH_PHRASE = "match_phrase"
    BOOST = "boost"
    MULTI_MATCH = "multi_match"
    BOOLEAN = "boolean"


class FullTextOperator(str, Enum):
    AND = "AND"
    OR = "OR"


class Occur(str, Enum):
    SHOULD = "SHOULD"
    MUST = "MUST"
    MUST_NOT = "MUST_NOT"


_OPERATORS = {FullTextOperator.OR: pb.FULL_TEXT_OPERATOR_OR, FullTextOperator.AND: pb.FULL_TEXT_OPERATOR_AND}
_OCCURS = {Occur.SHOULD: pb.OCCUR_SHOULD, Occur.MUST: pb.OCCUR_MUST, Occur.MUST_NOT: pb.OCCUR_MUST_NOT}


class FullTextQuery(ABC):
    """A full-text query object."""

    @abstractmethod
    def query_type(self) -> FullTextQueryType: ...

    @abstractmethod
    def to_proto(self) -> pb.FullTextQuery:
        """The query as the contract's message (what the store receives)."""

    @abstractmethod
    def _json(self) -> dict[str, Any]:
        """The query in LanceDB's JSON layout (Lance's query serde)."""

    def to_json(self) -> str:
        """The query as LanceDB writes it: `{"match": {"column": ..., "terms": ..., ...}}`."""
        return json.dumps(self._json(), separators=(",", ":"))

    def __and__(self, other: "FullTextQuery") -> "FullTextQuery":
        return BooleanQuery([(Occur.MUST, self), (Occur.MUST, other)])

    def __or__(self, other: "FullTextQuery") -> "FullTextQuery":
        return BooleanQuery([(Occur.SHOULD, self), (Occur.SHOULD, other)])


@dataclass
class MatchQuery(FullTextQuery):
    """Rows whose `column` holds the words of `query` (any of them, or all with `operator=AND`); `fuzziness`
    edits per term (None: by term length)."""

    query: str
    column: str
    boost: float = field(default=1.0, kw_only=True)
    fuzziness: int | None = field(default=0, kw_only=True)
    max_expansions: int = field(default=50, kw_only=True)
    operator: FullTextOperator = field(default=FullTextOperator.OR, kw_only=True)
    prefix_length: int = field(default=0, kw_only=True)

    def query_type(self) -> FullTextQueryType:
        return FullTextQueryType.MATCH

    def _json(self) -> dict[str, Any]:
        return {"match": {"column": self.column, "terms": self.query, "boost": float(self.boost),
                          "fuzziness": self.fuzziness, "max_expansions": self.max_expansions,
                          "operator": FullTextOperator(self.operator).value.capitalize(),
                          "prefix_length": self.prefix_length}}

    def to_proto(self) -> pb.FullTextQuery:
        return pb.FullTextQuery(match=pb.MatchQuery(
            terms=self.query, column=self.column, boost=self.boost,
            fuzziness=-1 if self.fuzziness is None else self.fuzziness, max_expansions=self.max_expansions,
            operator=_OPERATORS[FullTextOperator(self.operator)], prefix_length=self.prefix_length))


@dataclass
class PhraseQuery(FullTextQuery):
    """Rows whose `column` holds the words of `query` in order, at most `slop` other words between them (the
    index needs `with_position=True`)."""

    query: str
    column: str
    slop: int = field(default=0, kw_only=True)

    def query_type(self) -> FullTextQueryType:
        return FullTextQueryType.MATCH_PHRASE

    def _json(self) -> dict[str, Any]:
        return {"phrase": {"column": self.column, "terms": self.query, "slop": self.slop}}

    def to_proto(self) -> pb.FullTextQuery:
        return pb.FullTextQuery(phrase=pb.PhraseQuery(terms=self.query, column=self.column, slop=self.slop))


@dataclass
class BoostQuery(FullTextQuery):
    """`positive`'s rows, the score of those `negative` matches too multiplied by `negative_boost`."""

    positive: FullTextQuery
    negative: FullTextQuery
    negative_boost: float = field(default=0.5, kw_only=True)

    def query_type(self) -> FullTextQueryType:
        return FullTextQueryType.BOOST

    def _json(self) -> dict[str, Any]:
        return {"boost": {"positive": self.positive._json(), "negative": self.negative._json(),
                          "negative_boost": float(self.negative_boost)}}

    def to_proto(self) -> pb.FullTextQuery:
        return pb.FullTextQuery(boost=pb.BoostQuery(positive=self.positive.to_proto(),
                                                    negative=self.negative.to_proto(),
                                                    negative_boost=self.negative_boost))


@dataclass
class MultiMatchQuery(FullTextQuery):
    """The words of `query` matched in each of `columns` (`boosts`: one factor per column)."""

    query: str
    columns: list[str]
    boosts: list[float] | None = field(default=None, kw_only=True)
    operator: FullTextOperator = field(default=FullTextOperator.OR, kw_only=True)

    def query_type(self) -> FullTextQueryType:
        return FullTextQueryType.MULTI_MATCH

    def _json(self) -> dict[str, Any]:
        return {"multi_match": {"query": self.query, "columns": list(self.columns),
                                "boost": [float(b) for b in self.boosts or [1.0] * len(self.columns)]}}

    def to_proto(self) -> pb.FullTextQuery:
        return pb.FullTextQuery(multi_match=pb.MultiMatchQuery(
            terms=self.query, columns=list(self.columns), boosts=list(self.boosts or ()),
            operator=_OPERATORS[FullTextOperator(self.operator)]))


@dataclass
class BooleanQuery(FullTextQuery):
    """Queries combined: every MUST one matches, no MUST_NOT one does, SHOULD ones add to the score."""

    queries: list[tuple[Occur, FullTextQuery]]

    def query_type(self) -> FullTextQueryType:
        return FullTextQueryType.BOOLEAN

    def _json(self) -> dict[str, Any]:
        return {"boolean": {kind: [q._json() for occur, q in self.queries if Occur(occur).value == name]
                            for kind, name in (("should", "SHOULD"), ("must", "MUST"), ("must_not", "MUST_NOT"))}}

    def to_proto(self) -> pb.FullTextQuery:
        return pb.FullTextQuery(boolean=pb.BooleanQuery(clauses=[
            pb.BooleanClause(occur=_OCCURS[Occur(occur)], query=query.to_proto()) for occur, query in self.queries]))


TextQuery = Union[str, FullTextQuery]


def to_proto(query: TextQuery, columns: list[str] | None = None) -> pb.FullTextQuery:
    """A string query (searched in `columns`, or every FTS-indexed column) or a query object."""
    if isinstance(query, FullTextQuery):
        return query.to_proto()
    if not isinstance(query, str):
        raise TypeError(f"a full-text query is a string or a FullTextQuery, not {type(query).__name__}")
    return pb.FullTextQuery(text=query, columns=list(columns or ()))


def as_phrase(query: TextQuery) -> TextQuery:
    """LanceDB's `phrase_query()`: an unquoted string wrapped in quotes; a PhraseQuery as it is."""
    if isinstance(query, str):
        return query if query.startswith('"') and query.endswith('"') and len(query) > 1 else f'"{query}"'
    if isinstance(query, PhraseQuery):
        return query
    raise TypeError(f"phrase_query() requires a string or PhraseQuery, got {type(query).__name__}")


__all__ = ["BooleanQuery", "BoostQuery", "FullTextOperator", "FullTextQuery", "FullTextQueryType", "MatchQuery",
           "MultiMatchQuery", "Occur", "PhraseQuery", "TextQuery", "as_phrase", "to_proto"]
