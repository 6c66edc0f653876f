"""The scalar functions of Lance's SQL (DataFusion's) that caller-supplied expressions may call, each with a
bound on its output (`cost.Size`) from its arguments' bounds.

Left out on purpose: everything that builds a value from a count or a size the caller chooses (`repeat`,
`lpad`, `rpad`, `array_repeat`, `range`, `generate_series`, `arrow_cast` to a fixed-size type), functions
that answer about the process rather than the row (`version`, `now`, `random`, `uuid`), aggregates and
window functions. A name not here is refused (FUNCTION_NOT_ALLOWED), whatever its spelling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from store_service.expressions.cost import NUMBER, Size, product, total

if TYPE_CHECKING:
    from store_service.expressions.syntax import Node


MAX_PATTERN_CHARS = 1024
MAX_PATTERN_WEIGHT = 64
MAX_PATTERNS = 8  # regular expressions in one expression
MAX_PATTERNS_WEIGHT = 64  # their weights added up
REGEX_FUNCTIONS = frozenset({"regexp_like", "regexp_count", "regexp_match", "regexp_replace"})
UNICODE_CLASS = 16
_UNICODE_CLASS = re.compile(r"\\[wWpP]")
_REPETITION = re.compile(r"\{\s*(\d{1,9})?\s*(,)?\s*(\d{1,9})?\s*\}")


class NeedsLiteral(Exception):
    """A function argument that must be a string literal is not (the position, from 0)."""

    def __init__(self, position: int, why: str) -> None:
        super().__init__(why)
        self.position = position
        self.why = why


Rule = Callable[[Sequence[Size], Sequence["Node"]], Size]


def _fixed(width: float) -> Rule:
    return lambda sizes, nodes: Size(0.0, width)


def _like_first(factor: float, extra: float = 0.0) -> Rule:
    """At most `factor` times the first argument (what the function takes part of, or re-cases)."""
    return lambda sizes, nodes: (sizes[0] if sizes else Size()).times(factor) + Size(0.0, extra)


def _sum(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
    return total(list(sizes))


def _concat_ws(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
    if not sizes:
        return Size()
    return total(list(sizes[1:])) + product(sizes[0], Size(0.0, max(len(sizes) - 1, 1)))


def _literal(nodes: Sequence["Node"], position: int, why: str) -> str:
    text = nodes[position].text if len(nodes) > position and nodes[position].kind == "string" else None
    if text is None:
        raise NeedsLiteral(position, why)
    return text


def _replace(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
    """replace(s, from, to): every match (at most len(s) + 1 of them, for an empty `from`) becomes `to`."""
    if len(sizes) != 3:
        return total(list(sizes))  # Lance refuses the call; nothing to bound
    s, _, to = sizes
    return s + product(s + Size(0.0, 1.0), to)


def _pattern(nodes: Sequence["Node"], position: int) -> str:
    """A regular expression's pattern: a string literal (its compile cost is judged by the gate, see
    pattern_weight)."""
    return _literal(nodes, position, "a regular expression's pattern is a 'string literal'")


def pattern_weight(pattern: str) -> int:
    """What compiling `pattern` costs, roughly, in units of one small character class. Rust's regex engine
    compiles a counted repetition into that many copies of what it repeats, a Unicode class (`\\w`, `\\p{L}`)
    into hundreds of byte ranges, and DataFusion compiles a pattern again for every batch of every fragment.
    Measured in Lance: `\\w{100}` 41 ms, `\\w{64}` 24 ms, `[a-z]{100}` 1.5 ms, `\\d{4}-\\d{2}-\\d{2}` 1.4 ms; and
    over a table of 400 one-row fragments, eight `\\w{8}` took 6.6 s where eight `\\w{2..9}` took 0.3 s.
    So: the product of the counted repetitions (`{n}`, `{n,m}`: m, `{n,}`: n + 1), times UNICODE_CLASS when
    the pattern holds a Unicode word or property class."""
    weight = 1
    for low, comma, high in _REPETITION.findall(pattern):
        weight *= int(high) if high else (int(low or 0) + 1 if comma else max(int(low or 1), 1))
        weight = min(weight, 1 << 40)
    return weight * (UNICODE_CLASS if _UNICODE_CLASS.search(pattern) else 1)


def pattern_of(name: str, nodes: Sequence["Node"]) -> str | None:
    """The literal pattern a regular-expression call compiles (None for other calls)."""
    if name not in REGEX_FUNCTIONS or len(nodes) < 2 or nodes[1].kind != "string":
        return None
    return nodes[1].text


def _groups(pattern: str) -> int:
    return pattern.count("(")  # at least the capture groups: each may copy the whole match


def _regexp_replace(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
    """regexp_replace(s, pattern, replacement[, flags]): each of at most len(s) + 1 matches becomes the
    replacement, whose references (`\\1`, at least two characters each) copy parts of its match, which
    together are at most s."""
    _pattern(nodes, 1)
    replacement = _literal(nodes, 2, "regexp_replace's replacement is a 'string literal'")
    width = float(len(replacement.encode()))
    return sizes[0].times(1.0 + 2.0 * width) + Size(0.0, width)


def _regexp_match(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
    """regexp_match(s, pattern): the match and every group, each at most s (nested groups copy it again)."""
    groups = _groups(_pattern(nodes, 1))
    return (sizes[0] if sizes else Size()).times(1.0 + groups) + Size(0.0, 16.0 * (1 + groups))


def _pattern_literal(position: int, rule: Rule) -> Rule:
    def checked(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
        _pattern(nodes, position)
        return rule(sizes, nodes)
    return checked


def _named_struct(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
    """named_struct('a', x, 'b', y): the names are distinct string literals (a struct with two fields of one
    name cannot be read back as a row)."""
    names = [_literal(nodes, i, "named_struct's field names are 'string literals'") for i in range(0, len(nodes), 2)]
    if len(set(names)) != len(names):
        raise NeedsLiteral(0, "named_struct's field names are distinct")
    return total(list(sizes))


def _to_char(sizes: Sequence[Size], nodes: Sequence["Node"]) -> Size:
    # each specifier of the format writes a bounded field (`%c`: 24 characters for 2 of its own)
    return (sizes[1] if len(sizes) > 1 else Size()).times(16.0) + Size(0.0, 64.0)


_NUMERIC = """abs acos acosh asin asinh atan atan2 atanh cbrt ceil cos cosh cot degrees exp factorial floor gcd
lcm ln log log10 log2 nanvl pi pow power radians round signum sin sinh sqrt tan tanh trunc isnan iszero
length char_length character_length octet_length bit_length strpos instr position ascii starts_with ends_with
contains
array_length cardinality array_has array_has_all array_has_any array_contains list_has array_position
date_part datepart extract date_trunc datetrunc date_bin make_date to_timestamp to_timestamp_seconds
to_timestamp_millis to_timestamp_micros to_timestamp_nanos to_date to_unixtime from_unixtime
json_exists json_array_contains json_array_length json_get_int json_get_float json_get_bool
""".split()
_HASHES = "md5 sha224 sha256 sha384 sha512 digest".split()
_PART_OF_FIRST = """trim ltrim rtrim btrim substr substring left right reverse split_part nullif json_extract json_get
json_get_string get_field array_element list_element""".split()

FUNCTIONS: dict[str, Rule] = {
    **{name: _fixed(NUMBER.fixed) for name in _NUMERIC},
    **{name: _fixed(128.0) for name in _HASHES},
    **{name: _like_first(1.0) for name in _PART_OF_FIRST},
    "chr": _fixed(4.0),
    "to_hex": _fixed(32.0),
    "arrow_typeof": _fixed(4096.0),  # a type's name: bounded by the schema
    "lower": _like_first(3.0), "upper": _like_first(3.0), "initcap": _like_first(3.0),  # ß -> SS, ΐ -> Ϊ́
    "translate": _like_first(4.0),  # a character for a character: 1 byte may become 4
    "concat": _sum, "coalesce": _sum, "nvl": _sum, "ifnull": _sum, "greatest": _sum, "least": _sum,
    "named_struct": _named_struct, "make_array": _sum,
    "concat_ws": _concat_ws,
    "replace": _replace,
    "regexp_replace": _regexp_replace,
    "regexp_like": _pattern_literal(1, _fixed(NUMBER.fixed)),
    "regexp_count": _pattern_literal(1, _fixed(NUMBER.fixed)),
    "regexp_match": _regexp_match,
    "to_char": _to_char, "date_format": _to_char,
}
ALLOWED_FUNCTIONS = frozenset(FUNCTIONS)
