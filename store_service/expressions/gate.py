"""The one gate every caller-supplied SQL expression passes before Lance's engine sees it: filters (`where`
of CountRows, Search, ReadRows, DeleteRows, UpdateRows), computed columns, `add_columns` and `values_sql`
expressions, merge_insert's conditions.

The text is parsed once by sqlparser (the parser Lance uses, `parser.py`) as `SELECT <text>`, and judged on
that tree (`syntax.py`):
- one expression over the row: no statement, query, alias or clause around it;
- no comments (`--`, `/* */`): the tree never holds them, so they are found where the parser's own spans
  of literals and names leave text unexplained;
- only the functions and operators of `functions.py`, matched on the name the engine resolves;
- at most MAX_NODES terms and MAX_DEPTH levels (see syntax.py: Lance's stack overflowed at ~650 levels);
- a bounded output (`cost.py`): RESOURCE_EXHAUSTED (EXPRESSION_OUTPUT_TOO_LARGE) before any evaluation.
What Lance then evaluates is the tree written back by the same parser, checked to parse to the same tree (or,
where sqlparser cannot write a tree back faithfully, the caller's text that was judged whole): what was
judged is what runs. Double-quoted names are refused: Lance reads "x" as a string, SQL as a name.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from enum import Enum
from typing import Any

from store_service.errors import InvalidArgument, ResourceExhausted
from store_service.expressions import parser
from store_service.expressions.cost import INPUT, MAX_FIXED, MAX_GROWTH, NUMBER, Quadratic, Size, total
from store_service.expressions.functions import (FUNCTIONS, MAX_PATTERN_CHARS, MAX_PATTERN_WEIGHT, MAX_PATTERNS,
                                                 MAX_PATTERNS_WEIGHT, NeedsLiteral, pattern_of, pattern_weight)
from store_service.expressions.syntax import Limits, Node, Refused, build

MAX_NODES = 4096
MAX_DEPTH = 64
CACHE_ENTRIES = 512
CACHED_CHARS = 16 * 1024


class Role(Enum):
    """What the expression is for: the reason its syntax errors carry."""

    FILTER = "INVALID_FILTER"
    VALUE = "INVALID_EXPRESSION"


@dataclass(frozen=True)
class Judged:
    """An expression the gate let through: `text` is what the engine evaluates; `columns` the table columns
    it reads (the first part of a field path); `cost` the bound on the bytes one row's evaluation holds."""

    text: str
    columns: frozenset[str]
    cost: Size


@dataclass(frozen=True)
class _Key:
    name: str


def _shape(raw: Any) -> list[Any]:
    """sqlparser's tree as a flat list (spans left out), so two trees compare without recursion: Python's own
    comparison of nested dicts stops at its recursion limit, and an accepted AND / OR chain is deeper."""
    out: list[Any] = []
    todo: list[Any] = [raw]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            out.append("{")
            todo.append("}")
            for key in sorted(item, reverse=True):
                if key != "span":
                    todo.extend((item[key], _Key(key)))
        elif isinstance(item, (list, tuple)):
            out.append("[")
            todo.append("]")
            todo.extend(reversed(item))
        else:
            out.append(item)
    return out


_TEMPLATE: Any = None


def _expression_of(statements: list[Any]) -> Any:
    """The one expression of `SELECT <expression>`, or Refused("syntax") when the text was more than that."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = _shape(parser.parse_select("1"))
    problem = "one expression over the row, not a statement or a query (no ';', FROM, SELECT, AS, ...)"
    if len(statements) != 1 or "Query" not in statements[0]:
        raise Refused("syntax", problem)
    body = statements[0]["Query"].get("body", {})
    projection = body.get("Select", {}).get("projection") if isinstance(body, dict) else None
    if not projection or len(projection) != 1 or "UnnamedExpr" not in projection[0]:
        raise Refused("syntax", problem)
    expression = projection[0]["UnnamedExpr"]
    projection[0]["UnnamedExpr"] = {"Value": {"value": {"Number": ["1", False]}}}
    try:
        if _shape(statements) != _TEMPLATE:
            raise Refused("syntax", problem)
    finally:
        projection[0]["UnnamedExpr"] = expression
    return expression


def _explained_spans(raw: Any) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """The spans of every literal and name in sqlparser's tree (iteratively: the tree may be deep)."""
    spans, todo = [], [raw]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            span = item.get("span")
            if span and ("quote_style" in item or isinstance(item.get("value"), dict)):
                spans.append(((span["start"]["line"], span["start"]["column"]),
                              (span["end"]["line"], span["end"]["column"])))
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
    return spans


