"""What the store lets through to Lance's SQL engine (DataFusion): filters it does not evaluate itself and
`add_columns` expressions. Lance plans any scalar function DataFusion has, and some build a value from a
count the caller chooses (`repeat('x', 2000000000)`, `lpad`, `array_repeat`, `range`): one short string
could exhaust the store's memory. So the text may call only ALLOWED_FUNCTIONS (scalar functions whose output
is bounded by their input), holds no statement (`;`) or query word (SELECT, FROM, ...), is bounded in length
and nests at most MAX_DEPTH parentheses (sqlparser also stops at its own recursion limit).
"""

from __future__ import annotations

import re

from store_service.errors import InvalidArgument

MAX_DEPTH = 32

# Scalar functions of Lance's SQL (DataFusion's) that a filter or an add_columns expression may call.
ALLOWED_FUNCTIONS = frozenset("""
abs acos asin atan atan2 cbrt ceil cos exp floor ln log log10 log2 pow power round signum sin sqrt tan trunc
greatest least coalesce nullif nvl ifnull isnan iszero
lower upper trim ltrim rtrim btrim length char_length character_length octet_length bit_length substr substring
left right strpos position replace reverse initcap concat concat_ws starts_with ends_with ascii chr md5 sha224
sha256 sha384 sha512 digest to_hex split_part translate regexp_like regexp_match regexp_replace regexp_count
date_trunc date_part datepart extract to_timestamp to_timestamp_seconds to_timestamp_millis to_timestamp_micros
to_date to_char from_unixtime make_date date_bin
array_length cardinality array_has array_has_all array_has_any array_element array_contains list_has
get_field named_struct struct arrow_typeof arrow_cast cast try_cast
json_extract json_exists json_get json_get_string json_get_int json_get_float json_get_bool json_array_contains
json_array_length
""".split())
_SQL_WORDS_WITH_PARENTHESES = frozenset({"in", "and", "or", "not", "when", "then", "else", "case", "is", "like",
                                         "ilike", "between", "as", "end", "exists"})
_STRINGS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|`[^`]*`")
_CALLS = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_QUERY_WORDS = re.compile(r"\b(select|from|with|union|insert|update|delete|drop|create|alter|copy|attach)\b",
                          re.IGNORECASE)


def check(text: str, what: str, *, reason: str, max_length: int, **metadata: str) -> None:
    """Refuses `text` (the caller's `what`, e.g. "filter 'x = 1'") unless it is one bounded expression."""
    if len(text) > max_length:
        raise InvalidArgument(f"{what} has {len(text)} characters; at most {max_length}", reason=reason,
                              limit=str(max_length), **metadata)
    bare = _STRINGS.sub("''", text)
    if ";" in bare or _QUERY_WORDS.search(bare):
        raise InvalidArgument(f"{what}: an expression over the row, not a statement or a query (no ';', SELECT, "
                              "FROM, ...)", reason=reason, **metadata)
    for match in _CALLS.finditer(bare):
        function = match.group(1).lower()
        if function not in ALLOWED_FUNCTIONS and function not in _SQL_WORDS_WITH_PARENTHESES:
            raise InvalidArgument(f"{what}: function {match.group(1)[:64]!r} is not one the store lets through "
                                  "(it calls only scalar functions whose output its input bounds)",
                                  reason=reason, function=function[:64], **metadata)
    depth = deepest = 0
    for char in bare:
        depth += (char == "(") - (char == ")")
        deepest = max(deepest, depth)
    if deepest > MAX_DEPTH:
        raise InvalidArgument(f"{what} nests {deepest} parentheses deep; at most {MAX_DEPTH}", reason=reason,
                              **metadata)
