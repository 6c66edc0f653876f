"""The expression gate judges the parsed tree, not the text: the same tree gets the same verdict however it
is spelt, what runs is the tree written back, and the bounds hold where the measurements put them."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from store_service.errors import InvalidArgument, ResourceExhausted, ServiceError
from store_service.expressions import Role, judge
from store_service.expressions.budget import EvaluationBudget
from store_service.expressions.cost import MAX_GROWTH, Size
from store_service.expressions.functions import ALLOWED_FUNCTIONS
from store_service.expressions.gate import MAX_DEPTH, MAX_NODES, Gate
from store_service.expressions.row_sizes import cell_bytes
from tests.expression_trees import expected, spell, spellings, trees


def verdict(text: str, role: Role = Role.FILTER) -> str:
    try:
        Gate().judge(text, role, what="it", max_length=65536)
    except ServiceError as refused:
        return refused.reason
    return ""


@pytest.mark.parametrize("text", ["repeat('ab', 3)", "REPEAT('ab',3)", "Repeat ( 'ab' , 3 )", "`repeat`('ab', 3)",
                                  "`REPEAT`('ab', 3)", "repeat\n('ab', 3)", "repeat\t('ab', 3)",
                                  "length(lpad(text, 9, 'x')) > 1", "array_repeat(1, 3)", "range(3)", "version()",
                                  "a.repeat('x', 3)", "CURRENT_TIMESTAMP", "nope(a)"])
def test_a_function_not_allowed_is_refused_whatever_its_spelling(text):
    assert verdict(text) == "FUNCTION_NOT_ALLOWED"


@pytest.mark.parametrize("text", ["repeat/**/('ab', 3)", "repeat--x\n('ab', 3)", "a > 0 -- trailing",
                                  "a /* inline */ > 0", "'a'\n || /* c */ 'b'"])
def test_comments_are_refused(text):
    assert verdict(text) == "INVALID_FILTER"
    assert verdict(text, Role.VALUE) == "INVALID_EXPRESSION"


@pytest.mark.parametrize("text", ["text = '--x'", "text = '/* not a comment */'", "`a--b` = 1", "`x/*y` > 2"])
def test_comment_marks_inside_strings_and_names_are_text(text):
    assert verdict(text) == ""


@pytest.mark.parametrize("text", ["a = 1; DROP TABLE t", "a IN (SELECT a FROM t)", "a AS b", "a, b", "a FROM t",
                                  "EXISTS (SELECT 1)", "CASE WHEN a THEN 1 END", "$$x$$ = text", "a = ?",
                                  "x -> 'y'", '"a" = 1', "CAST(a AS INT[])", "a >", ""])
def test_what_is_not_one_expression_over_the_row_is_refused(text):
    assert verdict(text) == "INVALID_FILTER"


def test_what_runs_is_the_tree_written_back():
    judged = judge("a   ==\n1 AND\ttext LIKE 'x%'", Role.FILTER, what="it", max_length=1000)
    assert judged.text == "a = 1 AND text LIKE 'x%'"
    assert judged.columns == frozenset({"a", "text"})
    assert judge("added > timestamp '2024-01-08 00:00:00'", Role.FILTER, what="it",
                 max_length=1000).text == "added > TIMESTAMP '2024-01-08 00:00:00'"


def test_depth_is_bounded_where_lance_is_far_from_its_stack_limit():
    """Measured with pylance 13: 700 added terms (or 3,000 ORed inside coalesce) overflow Lance's stack."""
    assert verdict("+".join(["a"] * (MAX_DEPTH - 2)) + " > 0") == ""
    assert verdict("+".join(["a"] * (MAX_DEPTH + 1)) + " > 0") == "EXPRESSION_TOO_COMPLEX"
    assert verdict("||".join(["text"] * 100) + " = ''") == "EXPRESSION_TOO_COMPLEX"
    assert verdict("coalesce(" + " OR ".join(["a = 1"] * 100) + ", false)") == "EXPRESSION_TOO_COMPLEX"
    # an AND / OR chain on the filter's boolean skeleton is walked without recursion: 9,000 plan in 0.1 s
    assert verdict(" OR ".join(["a = 1"] * 1000)) == ""
    assert verdict("NOT (" + " AND ".join(["a > 1"] * 1000) + ")") == ""


def test_terms_are_bounded():
    assert verdict("a IN (" + ",".join(["1"] * (MAX_NODES - 10)) + ")") == ""
    assert verdict("a IN (" + ",".join(["1"] * MAX_NODES) + ")") == "EXPRESSION_TOO_COMPLEX"


def test_a_text_longer_than_asked_is_refused_before_parsing():
    with pytest.raises(InvalidArgument) as refused:
        judge("a > 1 AND " * 100 + "a > 1", Role.FILTER, what="it", max_length=64)
    assert refused.value.reason == "INVALID_FILTER" and refused.value.metadata["limit"] == "64"


@pytest.mark.parametrize("text", [
    "length(replace(replace(replace(text,'x',text),'x',text),'x',text))",  # quadratic, and nested
    "replace(text, 'x', text)",
    "replace(replace(replace(replace(text,'x','yyy'),'x','yyy'),'x','yyy'),'x','yyy')",  # 4^4 = 256 times
    "||".join(["text"] * 40),  # within the depth bound, but 40 copies held at once
])
def test_output_that_can_outgrow_its_input_is_refused_before_evaluation(text):
    with pytest.raises(ResourceExhausted) as refused:
        judge(text, Role.VALUE, what="it", max_length=65536)
    assert refused.value.reason == "EXPRESSION_OUTPUT_TOO_LARGE"


