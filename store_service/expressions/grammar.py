"""SQL-style filters compiled to pyarrow compute expressions with a real parser (lark), never eval.

    price < 10 AND (category IN ('a', 'b') OR NOT title LIKE 'x%') AND note IS NOT NULL

Comparisons (= == != <> < <= > >=), AND / OR / NOT, IN (...), NOT IN, LIKE / NOT LIKE (% and _), IS [NOT]
NULL, BETWEEN ... AND ..., parentheses, TRUE / FALSE; strings in single quotes ('' escapes a quote);
identifiers plain or in backquotes. Columns must exist and be scalar. A bad filter is InvalidArgument
(reason INVALID_FILTER) naming the line and column of the problem.

Bounded, because a filter's size reaches native code: Arrow's expression simplifier recurses once per term of
an AND/OR chain, and ~9,000 ORed comparisons overflowed its stack (SIGSEGV: the whole store died, measured
with pyarrow 19 on a 2-row table); RE2 refuses a LIKE of 80,000 `_`; the tree is transformed recursively.
So a filter holds at most MAX_CONDITIONS conditions (a value list of IN counts as one), nests at most
MAX_DEPTH deep, and a LIKE pattern has at most MAX_LIKE_CHARS characters; the store also caps a filter's
length (`--max-filter-length`, MAX_LENGTH by default), since parsing costs about 15 µs a character. Parsed
filters are cached up to CACHE_CHARS characters in all (a tree costs ~90 bytes per character).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import OrderedDict
from typing import Any

import lark
import pyarrow as pa
import pyarrow.compute as pc

from store_service.errors import InvalidArgument

GRAMMAR = r"""
?start: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: not_expr (_AND not_expr)*
?not_expr: _NOT not_expr            -> negation
         | predicate
?predicate: operand COMPARATOR operand                  -> comparison
          | operand _IN "(" literal ("," literal)* ")"      -> in_list
          | operand _NOT _IN "(" literal ("," literal)* ")" -> not_in_list
          | operand _LIKE STRING                           -> like
          | operand _NOT _LIKE STRING                      -> not_like
          | operand _IS _NULL                              -> null_test
          | operand _IS _NOT _NULL                         -> not_null_test
          | operand _BETWEEN operand _AND operand          -> between
          | operand _NOT _BETWEEN operand _AND operand     -> not_between
          | "(" or_expr ")"
          | column
          | boolean
?operand: column | literal
column: NAME | QUOTED_NAME
?literal: SIGNED_NUMBER -> number
        | STRING        -> string
        | boolean
        | _NULL         -> null
boolean: TRUE | FALSE

