"""How many bytes an expression can make for one row, as a function of the bytes it reads.

`L` is the size of the row's cells that the expression reads (strings and binaries by their bytes, lists by
their values, one byte a boolean, numbers by their width). Every node's output is bounded by
`per_input * L + fixed`; a row's evaluation can hold every node's output at once, so the expression's cost
is the sum over its nodes. The gate refuses an expression whose cost grows faster than MAX_GROWTH times its
input, or by more than MAX_FIXED bytes a row whatever the input, and one whose output grows with the square
of its input (`replace(s, 'x', s)`): nothing about the table can bound that. Evaluation then reserves
`cost(L)` for the rows it evaluates at once (`budget.py`).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_GROWTH = 64
MAX_FIXED = 1024 * 1024


class Quadratic(Exception):
    """A size that grows with the product of two inputs."""


@dataclass(frozen=True)
class Size:
    """At most `per_input * L + fixed` bytes for a row that reads L bytes."""

    per_input: float = 0.0
    fixed: float = 0.0

    def __add__(self, other: "Size") -> "Size":
        return Size(self.per_input + other.per_input, self.fixed + other.fixed)

    def times(self, factor: float) -> "Size":
        return Size(self.per_input * factor, self.fixed * factor)

    def bytes_for(self, input_bytes: float, rows: int = 1) -> float:
        """The bound for `rows` rows that read `input_bytes` in all."""
        return self.per_input * input_bytes + self.fixed * rows


def product(a: Size, b: Size) -> Size:
    """A bound on a * b (each copy of b made once per byte of a, say); Quadratic when both grow with L."""
    if a.per_input and b.per_input:
        raise Quadratic()
    return Size(a.per_input * b.fixed + b.per_input * a.fixed, a.fixed * b.fixed)


def total(sizes: list[Size]) -> Size:
    out = Size()
    for size in sizes:
        out = out + size
    return out


INPUT = Size(1.0, 0.0)  # a column's cell, at most the whole row's input
NUMBER = Size(0.0, 8.0)  # a number, a boolean, a date: a fixed width