def _find_comment(sql: str, raw: Any) -> int | None:
    """Where a comment starts in `sql` outside every literal and quoted name, or None."""
    starts = [0]
    for text_line in sql.split("\n"):
        starts.append(starts[-1] + len(text_line) + 1)
    masked = list(sql)
    for (line, column), (end_line, end_column) in _explained_spans(raw):
        begin, end = starts[line - 1] + column - 1, starts[end_line - 1] + end_column - 1
        masked[begin:end] = [" "] * (end - begin)
    bare = "".join(masked)
    found = [i for i in (bare.find("--"), bare.find("/*")) if i >= 0]
    return min(found) - len("SELECT ") if found else None


def _double_quoted(raw: Any) -> bool:
    """Whether sqlparser read a \"double-quoted\" name anywhere in the tree."""
    todo = [raw]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            if item.get("quote_style") == '"':
                return True
            todo.extend(item.values())
        elif isinstance(item, (list, tuple)):
            todo.extend(item)
    return False


def _check_patterns(root: Node) -> None:
    """At most MAX_PATTERNS regular expressions, whose weights (functions.pattern_weight) add up to at most
    MAX_PATTERNS_WEIGHT: DataFusion compiles each again for every batch of every fragment (found by the hostile
    pass: 1,000 patterns `\\w{100..199}` in one filter of one row took 38 s of CPU)."""
    patterns = [p for p in (pattern_of(n.name, n.children) for n in root.walk() if n.kind == "call") if p is not None]
    for pattern in patterns:
        if len(pattern) > MAX_PATTERN_CHARS or pattern_weight(pattern) > MAX_PATTERN_WEIGHT:
            raise Refused("complex", f"holds a regular expression of {len(pattern)} characters whose counted "
                          f"repetitions multiply to {pattern_weight(pattern)}; at most {MAX_PATTERN_CHARS} characters "
                          f"and {MAX_PATTERN_WEIGHT}", pattern[:64])
    weight = sum(pattern_weight(p) for p in patterns)
    if len(patterns) > MAX_PATTERNS or weight > MAX_PATTERNS_WEIGHT:
        raise Refused("complex", f"holds {len(patterns)} regular expressions of weight {weight}; at most "
                      f"{MAX_PATTERNS} of weight {MAX_PATTERNS_WEIGHT} in all (a counted repetition {{n}} weighs n)",
                      "regular expressions")


def _peak(root: Node) -> tuple[Size, Size]:
    """(a bound on the expression's value, a bound on what its evaluation holds at once) for one row.

    A node evaluates its children one after another and keeps each one's value until it makes its own, so
    its peak is the larger of: the values of the children before the i-th plus the i-th's own peak, and all
    its children's values plus its own. A column is the row's input, held anyway (no copy)."""
    value: dict[int, Size] = {}
    peak: dict[int, Size] = {}
    for node in reversed(root.walk()):  # children before their parents
        outputs = [value[id(child)] for child in node.children]
        value[id(node)] = own = _size_of(node, outputs)
        held = [Size() if _is_input(child) else value[id(child)] for child in node.children]
        highest = total(held) + (Size() if _is_input(node) else own)
        before = Size()
        for child, kept in zip(node.children, held):
            highest = _larger(highest, before + peak[id(child)])
            before = before + kept
        peak[id(node)] = highest
    return value[id(root)], peak[id(root)]


def _is_input(node: Node) -> bool:
    while node.kind == "nested":
        node = node.children[0]
    return node.kind == "column"


def _larger(a: Size, b: Size) -> Size:
    """A bound on both (max(a1 L + b1, a2 L + b2) <= max(a1, a2) L + max(b1, b2))."""
    return Size(max(a.per_input, b.per_input), max(a.fixed, b.fixed))


def _size_of(node: Node, inner: list[Size]) -> Size:
    kind = node.kind
    if kind == "column":
        return INPUT
    if kind == "string":
        return Size(0.0, float(len((node.text or "").encode())))
    if kind in ("nested", "access"):
        return inner[0]
    if kind == "binary" and node.name == "||":
        return total(inner)
    if kind == "cast":  # a number or a date written as text: at most 8 bytes a byte (int8 -> "-128, ")
        return inner[0].times(8.0) + Size(0.0, 64.0)
    if kind == "array":
        return total(inner) + Size(0.0, 16.0)
    if kind == "call":
        rule = FUNCTIONS.get(node.name)
        if rule is None:
            raise Refused("function", f"function {node.name[:64]!r} is not one the store lets through (it "
                          "calls only scalar functions whose output its input bounds)", node.name[:64])
        try:
            return rule(inner, node.children)
        except NeedsLiteral as needs:
            raise Refused("function", f"{node.name}: {needs.why}", node.name) from None
    return NUMBER  # numbers, booleans, dates, comparisons, tests: a fixed width


