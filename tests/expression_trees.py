"""Random SQL expression trees for property tests of the store's expression gate, and their spellings.

A tree mixes allowed and forbidden functions, short and long operator chains, comparisons and literals; it
knows the verdict the gate must give it (`expected`), whatever way `spell` writes it: any case, quoted
function names, any whitespace, parentheses around chains, and optionally a comment slipped in between two
tokens. Chains are either short (at most SHORT terms: the tree stays far below the gate's depth bound) or long
(at least LONG: far above), so the verdict never depends on where exactly the bound lies.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import strategies as st

ALLOWED = ("abs", "lower", "upper", "length", "trim", "coalesce", "concat", "starts_with", "reverse", "ltrim")
FORBIDDEN = ("repeat", "lpad", "rpad", "array_repeat", "range", "version", "uuid", "random", "now",
             "generate_series", "to_base64x")
ARITY = {"abs": 1, "lower": 1, "upper": 1, "length": 1, "trim": 1, "coalesce": 2, "concat": 2, "starts_with": 2,
         "reverse": 1, "ltrim": 1, "repeat": 2, "lpad": 2, "rpad": 3, "array_repeat": 2, "range": 1, "version": 0,
         "uuid": 0, "random": 0, "now": 0, "generate_series": 2, "to_base64x": 1}
SHORT, LONG = 6, 120
COLUMNS = ("a", "id", "text")


@dataclass(frozen=True)
class Tree:
    kind: str  # column, number, string, call, chain, compare
    name: str = ""
    children: tuple["Tree", ...] = ()

    def has_forbidden(self) -> bool:
        return (self.kind == "call" and self.name in FORBIDDEN) or any(c.has_forbidden() for c in self.children)

    def has_long_chain(self) -> bool:
        return (self.kind == "chain" and len(self.children) >= LONG) or any(c.has_long_chain() for c in self.children)


@dataclass(frozen=True)
class Spelling:
    upper_names: bool
    quoted_names: bool
    space: str
    parenthesised: bool
    comment_at: int | None  # the n-th gap between tokens gets a comment


def leaves() -> st.SearchStrategy[Tree]:
    return st.one_of(st.sampled_from(COLUMNS).map(lambda c: Tree("column", c)),
                     st.integers(0, 1000).map(lambda n: Tree("number", str(n))),
                     st.text("abxy -*/'", max_size=6).map(lambda s: Tree("string", s)))


def _extend(inner: st.SearchStrategy[Tree]) -> st.SearchStrategy[Tree]:
    calls = st.sampled_from(ALLOWED + FORBIDDEN).flatmap(
        lambda f: st.lists(inner, min_size=ARITY[f], max_size=ARITY[f]).map(lambda args: Tree("call", f, tuple(args))))
    short_chains = st.tuples(st.sampled_from(("+", "*", "||", "AND", "OR")),
                             st.lists(inner, min_size=2, max_size=SHORT)
                             ).map(lambda t: Tree("chain", t[0], tuple(t[1])))
    compare = st.tuples(st.sampled_from(("=", "<", ">=", "<>")), inner, inner).map(
        lambda t: Tree("compare", t[0], (t[1], t[2])))
    return st.one_of(calls, short_chains, compare)


def long_chain() -> st.SearchStrategy[Tree]:
    return st.tuples(st.sampled_from(("+", "*", "||")), st.integers(LONG, LONG + 60), st.sampled_from(COLUMNS)).map(
        lambda t: Tree("chain", t[0], tuple(Tree("column", t[2]) for _ in range(t[1]))))


def trees() -> st.SearchStrategy[Tree]:
    """Trees at most a few calls deep, sometimes holding one long chain somewhere."""
    small = st.recursive(leaves(), _extend, max_leaves=12)
    with_long = st.tuples(small, long_chain()).map(lambda t: Tree("compare", "=", t))
    return st.one_of(small, small, small, with_long)


def spellings() -> st.SearchStrategy[Spelling]:
    return st.builds(Spelling, st.booleans(), st.booleans(), st.sampled_from((" ", "  ", "\n", "\t", " \n ")),
                     st.booleans(), st.one_of(st.none(), st.integers(0, 40)))


def tokens(tree: Tree, spelling: Spelling) -> list[str]:
    if tree.kind == "column":
        return [tree.name]
    if tree.kind == "number":
        return [tree.name]
    if tree.kind == "string":
        return ["'" + tree.name.replace("'", "''") + "'"]
    if tree.kind == "call":
        name = tree.name.upper() if spelling.upper_names else tree.name
        name = f"`{name}`" if spelling.quoted_names else name
        out = [name, "("]
        for i, child in enumerate(tree.children):
            out += ([","] if i else []) + tokens(child, spelling)
        return out + [")"]
    if tree.kind == "compare":
        return ["("] + tokens(tree.children[0], spelling) + [tree.name] + tokens(tree.children[1], spelling) + [")"]
    wrapped = spelling.parenthesised or tree.name in ("AND", "OR")
    out = ["("] if wrapped else []
    for i, child in enumerate(tree.children):
        out += ([tree.name] if i else []) + tokens(child, spelling)
    return out + ([")"] if wrapped else [])


def spell(tree: Tree, spelling: Spelling) -> str:
    parts = tokens(tree, spelling)
    gaps = [spelling.space] * (len(parts) - 1)
    commented = spelling.comment_at is not None and gaps
    if commented:
        at = spelling.comment_at % len(gaps)
        gaps[at] = " /* hidden */ " if at % 2 else " -- hidden\n"
    text = parts[0]
    for gap, part in zip(gaps, parts[1:]):
        text += gap + part
    return text


def expected(tree: Tree, spelling: Spelling) -> set[str]:
    """The reasons the gate may give (an empty string: let through), in the order it judges."""
    if tree.has_long_chain():
        return {"EXPRESSION_TOO_COMPLEX"}
    if spelling.comment_at is not None and len(tokens(tree, spelling)) > 1:
        return {"INVALID_FILTER"}
    if tree.has_forbidden():
        return {"FUNCTION_NOT_ALLOWED"}
    return {"", "EXPRESSION_OUTPUT_TOO_LARGE"}
