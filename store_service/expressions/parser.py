"""Caller-supplied SQL parsed by sqlparser-rs (through `sqloxide`), the parser Lance itself runs its SQL through,
on threads whose stacks are large enough for any text the store accepts.

Why threads of their own: an operator chain (`a+a+...+a`) is parsed in a loop but becomes a tree as deep as
it is long, and sqlparser walks (and frees) that tree recursively. Measured here with sqloxide 0.61: parsing
costs 260-520 bytes of stack a level, and a chain of 32,000 terms killed the process on an 8 MiB stack (a
gRPC worker's). A chain has at most one level per two characters, so MAX_TEXT_CHARS characters need at most
~34 MiB; STACK_BYTES gives that a margin of more than 7. Only the stack pages a parse touches are ever
committed, so the reservation costs address space, not memory.

Rendering (`render`) is recursive too (1-2 KiB a level), so it is only asked of trees the gate has bounded.
"""

from __future__ import annotations

import queue
import re
import threading
from concurrent.futures import Future
from typing import Any, Callable

import sqloxide

MAX_TEXT_CHARS = 128 * 1024
STACK_BYTES = 256 * 1024 * 1024
THREADS = 2
PREFIX = "SELECT "
DIALECT = "generic"  # Lance's own dialect is GenericDialect with backquoted identifiers (see gate.py)


class ParseError(ValueError):
    """sqlparser refused the text; the message is its own (line and column of the SELECT it was wrapped in)."""


class _Worker:
    """Runs parse and render calls on THREADS daemon threads with STACK_BYTES of stack each."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]]] = queue.SimpleQueue()
        self._started = False
        self._lock = threading.Lock()

    def _start(self) -> None:
        with self._lock:
            if self._started:
                return
            previous = threading.stack_size(STACK_BYTES)
            try:
                for number in range(THREADS):
                    threading.Thread(target=self._serve, name=f"sql-parser-{number}", daemon=True).start()
            finally:
                threading.stack_size(previous)
            self._started = True

    def _serve(self) -> None:
        while True:
            work, future = self._jobs.get()
            try:
                future.set_result(work())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller, whatever it is
                future.set_exception(exc)

    def run(self, work: Callable[[], Any]) -> Any:
        self._start()
        future: Future[Any] = Future()
        self._jobs.put((work, future))
        return future.result()


_worker = _Worker()


_POSITION = re.compile(r"at Line: (\d+), Column: (\d+)")


def _parse(sql: str) -> list[dict[str, Any]]:
    try:
        statements: list[dict[str, Any]] = sqloxide.parse_sql(sql, dialect=DIALECT)
        return statements
    except ValueError as exc:
        message = " ".join(str(exc).replace("Query parsing failed.", "").replace("sql parser error: ", "").split())

        def in_text(found: re.Match[str]) -> str:  # the caller's line and column, not those of the SELECT
            line, column = int(found.group(1)), int(found.group(2))
            return f"at line {line}, column {column - len(PREFIX) if line == 1 else column}"
        raise ParseError(_POSITION.sub(in_text, message)) from None


def parse_select(text: str) -> list[dict[str, Any]]:
    """The statements of `SELECT <text>` as sqlparser's syntax tree (plain dicts and lists, spans included)."""
    if len(text) > MAX_TEXT_CHARS:
        raise ValueError(f"text of {len(text)} characters; the parser takes at most {MAX_TEXT_CHARS}")
    sql = PREFIX + text
    statements: list[dict[str, Any]] = _worker.run(lambda: _parse(sql))
    return statements


def render(statements: list[dict[str, Any]]) -> str:
    """The SQL text sqlparser writes for a syntax tree (only for trees whose depth the gate has bounded)."""
    rendered = _worker.run(lambda: sqloxide.restore_ast(statements))
    return str(rendered[0])