@pytest.mark.parametrize("text", ["replace(replace(text, 'x', 'yy'), 'y', 'zz')", "upper(lower(text))",
                                  "concat(text, ' ', text)", "regexp_replace(text, '(.)', '$1$1', 'g')",
                                  "substr(text, 1, 3) || '...'", "CAST(a AS VARCHAR)"])
def test_bounded_growth_is_let_through_with_its_cost(text):
    judged = judge(text, Role.VALUE, what="it", max_length=65536)
    assert 1 <= judged.cost.per_input <= MAX_GROWTH


def test_regular_expressions_take_literal_patterns_and_replacements():
    assert verdict("regexp_replace(text, 'a', text, 'g')") == "FUNCTION_NOT_ALLOWED"
    assert verdict("regexp_like(text, text)") == "FUNCTION_NOT_ALLOWED"
    assert verdict("regexp_like(text, '^a')") == ""


@pytest.mark.parametrize("text, reason", [
    ("regexp_like(text, '\\d{4}-\\d{2}-\\d{2}')", ""),
    ("regexp_like(text, '\\w+ \\w{3,}')", ""),
    ("regexp_like(text, '\\w{8}')", "EXPRESSION_TOO_COMPLEX"),  # 400 one-row fragments: 6.6 s for eight
    ("regexp_like(text, '[a-z]{100}')", "EXPRESSION_TOO_COMPLEX"),
    (" OR ".join(f"regexp_like(text, 'a{k}')" for k in range(9)), "EXPRESSION_TOO_COMPLEX"),
    ("length(regexp_match(text, '((((.*))))')) > 0", ""),
    ("regexp_match(text, '" + "(" * 100 + ".*" + ")" * 100 + "')", "EXPRESSION_OUTPUT_TOO_LARGE"),
    ("named_struct('a', 1, 'a', 2)", "FUNCTION_NOT_ALLOWED"),
])
def test_regular_expressions_are_bounded_in_compile_cost_and_output(text, reason):
    assert verdict(text, Role.VALUE) == reason


def test_every_allowed_function_has_a_size_rule():
    for name in ALLOWED_FUNCTIONS:
        args = ", ".join(["text", "'x'", "'y'"][: 3 if name in ("replace", "regexp_replace") else 2])
        args = "'name', text" if name == "named_struct" else args
        assert verdict(f"{name}({args})") in ("", "EXPRESSION_OUTPUT_TOO_LARGE"), name


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=trees(), first=spellings(), second=spellings())
def test_the_verdict_is_the_trees_whatever_the_spelling(tree, first, second):
    a, b = spell(tree, first), spell(tree, second)
    assert verdict(a) in expected(tree, first), a
    assert verdict(b) in expected(tree, second), b
    if first.comment_at is None and second.comment_at is None:
        assert verdict(a) == verdict(b), (a, b)


def test_the_budget_sizes_batches_from_the_rows_input_and_refuses_what_it_cannot_hold():
    budget = EvaluationBudget(64 * 1024 * 1024)
    plan = budget.batches([Size(3.0, 16.0)], np.full(10_000, 1000.0), what="it")
    assert plan.rows * (4 * 1000 + 16) <= budget.batch_bytes < (plan.rows + 1) * (4 * 1000 + 16)
    with pytest.raises(ResourceExhausted) as refused:
        budget.batches([Size(3.0, 0.0)], np.array([10.0, 8 * 1024 * 1024]), what="it")
    assert refused.value.reason == "EXPRESSION_OUTPUT_TOO_LARGE"
    with budget.reserve(60 * 1024 * 1024, what="it"):
        with pytest.raises(ResourceExhausted) as busy:
            with budget.reserve(8 * 1024 * 1024, what="it"):
                pass
        assert busy.value.reason == "EVALUATION_BUDGET_EXHAUSTED"
    with budget.reserve(64 * 1024 * 1024, what="it"):  # released: the whole budget is free again
        pass


def test_row_sizes_count_the_bytes_each_row_reads():
    strings = pa.array(["a", None, "abcd"])
    lists = pa.array([[1, 2], [], None], pa.list_(pa.int32()))
    struct = pa.StructArray.from_arrays([strings, pa.array([1, 2, 3], pa.int64())], names=["s", "n"])
    assert cell_bytes(strings).tolist() == [5, 4, 8]  # each with its 4-byte offset: a null still counts
    assert cell_bytes(lists).tolist() == [12, 4, 4]
    assert cell_bytes(struct).tolist() == [13, 12, 16]
    assert cell_bytes(strings.slice(1)).tolist() == [4, 8]
    assert cell_bytes(pa.array(["xx", "y", "xx"]).dictionary_encode()).tolist() == [6, 5, 6]
    assert cell_bytes(pa.array([True, False])).tolist() == [1, 1]
    empties = pa.array([[""] * 1000], pa.list_(pa.string()))  # found by the hostile pass: it counted 0
    assert cell_bytes(empties).tolist() == [4 + 1000 * 4]
    json = pa.ExtensionArray.from_storage(pa.json_(), pa.array(["[1]", "x" * 100_000]))
    assert cell_bytes(json).tolist() == [7, 100_004]  # per row, not the column's average