COMPARATOR: "==" | "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
_OR: "OR"i
_AND: "AND"i
_NOT: "NOT"i
_IN: "IN"i
_LIKE: "LIKE"i
_IS: "IS"i
_NULL: "NULL"i
_BETWEEN: "BETWEEN"i
TRUE: "TRUE"i
FALSE: "FALSE"i
NAME: /[A-Za-z_][A-Za-z0-9_]*/
QUOTED_NAME: /`[^`]+`/
STRING: /'(?:[^']|'')*'/
%import common.SIGNED_NUMBER
%import common.WS
%ignore WS
"""

# The basic lexer makes keywords reserved (a column cannot be named AND); the contextual one would not.
_parser = lark.Lark(GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)

_OPERATORS = {"=": "equal", "==": "equal", "!=": "not_equal", "<>": "not_equal", "<": "less",
              "<=": "less_equal", ">": "greater", ">=": "greater_equal"}


class _Null:
    pass


NULL = _Null()


MAX_LENGTH = 64 * 1024
MAX_CONDITIONS = 1_000
MAX_DEPTH = 64
MAX_LIKE_CHARS = 4_096
CACHE_CHARS = 1 << 20
_CONDITIONS = frozenset({"comparison", "in_list", "not_in_list", "like", "not_like", "null_test", "not_null_test",
                         "between", "not_between", "column", "boolean"})


def shown(where: str, limit: int = 200) -> str:
    """A filter as an error message quotes it: its start only, when long."""
    return repr(where) if len(where) <= limit else repr(where[:limit]) + f"… ({len(where)} characters)"


LANCE_COLUMNS = frozenset({"_rowid", "_rowaddr"})  # what Lance's engine knows beside the table's columns


class OutsideGrammar(InvalidArgument):
    """A filter this parser cannot read; Lance's SQL may (the store then hands it to Lance)."""

    reason = "INVALID_FILTER"


def parse_error(message: str, where: str, **position: Any) -> InvalidArgument:
    return InvalidArgument(f"bad filter {shown(where)}: {message}", reason="INVALID_FILTER", **position)


class _TreeCache:
    """Parsed filters, least recently used out first, bounded by the characters of the filters held."""

    def __init__(self, max_chars: int) -> None:
        self._max = max_chars
        self._trees: OrderedDict[str, lark.Tree[Any]] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()

    def get(self, where: str) -> lark.Tree[Any] | None:
        with self._lock:
            tree = self._trees.get(where)
            if tree is not None:
                self._trees.move_to_end(where)
            return tree

    def put(self, where: str, tree: lark.Tree[Any]) -> None:
        if len(where) > self._max // 8:  # a big filter would push out many small ones: not kept
            return
        with self._lock:
            if where in self._trees:
                return
            self._trees[where] = tree
            self._chars += len(where)
            while self._chars > self._max:
                evicted, _ = self._trees.popitem(last=False)
                self._chars -= len(evicted)


_trees = _TreeCache(CACHE_CHARS)


def _tree(where: str) -> lark.Tree[Any]:
    tree = _trees.get(where)
    if tree is None:
        tree = _parse(where)
        _check_size(tree, where)
        _trees.put(where, tree)
    return tree


def _check_size(tree: lark.Tree[Any], where: str) -> None:
    """Refuses a tree with too many conditions or nested too deep (walked without recursion)."""
    conditions, pending = 0, [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise parse_error(f"it nests deeper than {MAX_DEPTH} levels (NOT, AND/OR groups in parentheses)",
                              where, limit=MAX_DEPTH)
        if node.data in _CONDITIONS:  # a leaf condition: its operands are not conditions of their own
            conditions += 1
            if conditions > MAX_CONDITIONS:
                raise parse_error(f"it holds more than {MAX_CONDITIONS} conditions; compare a column with many "
                                  "values in one IN (...) instead", where, limit=MAX_CONDITIONS)
            continue
        pending.extend((child, depth + 1) for child in node.children if isinstance(child, lark.Tree))


def _parse(where: str) -> lark.Tree[Any]:
    try:
        return _parser.parse(where)
    except lark.UnexpectedInput as exc:
        if isinstance(exc, lark.UnexpectedToken) and exc.token.type == "$END":
            lines = where.split("\n")
            line, column = len(lines), len(lines[-1]) + 1
            error = parse_error(f"the filter ends too early, at line {line}, column {column}", where, line=line,
                                column=column)
        else:
            found = where[exc.pos_in_stream:exc.pos_in_stream + 12] if exc.pos_in_stream is not None else ""
            error = parse_error(f"unexpected {found!r} at line {exc.line}, column {exc.column}", where,
                                line=exc.line, column=exc.column)
        raise OutsideGrammar(error.message, **error.metadata) from None


def compile_filter(where: str, schema: pa.Schema, max_length: int = MAX_LENGTH) -> pc.Expression:
    """Compiles `where` into an expression over `schema`'s columns; empty means every row."""
    if len(where) > max_length:
        raise parse_error(f"it has {len(where)} characters; this store takes filters of at most {max_length}",
                          where, limit=max_length)
    if not where.strip():
        return pc.scalar(True)
    compiler = _Compiler(where, schema)
    try:
        return compiler.as_predicate(compiler.transform(_tree(where)))
    except lark.exceptions.VisitError as exc:
        if isinstance(exc.orig_exc, InvalidArgument):
            raise exc.orig_exc from None
        raise


def referenced_columns(where: str, max_length: int = MAX_LENGTH) -> set[str]:
    if len(where) > max_length:
        raise parse_error(f"it has {len(where)} characters; at most {max_length}", where, limit=max_length)
    if not where.strip():
        return set()
    return {_column_name(token) for token in _tree(where).scan_values(
        lambda t: isinstance(t, lark.Token) and t.type in ("NAME", "QUOTED_NAME"))}


def _column_name(token: lark.Token) -> str:
    return token[1:-1] if token.type == "QUOTED_NAME" else str(token)


class _Column:
    def __init__(self, name: str, field: pa.Field) -> None:
        self.name = name
        self.field = field
        self.expr = pc.field(name)
        if pa.types.is_decimal(field.type) or pa.types.is_float16(field.type):
            # compared as float64: Arrow has no float16 comparison kernels, and a decimal compared with a
            # literal needs a precision the column's type may not have
            self.expr = self.expr.cast(pa.float64())


class _Compiler(lark.Transformer[Any, Any]):
    def __init__(self, where: str, schema: pa.Schema) -> None:
        super().__init__()
        self._where = where
        self._schema = schema

    # ----- leaves --------------------------------------------------------------------------------------
    def column(self, items: list[lark.Token]) -> _Column:
        token = items[0]
        name = _column_name(token)
        index = self._schema.get_field_index(name)
        if index < 0 and name in LANCE_COLUMNS:
            raise OutsideGrammar(f"bad filter {shown(self._where)}: {name} is Lance's", column=name)
        if index < 0:
            raise InvalidArgument(f"bad filter {shown(self._where)}: no column {name!r} (line {token.line}, column "
                                  f"{token.column})", reason="UNKNOWN_COLUMN", column=name)
        field = self._schema.field(index)
        if pa.types.is_list(field.type) or pa.types.is_fixed_size_list(field.type):
            raise parse_error(f"column {name!r} is a vector; filters apply to scalar columns", self._where,
                              column=name)
        return _Column(name, field)

    def number(self, items: list[lark.Token]) -> int | float:
        text = str(items[0])
        value = float(text) if any(c in text for c in ".eE") else int(text)
        return value if -2 ** 63 <= value < 2 ** 63 else float(value)  # past int64: compared as a float

    def string(self, items: list[lark.Token]) -> str:
        return str(items[0])[1:-1].replace("''", "'")

    def boolean(self, items: list[lark.Token]) -> bool:
        return items[0].type == "TRUE"

    def null(self, items: list[Any]) -> _Null:
        return NULL

    # ----- predicates ----------------------------------------------------------------------------------
    def comparison(self, items: list[Any]) -> pc.Expression:
        left, op, right = items
        if left is NULL or right is NULL:
            raise parse_error("compare with NULL using IS NULL or IS NOT NULL", self._where)
        self._check_types(left, right)
        column = left if isinstance(left, _Column) else right if isinstance(right, _Column) else None
        return getattr(pc, _OPERATORS[str(op)])(self._expr(left, column), self._expr(right, column))

    def in_list(self, items: list[Any]) -> pc.Expression:
        operand, *values = items
        column = self._require_column(operand, "IN")
        for value in values:
            self._check_types(column, value)
        known = [self._value_for(column, v) for v in values if v is not NULL]
        if not known:
            return pc.scalar(False)  # x IN (NULL) is unknown: no row
        kind = column.field.type
        as_float = pa.types.is_decimal(kind) or pa.types.is_float16(kind)  # column.expr is cast to float64
        if as_float or (any(isinstance(v, float) for v in known) and not pa.types.is_floating(kind)):
            return pc.field(column.name).cast(pa.float64()).isin(pa.array([float(v) for v in known], pa.float64()))
        try:
            values = pa.array([v.as_py() if isinstance(v, pa.Scalar) else v for v in known], kind)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
            raise parse_error(f"the IN list holds a value that is not one of column {column.name!r} ({kind})",
                              self._where, column=column.name) from None
        return column.expr.isin(values)

    def not_in_list(self, items: list[Any]) -> pc.Expression:
        # SQL: NULL NOT IN (...) is unknown, and so is anything NOT IN a list holding NULL: no row for either
        if any(v is NULL for v in items[1:]):
            return pc.scalar(False)
        return pc.and_kleene(pc.invert(self.in_list(items)), items[0].expr.is_valid())

    def like(self, items: list[Any]) -> pc.Expression:
        operand, pattern = items
        column = self._require_column(operand, "LIKE")
        if not pa.types.is_string(column.field.type) and not pa.types.is_large_string(column.field.type):
            raise parse_error(f"LIKE needs a string column; {column.name!r} is {column.field.type}", self._where,
                              column=column.name)
        text = str(pattern)[1:-1].replace("''", "'")
        if len(text) > MAX_LIKE_CHARS:
            raise parse_error(f"the LIKE pattern has {len(text)} characters; at most {MAX_LIKE_CHARS}", self._where,
                              column=column.name, limit=MAX_LIKE_CHARS)
        return pc.match_like(column.expr, text)

    def not_like(self, items: list[Any]) -> pc.Expression:
        return pc.invert(self.like(items))

    def null_test(self, items: list[Any]) -> pc.Expression:
        return self._require_column(items[0], "IS NULL").expr.is_null()

    def not_null_test(self, items: list[Any]) -> pc.Expression:
        return pc.invert(self.null_test(items))

    def between(self, items: list[Any]) -> pc.Expression:
        operand, low, high = items
        if NULL in (operand, low, high):
            raise parse_error("BETWEEN with NULL is never true; test for NULL with IS NULL or IS NOT NULL", self._where)
        for bound in (low, high):
            self._check_types(operand, bound)
        column = operand if isinstance(operand, _Column) else None
        expr = self._expr(operand)
        return pc.and_kleene(pc.greater_equal(expr, self._expr(low, column)),
                             pc.less_equal(expr, self._expr(high, column)))

    def not_between(self, items: list[Any]) -> pc.Expression:
        return pc.invert(self.between(items))

    def negation(self, items: list[Any]) -> pc.Expression:
        return pc.invert(self.as_predicate(items[0]))

    def and_expr(self, items: list[Any]) -> pc.Expression:
        result = self.as_predicate(items[0])
        for item in items[1:]:
            result = pc.and_kleene(result, self.as_predicate(item))
        return result

    def or_expr(self, items: list[Any]) -> pc.Expression:
        result = self.as_predicate(items[0])
        for item in items[1:]:
            result = pc.or_kleene(result, self.as_predicate(item))
        return result

    # ----- helpers -------------------------------------------------------------------------------------
    def as_predicate(self, item: Any) -> pc.Expression:
        if isinstance(item, bool):
            return pc.scalar(item)
        if isinstance(item, _Column):
            if pa.types.is_boolean(item.field.type):
                return item.expr
            raise parse_error(f"column {item.name!r} is {item.field.type}, not a condition", self._where,
                              column=item.name)
        if isinstance(item, pc.Expression):
            return item
        raise parse_error(f"{item!r} is not a condition", self._where)

    def _require_column(self, operand: Any, what: str) -> _Column:
        if not isinstance(operand, _Column):
            raise parse_error(f"{what} needs a column on its left", self._where)
        return operand

    def _expr(self, operand: Any, column: _Column | None = None) -> pc.Expression:
        if isinstance(operand, _Column):
            return operand.expr
        return pc.scalar(self._value_for(column, operand) if column is not None else operand)

    def _value_for(self, column: _Column, value: Any) -> Any:
        """A literal in the column's type where Arrow would not convert it itself: timestamps, dates and times
        from ISO 8601 text, durations from seconds."""
        kind = column.field.type
        try:
            if pa.types.is_timestamp(kind) and isinstance(value, str):
                return pa.scalar(value).cast(kind)
            if pa.types.is_date(kind) and isinstance(value, str):
                return pa.scalar(dt.date.fromisoformat(value)).cast(kind)
            if pa.types.is_time(kind) and isinstance(value, str):
                return pa.scalar(dt.time.fromisoformat(value)).cast(kind)
            if pa.types.is_duration(kind) and isinstance(value, (int, float)) and not isinstance(value, bool):
                return pa.scalar(dt.timedelta(seconds=value)).cast(kind)
        except (ValueError, OverflowError, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            raise parse_error(f"{value!r} is not a {_kind(column)} value for column {column.name!r} ({kind})",
                              self._where,
                              column=column.name) from None
        return value

    def _check_types(self, left: Any, right: Any) -> None:
        """Both sides comparable in Arrow: the same kind (number, string, boolean, timestamp, date, time,
        duration); a timestamp, date or time column also takes a string literal, a duration column a number
        of seconds. NULL was dealt with by the caller."""
        if left is NULL or right is NULL:
            return
        kinds = (_kind(left), _kind(right))
        literal = left if not isinstance(left, _Column) else right if not isinstance(right, _Column) else None
        text_for_time = bool({"timestamp", "date", "time"} & set(kinds)) and isinstance(literal, str)
        seconds_for_duration = "duration" in kinds and _kind(literal) == "number" if literal is not None else False
        if (kinds[0] == kinds[1] and kinds[0] in _COMPARABLE) or text_for_time or seconds_for_duration:
            return
        column = left if isinstance(left, _Column) else right if isinstance(right, _Column) else None
        described = [f"column {x.name!r} ({x.field.type})" if isinstance(x, _Column) else repr(x)
                     for x in (left, right)]
        raise parse_error(f"{described[0]} cannot be compared with {described[1]}", self._where,
                          **({"column": column.name} if column is not None else {}))


_COMPARABLE = frozenset({"number", "string", "boolean", "timestamp", "date", "time", "duration"})


def _kind(operand: Any) -> str:
    """What an operand compares as: number, string, boolean, timestamp, date, time, duration, or its Arrow
    type for others (binary, structs, lists...: not comparable)."""
    if isinstance(operand, _Column):
        kind = operand.field.type
        if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_decimal(kind):
            return "number"
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            return "string"
        if pa.types.is_boolean(kind):
            return "boolean"
        for name in ("timestamp", "date", "time", "duration"):
            if getattr(pa.types, f"is_{name}")(kind):
                return name
        return str(kind)
    if isinstance(operand, bool):
        return "boolean"
    return "number" if isinstance(operand, (int, float)) else "string" if isinstance(operand, str) else "?"
