"""Full-text search (BM25) over one table version, on Lance's inverted indexes (`indexes/text_index.py`).

A query is LanceDB's: its string form (`Terms`: words matched in the table's FTS-indexed column, a
"quoted" string a phrase) or one of its query objects (Match, Phrase, Boost, MultiMatch, Boolean). Lance
scores the rows with BM25 over the indexed rows and, unless `fast_search`, the rows added since the index was
built (searched flat); deleted rows never come back. Results are ranked by `_score`, highest first.

`where` runs before the search (Lance's prefilter, the default) or on its top rows (`postfilter`), as
LanceDB runs it; the expression gate judges it first. The query is bounded here (`check`): nesting depth,
number of queries, bytes of terms, fuzzy expansion; Lance's refusals (a phrase on an index without
positions, an unknown language) answer INVALID_ARGUMENT.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Union

import lance
import lance.query as lq
import pyarrow as pa

from store_service.errors import FailedPrecondition, InvalidArgument, ServiceError, StorageFailed
from store_service.indexes import text_index
from store_service.storage import lance_errors
from store_service.storage.fragments import ROW_ID

if TYPE_CHECKING:
    from store_service.search.table_view import TableView

SCORE = "_score"
MAX_DEPTH = 8  # queries nested in boolean and boost queries
MAX_QUERIES = 64  # queries in one, nested ones included
MAX_TERMS_BYTES = 4096  # of one query's terms
MAX_COLUMNS = 64  # of a multi-match query or a string query
MAX_EXPANSIONS = 1000  # terms a fuzzy term may expand to
MAX_SLOP = 1000
MAX_FUZZINESS = 2  # Lance's fuzzy matching (Levenshtein automata) goes to 2 edits
AUTO_FUZZINESS = -1  # LanceDB's fuzziness=None: by term length
OPERATORS = ("OR", "AND")
OCCURS = ("SHOULD", "MUST", "MUST_NOT")


@dataclass(frozen=True)
class Terms:
    """LanceDB's string query: `text` searched in `columns` (none: every FTS-indexed column)."""

    text: str
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    terms: str
    column: str
    boost: float = 1.0
    fuzziness: int = 0  # AUTO_FUZZINESS: by term length
    max_expansions: int = 50
    operator: str = "OR"
    prefix_length: int = 0


@dataclass(frozen=True)
class Phrase:
    terms: str
    column: str
    slop: int = 0


@dataclass(frozen=True)
class Boost:
    positive: "TextQuery"
    negative: "TextQuery"
    negative_boost: float = 0.5


@dataclass(frozen=True)
class MultiMatch:
    terms: str
    columns: tuple[str, ...]
    boosts: tuple[float, ...] = ()
    operator: str = "OR"


@dataclass(frozen=True)
class Boolean:
    clauses: tuple[tuple[str, "TextQuery"], ...]  # (occur, query)


TextQuery = Union[Terms, Match, Phrase, Boost, MultiMatch, Boolean]


@dataclass(frozen=True)
class TextSearch:
    """What a full-text search returns, given its query."""

    where: str = ""
    postfilter: bool = False
    select: tuple[str, ...] = ()
    limit: int = 10
    offset: int = 0
    fast_search: bool = False


def check(query: TextQuery) -> None:
    """INVALID_ARGUMENT FULL_TEXT_QUERY_TOO_LARGE / INVALID_FULL_TEXT_QUERY unless `query` is within bounds."""
    count = 0
    pending: list[tuple[TextQuery, int]] = [(query, 1)]
    while pending:
        item, depth = pending.pop()
        count += 1
        if count > MAX_QUERIES:
            raise InvalidArgument(f"the full-text query holds more than {MAX_QUERIES} queries",
                                  reason="FULL_TEXT_QUERY_TOO_LARGE", limit=MAX_QUERIES)
        if depth > MAX_DEPTH:
            raise InvalidArgument(f"the full-text query nests deeper than {MAX_DEPTH}",
                                  reason="FULL_TEXT_QUERY_TOO_LARGE", limit=MAX_DEPTH)
        _check_one(item)
        pending.extend((child, depth + 1) for child in _children(item))


def _children(query: TextQuery) -> Iterator[TextQuery]:
    if isinstance(query, Boost):
        yield query.positive
        yield query.negative
    elif isinstance(query, Boolean):
        yield from (child for _, child in query.clauses)


def _invalid(message: str, **metadata: object) -> InvalidArgument:
    return InvalidArgument(message, reason="INVALID_FULL_TEXT_QUERY", **{k: str(v) for k, v in metadata.items()})


