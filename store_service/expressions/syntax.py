"""The caller's expression as a small typed tree, built from sqlparser's syntax tree (`parser.py`) without
recursion, bounded while it is built, and failing closed: a kind of expression this module does not name is
refused, so a construct a later Lance version plans cannot slip through unjudged.

The tree keeps what the gate judges: function names as the engine resolves them (case folded, quotes and
whitespace gone), operators, the columns read, string literals (their length, and the text where a rule
needs it). Depth counts every level except the links of an AND / OR chain on the filter's boolean skeleton
(the root, and what sits under AND, OR, NOT and parentheses), because that is what Lance's engine walks
without recursion: measured with pylance 13, 9,000 ORed comparisons plan in 0.1 s, while 700 added terms, or
3,000 ORed terms inside coalesce(), overflow its stack (SIGSEGV).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# sqlparser's operator names (BinaryOperator / UnaryOperator variants) the store lets through
BINARY_OPERATORS = {
    "Plus": "+", "Minus": "-", "Multiply": "*", "Divide": "/", "Modulo": "%", "StringConcat": "||",
    "Gt": ">", "Lt": "<", "GtEq": ">=", "LtEq": "<=", "Eq": "=", "NotEq": "<>", "And": "AND", "Or": "OR",
    "BitwiseOr": "|", "BitwiseAnd": "&", "BitwiseXor": "^",
}
UNARY_OPERATORS = {"Not": "NOT", "Minus": "-", "Plus": "+"}
# predicates over one expression, IS [NOT] NULL / TRUE / FALSE / UNKNOWN
_TESTS = {"IsNull", "IsNotNull", "IsTrue", "IsNotTrue", "IsFalse", "IsNotFalse", "IsUnknown", "IsNotUnknown"}
# the types CAST, TRY_CAST and `::` may name: scalars (a cast to a list or a struct is refused)
CAST_TYPES = frozenset("""
Int Integer BigInt SmallInt TinyInt Int2 Int4 Int8 Int16 Int32 Int64 Int128 UInt8 UInt16 UInt32 UInt64
IntUnsigned IntegerUnsigned BigIntUnsigned SmallIntUnsigned TinyIntUnsigned Unsigned Signed
Float Float4 Float8 Float32 Float64 Real Double DoublePrecision Decimal Numeric Dec
Boolean Bool Varchar CharacterVarying CharVarying Char Character Nvarchar Text String
Binary Varbinary Bytea Blob Date Date32 Time Timestamp TimestampNtz Datetime Datetime64 Interval
""".split())
_TYPED_STRINGS = frozenset({"Date", "Time", "Timestamp", "Datetime", "TimestampNtz"})


class Refused(Exception):
    """Why the tree is refused: `kind` is "syntax", "function", "complex"; `piece` names the culprit."""

    def __init__(self, kind: str, message: str, piece: str = "") -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.piece = piece


@dataclass
class Node:
    """One expression: `kind` is column, string, number, boolean, null, typed, call, binary, unary, test,
    cast, access, array, in_list, between, like, distinct or nested; `name` is the function (lower case), the
    operator or the column."""

    kind: str
    name: str = ""
    children: list["Node"] = field(default_factory=list)
    text: str | None = None  # a string literal's value

    def walk(self) -> list["Node"]:
        """Every node of the tree, parents first (iterative: the gate bounds depth, but walks need not rely on it)."""
        out, todo = [], [self]
        while todo:
            node = todo.pop()
            out.append(node)
            todo.extend(reversed(node.children))
        return out


@dataclass(frozen=True)
class Limits:
    max_nodes: int
    max_depth: int


def _variant(raw: Any) -> tuple[str, Any]:
    if isinstance(raw, dict) and len(raw) == 1:
        return next(iter(raw.items()))
    if isinstance(raw, str):
        return raw, None
    raise Refused("syntax", "an expression this store does not know how to judge")


def _ident(raw: dict[str, Any]) -> str:
    return str(raw["value"])


def _function_name(parts: list[Any]) -> str:
    names = []
    for part in parts:
        kind, payload = _variant(part)
        if kind != "Identifier":
            raise Refused("function", "a function named by an expression", "?")
        names.append(_ident(payload))
    if len(names) != 1:
        raise Refused("function", f"function {'.'.join(names)[:64]!r}: functions have one-part names",
                      ".".join(names)[:64])
    return names[0].lower()


def _function(payload: dict[str, Any]) -> tuple[Node, list[Any]]:
    name = _function_name(payload["name"])
    extras = (payload.get("filter"), payload.get("over"), payload.get("null_treatment"),
              payload.get("within_group") or None, None if payload.get("parameters") == "None" else True)
    if any(extra is not None for extra in extras) or payload.get("uses_odbc_syntax"):
        raise Refused("syntax", f"function {name!r} is called with a clause (FILTER, OVER, ...) a row "
                      "expression cannot have", name)
    args = payload.get("args")
    if args == "None":  # CURRENT_TIMESTAMP and friends, without parentheses
        return Node("call", name), []
    kind, arguments = _variant(args)
    if kind != "List" or arguments.get("duplicate_treatment") is not None or arguments.get("clauses"):
        raise Refused("syntax", f"function {name!r} has arguments a row expression cannot have", name)
    children = []
    for argument in arguments["args"]:
        how, value = _variant(argument)
        inner, expression = _variant(value) if how == "Unnamed" else ("", None)
        if inner != "Expr":
            raise Refused("syntax", f"function {name!r}: arguments are plain expressions (no names, no *)", name)
        children.append(expression)
    return Node("call", name), children


def _value(payload: dict[str, Any]) -> Node:
    kind, literal = _variant(payload["value"])
    if kind == "SingleQuotedString":
        return Node("string", text=str(literal))
    if kind == "HexStringLiteral":  # X'646566': bytes, half as many as the digits
        return Node("string", text="\0" * (len(str(literal)) // 2))
    if kind == "Number":
        return Node("number", name=str(literal[0]))
    if kind == "Boolean":
        return Node("boolean")
    if kind == "Null":
        return Node("null")
    raise Refused("syntax", f"a literal of kind {kind} ('single quotes' for strings; no placeholders)", kind)


def _cast(payload: dict[str, Any]) -> tuple[Node, list[Any]]:
    target, _ = _variant(payload["data_type"])
    if target not in CAST_TYPES or payload.get("format") is not None or payload.get("array"):
        raise Refused("syntax", f"a cast to {target}: only scalar types", target)
    return Node("cast", target), [payload["expr"]]


def _typed(payload: dict[str, Any]) -> Node:
    target, _ = _variant(payload["data_type"])
    if target not in _TYPED_STRINGS or payload.get("uses_odbc_syntax"):
        raise Refused("syntax", f"a typed literal of type {target}", target)
    return Node("typed", target)


def _access(payload: dict[str, Any]) -> tuple[Node, list[Any]]:
    children = [payload["root"]]
    for step in payload["access_chain"]:
        how, detail = _variant(step)
        if how == "Dot":
            children.append(detail)
            continue
        index_kind, index = _variant(detail)
        if how != "Subscript" or index_kind != "Index":
            raise Refused("syntax", "a subscript other than [index] or ['field']", how)
        children.append(index["index"])
    return Node("access"), children


def _special_call(name: str, *parts: Any) -> tuple[Node, list[Any]]:
    return Node("call", name), [p for p in parts if p is not None]


def node_of(raw: Any) -> tuple[Node, list[Any]]:
    """One level of sqlparser's tree: the typed node, and its children still as sqlparser's dicts."""
    kind, p = _variant(raw)
    if kind == "Identifier":
        return Node("column", _ident(p)), []
    if kind == "CompoundIdentifier":  # a nested field, `meta.lang`: the column is its first part
        if len(p) > 16:
            raise Refused("complex", f"a field path of {len(p)} parts; at most 16", ".".join(map(_ident, p))[:64])
        return Node("column", _ident(p[0]), text=".".join(_ident(i) for i in p)), []
    if kind == "Value":
        return _value(p), []
    if kind == "BinaryOp":
        op = p["op"]
        if not isinstance(op, str) or op not in BINARY_OPERATORS:
            shown = op if isinstance(op, str) else next(iter(op))
            raise Refused("function", f"operator {shown} is not one the store lets through", str(shown))
        return Node("binary", BINARY_OPERATORS[op]), [p["left"], p["right"]]
    if kind == "UnaryOp":
        if p["op"] not in UNARY_OPERATORS:
            raise Refused("function", f"operator {p['op']} is not one the store lets through", str(p["op"]))
        return Node("unary", UNARY_OPERATORS[p["op"]]), [p["expr"]]
    if kind == "Nested":
        return Node("nested"), [p]
    if kind in _TESTS:
        return Node("test", kind), [p]
    if kind in ("IsDistinctFrom", "IsNotDistinctFrom"):
        return Node("distinct", kind), list(p)
    if kind == "InList":
        return Node("in_list"), [p["expr"], *p["list"]]
    if kind == "Between":
        return Node("between"), [p["expr"], p["low"], p["high"]]
    if kind in ("Like", "ILike"):
        if p.get("any"):
            raise Refused("syntax", f"{kind.upper()} ANY", kind)
        return Node("like", kind), [p["expr"], p["pattern"]]
    if kind == "Function":
        return _function(p)
    if kind == "Cast":
        return _cast(p)
    if kind == "TypedString":
        return _typed(p), []
    if kind == "Interval":
        return Node("typed", "Interval"), [p["value"]]
    if kind == "Array":
        return Node("array"), list(p["elem"])
    if kind == "CompoundFieldAccess":
        return _access(p)
    if kind == "Substring":
        return _special_call("substr", p["expr"], p.get("substring_from"), p.get("substring_for"))
    if kind == "Trim":  # TRIM([BOTH|LEADING|TRAILING] [what FROM] s), or trim(s, characters...)
        return _special_call("trim", p["expr"], p.get("trim_what"), *(p.get("trim_characters") or []))
    if kind == "Position":
        return _special_call("strpos", p["in"], p["expr"])
    if kind == "Extract":
        return _special_call("date_part", p["expr"])
    if kind in ("Ceil", "Floor"):
        if p.get("field") != {"DateTimeField": "NoDateTime"}:
            raise Refused("syntax", f"{kind.upper()} ... TO a date field", kind.lower())
        return _special_call(kind.lower(), p["expr"])
    raise Refused("syntax", f"{kind} is not an expression the store lets through", kind)


def build(raw: Any, limits: Limits) -> Node:
    """The typed tree of one sqlparser expression, refused (Refused "complex") as soon as it has more than
    `limits.max_nodes` nodes or is deeper than `limits.max_depth` (see the module's docstring)."""
    root: Node | None = None
    # (sqlparser's expression, the parent to append to, its depth, whether it is on the boolean skeleton)
    todo: list[tuple[Any, Node | None, int, bool]] = [(raw, None, 0, True)]
    count = 0
    while todo:
        expression, parent, depth, skeleton = todo.pop()
        node, children = node_of(expression)
        chained = (skeleton and parent is not None and node.kind == "binary" and node.name in ("AND", "OR")
                   and parent.kind == "binary" and parent.name == node.name)
        depth += 0 if chained else 1
        count += 1
        if count > limits.max_nodes:
            raise Refused("complex", f"has more than {limits.max_nodes} terms", f"{limits.max_nodes} terms")
        if depth > limits.max_depth:
            raise Refused("complex", f"nests more than {limits.max_depth} levels deep (an operator chain of "
                          f"more than {limits.max_depth} terms, or calls inside calls)", node.name or node.kind)
        if parent is None:
            root = node
        else:
            parent.children.append(node)
        below_skeleton = skeleton and (node.kind == "nested" or (node.kind == "binary" and node.name in ("AND", "OR"))
                                       or (node.kind == "unary" and node.name == "NOT"))
        todo.extend((child, node, depth, below_skeleton) for child in reversed(children))
    assert root is not None, "an expression has a root: this is a bug"
    return root