def _written_back(statements: list[Any], expression: Any) -> str | None:
    """The expression as sqlparser writes it, if that text parses to the same tree; else None. (sqlparser 0.61
    writes the string '' '' (two quotes) as a string of one: then the caller's own text, judged whole, runs.)"""
    rendered = parser.render(statements)[len(parser.PREFIX):]
    try:
        again = _expression_of(parser.parse_select(rendered))
    except (parser.ParseError, Refused):
        return None
    return rendered if _shape(again) == _shape(expression) else None


class Gate:
    """Judges expressions (see the module's docstring), keeping the last CACHE_ENTRIES verdicts it let through."""

    def __init__(self, max_nodes: int = MAX_NODES, max_depth: int = MAX_DEPTH) -> None:
        self.limits = Limits(max_nodes=max_nodes, max_depth=max_depth)
        self._judged: OrderedDict[tuple[str, Role, int], Judged] = OrderedDict()
        self._lock = threading.Lock()

    def judge(self, text: str, role: Role, *, what: str, max_length: int, **metadata: str) -> Judged:
        """`text` judged for `role`; `what` names it in refusals ("filter 'x'", "new column 'y'")."""
        key = (text, role, max_length)
        with self._lock:
            cached = self._judged.get(key)
            if cached is not None:
                self._judged.move_to_end(key)
                return cached
        judged = self._judge(text, role, what, min(max_length, parser.MAX_TEXT_CHARS), metadata)
        if len(text) > CACHED_CHARS:  # the cache holds at most CACHE_ENTRIES x CACHED_CHARS characters (8 Mi)
            return judged
        with self._lock:
            self._judged[key] = judged
            while len(self._judged) > CACHE_ENTRIES:
                self._judged.popitem(last=False)
        return judged

    def _judge(self, text: str, role: Role, what: str, max_length: int, metadata: dict[str, str]) -> Judged:
        if len(text) > max_length:
            raise InvalidArgument(f"{what} has {len(text)} characters; at most {max_length}", reason=role.value,
                                  limit=str(max_length), **metadata)
        if not text.strip():
            raise InvalidArgument(f"{what} is empty", reason=role.value, **metadata)
        try:
            statements = parser.parse_select(text)
        except parser.ParseError as exc:
            raise InvalidArgument(f"{what} is not SQL the store can read: {str(exc)[:300]}", reason=role.value,
                                  **metadata) from None
        try:
            expression = _expression_of(statements)
            root = build(expression, self.limits)
            at = _find_comment("SELECT " + text, expression)
            if at is not None:
                raise Refused("syntax", f"comments are not allowed (one starts at character {at + 1})", "comment")
            _check_patterns(root)
            if _double_quoted(expression):
                raise Refused("syntax", 'a "double-quoted" name: Lance reads it as a string; write `name` '
                              "for a column and 'text' for a string", '"')
            try:
                _, held = _peak(root)
            except Quadratic:
                raise ResourceExhausted(f"{what} can grow with the square of the data it reads (a replacement "
                                        "that is itself read from the row?): refused before evaluation",
                                        reason="EXPRESSION_OUTPUT_TOO_LARGE", **metadata) from None
            if held.per_input > MAX_GROWTH or held.fixed > MAX_FIXED:
                raise ResourceExhausted(
                    f"{what} could hold {held.per_input:.0f} times the bytes it reads plus {held.fixed:.0f} bytes a "
                    f"row while it is evaluated; at most {MAX_GROWTH} times plus {MAX_FIXED}: refused before "
                    "evaluation", reason="EXPRESSION_OUTPUT_TOO_LARGE", growth=f"{held.per_input:.0f}",
                    limit=str(MAX_GROWTH), **metadata)
            evaluated = _written_back(statements, expression) or text
        except Refused as refused:
            raise self._refusal(refused, role, what, metadata) from None
        columns = frozenset(node.name for node in root.walk() if node.kind == "column")
        return Judged(text=evaluated, columns=columns, cost=held)

    @staticmethod
    def _refusal(refused: Refused, role: Role, what: str, metadata: dict[str, str]) -> InvalidArgument:
        if refused.kind == "function":
            return InvalidArgument(f"{what}: {refused.message}", reason="FUNCTION_NOT_ALLOWED",
                                   function=refused.piece, **metadata)
        if refused.kind == "complex":
            return InvalidArgument(f"{what} {refused.message}", reason="EXPRESSION_TOO_COMPLEX",
                                   piece=refused.piece[:64], **metadata)
        return InvalidArgument(f"{what}: {refused.message}", reason=role.value, **metadata)


GATE = Gate()


def judge(text: str, role: Role, *, what: str, max_length: int, **metadata: str) -> Judged:
    """The store's gate (GATE) on `text`: see Gate.judge."""
    return GATE.judge(text, role, what=what, max_length=max_length, **metadata)