def _check_one(query: TextQuery) -> None:
    terms = getattr(query, "terms", None) if not isinstance(query, Terms) else query.text
    if terms is not None:
        if len(terms.encode("utf-8", "surrogatepass")) > MAX_TERMS_BYTES:
            raise InvalidArgument(f"a full-text query's terms hold more than {MAX_TERMS_BYTES} bytes",
                                  reason="FULL_TEXT_QUERY_TOO_LARGE", limit=MAX_TERMS_BYTES)
        if not terms.strip():
            raise _invalid("a full-text query needs terms")
    columns = query.columns if isinstance(query, (Terms, MultiMatch)) else \
        (query.column,) if isinstance(query, (Match, Phrase)) else ()
    if len(columns) > MAX_COLUMNS:
        raise InvalidArgument(f"a full-text query names more than {MAX_COLUMNS} columns",
                              reason="FULL_TEXT_QUERY_TOO_LARGE", limit=MAX_COLUMNS)
    if isinstance(query, (Match, Phrase)) and not query.column:
        raise _invalid(f"a {type(query).__name__.lower()} query needs a column")
    if isinstance(query, Match):
        if not (query.fuzziness == AUTO_FUZZINESS or 0 <= query.fuzziness <= MAX_FUZZINESS):
            raise _invalid(f"fuzziness must be 0 to {MAX_FUZZINESS} (or automatic); got {query.fuzziness}",
                           field="fuzziness")
        if not 0 <= query.max_expansions <= MAX_EXPANSIONS:
            raise _invalid(f"max_expansions must be 0 to {MAX_EXPANSIONS}; got {query.max_expansions}",
                           field="max_expansions")
        if not 0 <= query.prefix_length <= MAX_TERMS_BYTES:
            raise _invalid(f"prefix_length must be 0 to {MAX_TERMS_BYTES}; got {query.prefix_length}",
                           field="prefix_length")
        _check_number(query.boost, "boost")
    if isinstance(query, Phrase) and not 0 <= query.slop <= MAX_SLOP:
        raise _invalid(f"slop must be 0 to {MAX_SLOP}; got {query.slop}", field="slop")
    if isinstance(query, Boost):
        _check_number(query.negative_boost, "negative_boost")
    if isinstance(query, MultiMatch):
        if not query.columns:
            raise _invalid("a multi-match query needs columns")
        if query.boosts and len(query.boosts) != len(query.columns):
            raise _invalid(f"a multi-match query has {len(query.boosts)} boosts for {len(query.columns)} columns")
        for boost in query.boosts:
            _check_number(boost, "boosts")
    if isinstance(query, (Match, MultiMatch)) and query.operator not in OPERATORS:
        raise _invalid(f"unknown operator {query.operator!r}")
    if isinstance(query, Boolean):
        if not query.clauses:
            raise _invalid("a boolean query needs clauses")
        if any(occur not in OCCURS for occur, _ in query.clauses):
            raise _invalid("a boolean clause's occur is SHOULD, MUST or MUST_NOT")
        if all(occur == "MUST_NOT" for occur, _ in query.clauses):
            raise _invalid("a boolean query needs a SHOULD or MUST clause besides MUST_NOT ones")


def _check_number(value: float, name: str) -> None:
    if not (value == value and abs(value) <= 1e6):  # NaN fails the first comparison
        raise _invalid(f"{name} must be a finite number up to 1e6 in size; got {value}", field=name)


def columns_of(query: TextQuery) -> set[str]:
    """The columns a query names (a string query without columns names none)."""
    found: set[str] = set()
    pending = [query]
    while pending:
        item = pending.pop()
        if isinstance(item, (Terms, MultiMatch)):
            found.update(item.columns)
        elif isinstance(item, (Match, Phrase)):
            found.add(item.column)
        pending.extend(_children(item))
    return found


def resolve(query: TextQuery, indexed: Sequence[str]) -> TextQuery:
    """`query` with a string query's columns filled in, after checking that every column it names has an FTS
    index (`indexed`: the version's FTS-indexed columns)."""
    if not indexed:
        raise FailedPrecondition("Cannot perform full text search unless an INVERTED index has been created: the "
                                 "table has no full-text (FTS) index; create one with create_fts_index(column)",
                                 reason="NO_FTS_INDEX")
    missing = sorted(columns_of(query) - set(indexed))
    if missing:
        raise FailedPrecondition(f"column {missing[0]!r} has no full-text (FTS) index; indexed: "
                                 f"{', '.join(sorted(indexed))}", reason="NO_FTS_INDEX", column=missing[0])
    if isinstance(query, Terms) and not query.columns:
        return Terms(query.text, tuple(indexed))  # as LanceDB: every FTS-indexed column
    return query


