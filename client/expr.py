"""LanceDB's expression builder, `col("price") * 2 > lit(10)`: filters and conditions written in Python
rather than as SQL text. An `Expr` is the SQL it stands for (`to_sql()`); every method that takes a filter
(`where`, `delete`, `count_rows`, `update`, merge conditions) takes one."""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Iterable
from typing import Union

import pyarrow as pa

ExprLike = Union["Expr", bool, int, float, str, bytes, dt.date, dt.datetime, decimal.Decimal, None]


def _literal(value: ExprLike) -> str:
    if isinstance(value, Expr):
        return value.to_sql()
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float, decimal.Decimal)):
        return repr(value) if isinstance(value, float) else str(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, (bytes, bytearray)):
        return f"X'{bytes(value).hex()}'"
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _coerce(value: ExprLike) -> "Expr":
    return value if isinstance(value, Expr) else Expr(_literal(value))


class Expr:
    """A SQL expression built in Python; combine with `&`, `|`, `~`, compare with `==`, `<`, ...,
    compute with `+ - * /`."""

    def __init__(self, sql: str) -> None:
        self._sql = sql

    def to_sql(self) -> str:
        return self._sql

    def __repr__(self) -> str:
        return f"Expr({self._sql})"

    def _binary(self, operator: str, other: ExprLike) -> "Expr":
        return Expr(f"({self._sql} {operator} {_coerce(other).to_sql()})")

    def _reflected(self, operator: str, other: ExprLike) -> "Expr":
        return Expr(f"({_coerce(other).to_sql()} {operator} {self._sql})")

    def __eq__(self, other: ExprLike) -> "Expr":  # type: ignore[override]
        return self._binary("=", other)

    def __ne__(self, other: ExprLike) -> "Expr":  # type: ignore[override]
        return self._binary("<>", other)

    def __lt__(self, other: ExprLike) -> "Expr":
        return self._binary("<", other)

    def __le__(self, other: ExprLike) -> "Expr":
        return self._binary("<=", other)

    def __gt__(self, other: ExprLike) -> "Expr":
        return self._binary(">", other)

    def __ge__(self, other: ExprLike) -> "Expr":
        return self._binary(">=", other)

    def __and__(self, other: ExprLike) -> "Expr":
        return self._binary("AND", other)

    def __rand__(self, other: ExprLike) -> "Expr":
        return self._reflected("AND", other)

    def __or__(self, other: ExprLike) -> "Expr":
        return self._binary("OR", other)

    def __ror__(self, other: ExprLike) -> "Expr":
        return self._reflected("OR", other)

    def __invert__(self) -> "Expr":
        return Expr(f"(NOT {self._sql})")

    def __add__(self, other: ExprLike) -> "Expr":
        return self._binary("+", other)

    def __radd__(self, other: ExprLike) -> "Expr":
        return self._reflected("+", other)

    def __sub__(self, other: ExprLike) -> "Expr":
        return self._binary("-", other)

    def __rsub__(self, other: ExprLike) -> "Expr":
        return self._reflected("-", other)

    def __mul__(self, other: ExprLike) -> "Expr":
        return self._binary("*", other)

    def __rmul__(self, other: ExprLike) -> "Expr":
        return self._reflected("*", other)

    def __truediv__(self, other: ExprLike) -> "Expr":
        return self._binary("/", other)

    def __rtruediv__(self, other: ExprLike) -> "Expr":
        return self._reflected("/", other)

    __hash__ = None  # type: ignore[assignment]  # == builds an expression, so an Expr is not hashable

    eq, ne, lt, lte, gt, gte = __eq__, __ne__, __lt__, __le__, __gt__, __ge__
    and_, or_ = __and__, __or__

    def lower(self) -> "Expr":
        return Expr(f"lower({self._sql})")

    def upper(self) -> "Expr":
        return Expr(f"upper({self._sql})")

    def contains(self, substring: ExprLike) -> "Expr":
        return Expr(f"(strpos({self._sql}, {_coerce(substring).to_sql()}) > 0)")

    def isin(self, values: Iterable[ExprLike]) -> "Expr":
        return Expr(f"({self._sql} IN ({', '.join(_coerce(v).to_sql() for v in values)}))")

    def is_null(self) -> "Expr":
        return Expr(f"({self._sql} IS NULL)")

    def is_not_null(self) -> "Expr":
        return Expr(f"({self._sql} IS NOT NULL)")

    def cast(self, data_type: str | pa.DataType) -> "Expr":
        name = data_type if isinstance(data_type, str) else _SQL_TYPES.get(data_type)
        if name is None:
            raise TypeError(f"no SQL type for {data_type}")
        return Expr(f"CAST({self._sql} AS {name})")


_SQL_TYPES = {pa.bool_(): "BOOLEAN", pa.int8(): "TINYINT", pa.int16(): "SMALLINT", pa.int32(): "INT",
              pa.int64(): "BIGINT", pa.float32(): "FLOAT", pa.float64(): "DOUBLE", pa.string(): "VARCHAR",
              pa.date32(): "DATE", pa.timestamp("us"): "TIMESTAMP"}


def col(name: str) -> Expr:
    """A column (a nested field as `"meta.lang"`); quoted when its name needs it."""
    parts = name.split(".")
    return Expr(".".join(p if p.isidentifier() else f"`{p.replace('`', '``')}`" for p in parts))


def lit(value: ExprLike) -> Expr:
    """A literal value: bool, number, string, bytes, date, datetime, Decimal or None."""
    return Expr(_literal(value))


def func(name: str, *args: ExprLike) -> Expr:
    """A call of a SQL function (the store allows the scalar functions its filters allow)."""
    if not name.isidentifier():
        raise ValueError(f"not a function name: {name!r}")
    return Expr(f"{name}({', '.join(_coerce(a).to_sql() for a in args)})")


def sql_of(condition: "str | Expr | None") -> str:
    """A filter as the SQL text the store takes."""
    if condition is None:
        return ""
    return condition.to_sql() if isinstance(condition, Expr) else condition


__all__ = ["Expr", "col", "func", "lit", "sql_of"]