def to_lance(query: TextQuery) -> object:
    """The query as Lance's scanner takes it."""
    if isinstance(query, Terms):
        return {"query": query.text, "columns": list(query.columns)}
    if isinstance(query, Match):
        return lq.MatchQuery(query.terms, query.column, boost=query.boost,
                             fuzziness=None if query.fuzziness == AUTO_FUZZINESS else query.fuzziness,  # type: ignore[arg-type]
                             max_expansions=query.max_expansions, operator=lq.FullTextOperator(query.operator),
                             prefix_length=query.prefix_length)
    if isinstance(query, Phrase):
        return lq.PhraseQuery(query.terms, query.column, slop=query.slop)
    if isinstance(query, Boost):
        return lq.BoostQuery(to_lance(query.positive), to_lance(query.negative),  # type: ignore[arg-type]
                             negative_boost=query.negative_boost)
    if isinstance(query, MultiMatch):
        return lq.MultiMatchQuery(query.terms, list(query.columns), boosts=list(query.boosts) or None,
                                  operator=lq.FullTextOperator(query.operator))
    return lq.BooleanQuery([(lq.Occur(occur), to_lance(child)) for occur, child in query.clauses])  # type: ignore[misc]


def search(view: TableView, query: TextQuery, request: TextSearch, *, where: str | None) -> pa.Table:
    """The rows of the view's version that match `query`, with the selected columns (every column when none)
    and `_score`, highest first; `where`: the judged filter's text (None without one). The FTS indexes'
    files and the result rows' data files are checked against their checksums (once per process)."""
    names, scanner = _scanner(view, query, request, where)
    if scanner is None:
        schema = view.snapshot.schema
        return pa.schema([*(schema.field(n) if n != ROW_ID else pa.field(ROW_ID, pa.int64()) for n in names),
                          pa.field(SCORE, pa.float32())]).empty_table()
    with _lance_failures(view):
        found = scanner.to_table()
    row_ids = found.column(ROW_ID).cast(pa.int64())
    view.check_rows(row_ids.to_numpy())
    found = found.set_column(found.schema.get_field_index(ROW_ID), ROW_ID, row_ids)
    return found.select([*names, SCORE])  # the row ids as the vector search gives them


def explain(view: TableView, query: TextQuery, request: TextSearch, *, where: str | None, verbose: bool,
            analyze: bool) -> str:
    """Lance's plan for the search (`analyze`: run, with its metrics)."""
    _, scanner = _scanner(view, query, request, where)
    if scanner is None:
        return "EmptyExec: limit 0"
    with _lance_failures(view):
        plan = str(scanner.analyze_plan() if analyze else scanner.explain_plan(verbose))
    shown = f"<table {view.snapshot.table.name}>"  # not where the store keeps it
    where = str(view.snapshot.dataset.uri).rstrip("/")
    for spelling in (where, where.lstrip("/"), where.split("://", 1)[-1]):
        if spelling:
            plan = plan.replace(f"uri={spelling}/data", f"uri={shown}").replace(spelling, shown)
    return _STORAGE_URI.sub(f"uri={shown}", plan)


_STORAGE_URI = re.compile(r"uri=(?!<table )[^,\n]+")


def _scanner(view: TableView, query: TextQuery, request: TextSearch, where: str | None
             ) -> tuple[list[str], lance.LanceScanner | None]:
    """The result's columns and Lance's scanner for the search (None when it asks for no rows), after the
    query, the columns and the FTS indexes' files are checked."""
    check(query)
    snapshot = view.snapshot
    indexes = text_index.entries(snapshot)
    query = resolve(query, [e.column for e in indexes])
    for entry in indexes:
        snapshot.table.checksums.verify_folder(f"{text_index.INDICES_DIR}/{entry.uuid}", "INDEX_CORRUPT")
    schema = snapshot.schema
    names = list(request.select) or schema.names
    for name in names:
        if name != ROW_ID and name not in schema.names:
            raise InvalidArgument(f"selected column {name!r} is not in the table", reason="UNKNOWN_COLUMN",
                                  column=name)
    if request.limit + request.offset == 0:
        return names, None
    with _lance_failures(view):
        scanner = snapshot.dataset.scanner(
            columns=[*(n for n in names if n != ROW_ID), SCORE], full_text_query=to_lance(query), filter=where,
            prefilter=bool(where) and not request.postfilter, limit=request.limit, offset=request.offset or None,
            with_row_id=True, fast_search=request.fast_search)
    return names, scanner


@contextlib.contextmanager
def _lance_failures(view: TableView) -> Iterator[None]:
    """Lance failing a search: unreadable files as STORAGE_FAILED, anything else as INVALID_FULL_TEXT_QUERY."""
    table = view.snapshot.table
    try:
        yield
    except ServiceError:
        raise
    except OSError as exc:  # the index's or the rows' files unreadable: storage, not the query
        raise StorageFailed(f"table {table.name!r}: the full-text search could not read its files "
                            f"({table.shown(exc)})", table=table.name) from None
    except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        text = lance_errors.without_location(table.shown(exc))
        raise InvalidArgument(f"Lance cannot run this full-text search ({text[:300]})",
                              reason="INVALID_FULL_TEXT_QUERY") from None
