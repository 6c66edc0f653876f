"""Rows on their way into a table: vectors checked (`on_bad_vectors`), missing ones computed by the embed
service for columns with a server function, the result conformed to the table's schema.

A streamed add runs `prepare` + stage (write a fragment no version lists yet) for each incoming batch on a
worker pool while the next batch is received, keeping a bounded number in flight; only when every batch is
staged does one commit publish them all. If anything fails (a bad row, the embed service, the caller
leaving) the staged fragments are removed and the table is exactly as it was.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from store_service.ingest.bad_vectors import BadVectorPolicy, ListDims, clean_vectors, covered_columns
from store_service.ingest.json_values import check_json_columns
from store_service.embedder import NO_DEADLINE, Deadline, Embedder
from store_service.errors import InvalidArgument
from store_service.schema import FunctionConfig, functions_of, is_multivector, is_vector, vector_type
from store_service.storage.operations import Staged
from store_service.storage.table import Table, conform

MAX_SUBVECTORS_PER_ROW = 1024


@dataclass(frozen=True)
class BadVectors:
    policy: BadVectorPolicy = BadVectorPolicy.ERROR
    fill_value: float = 0.0


@dataclass(frozen=True)
class Batch:
    """Rows as one request message brought them, with the encoded images that message sent for image URIs
    in its rows (embedded instead of fetching those URIs; the rows keep the URIs)."""

    rows: pa.Table | None
    images: Mapping[str, bytes] = field(default_factory=dict)


class RowPreparer:
    """Turns incoming rows into rows of `schema`, computing the vectors a server function can."""

    def __init__(self, schema: pa.Schema, embedder: Embedder, bad: BadVectors = BadVectors(),
                 deadline: Deadline = NO_DEADLINE, *, max_subvectors: int = MAX_SUBVECTORS_PER_ROW) -> None:
        self.schema = schema
        self._max_subvectors = max_subvectors
        self._embedder = embedder
        self._bad = bad
        self._deadline = deadline
        functions = {f.vector_column: f for f in functions_of(schema)}
        self._functions = functions
        self._server: dict[str, FunctionConfig] = {
            column: config for column, config in functions.items()
            if embedder.is_server_function(config, deadline)}
        self._list_dims = ListDims()

    def prepare(self, rows: pa.Table, images: Mapping[str, bytes] | None = None) -> pa.Table:
        """`rows` as rows of the table; for the batches of one add, `clean_lists` then `finish` each, in order."""
        return self.finish(self.clean_lists(rows), images)

    def clean_lists(self, rows: pa.Table) -> pa.Table:
        """The bad vectors of `list<float>` vector columns handled. Their length is found from the add's first
        batch holding one, so an add's batches pass through here in order (it is cheap: no embedding)."""
        for name, dims in covered_columns(self.schema, rows.schema, set(self._functions)).items():
            if dims is None:
                rows = self._list_dims.clean(rows, name, self._bad.policy, self._bad.fill_value)
        return rows

    def finish(self, rows: pa.Table, images: Mapping[str, bytes] | None = None) -> pa.Table:
        """Fixed-size vector columns checked, missing vectors computed, the rows conformed to the table."""
        covered = covered_columns(self.schema, rows.schema, set(self._functions))
        for column in self.schema:
            if not is_vector(column):
                continue
            if column.name in rows.column_names and column.name not in covered:
                continue  # not a vector column by LanceDB's rule: its type alone decides what it takes
            dims = column.type.list_size
            config = self._server.get(column.name)
            if config is not None:
                rows = clean_vectors(rows, column.name, dims, self._bad.policy, self._bad.fill_value,
                                     missing_is_bad=False)
                rows = self._embed_missing(rows, config, dims, images or {})
            rows = clean_vectors(rows, column.name, dims, self._bad.policy, self._bad.fill_value,
                                 missing_is_bad=self._missing_is_bad(rows, column))
        check_json_columns(rows, self.schema)
        self._check_subvectors(rows)
        return conform(rows, self.schema)

    def _check_subvectors(self, rows: pa.Table) -> None:
        """A multivector row holds at most `max_subvectors` vectors: a search compares every one of them with
        every query vector (found by the hostile pass: one row of 1M made each later search take 3.3 s)."""
        for column in self.schema:
            if not is_multivector(column) or column.name not in rows.column_names:
                continue
            values = rows.column(column.name)
            if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
                continue  # conform refuses it
            counts = pc.list_value_length(values).fill_null(0).to_numpy(zero_copy_only=False)
            if len(counts) and counts.max() > self._max_subvectors:
                row = int(counts.argmax())
                raise InvalidArgument(f"row {row}: multivector column {column.name!r} holds {int(counts[row])} "
                                      f"vectors; at most {self._max_subvectors} a row (--max-subvectors-per-row)",
                                      reason="TOO_MANY_SUBVECTORS", column=column.name, row=row,
                                      limit=self._max_subvectors)

    def _missing_is_bad(self, rows: pa.Table, column: pa.Field) -> bool | np.ndarray:
        """Which rows' null vectors are bad vectors (handled by on_bad_vectors): every one in a required
        column; in a nullable column, those whose function had a source value to embed (it should have given
        a vector). Any other null is stored as NULL, as LanceDB stores it."""
        if not column.nullable:
            return True
        config = self._functions.get(column.name)
        if config is None or config.source_column not in rows.column_names:
            return False
        return rows.column(config.source_column).is_valid().to_numpy(zero_copy_only=False)

    def _embed_missing(self, rows: pa.Table, config: FunctionConfig, dims: int, images: Mapping[str, bytes]
                       ) -> pa.Table:
        if rows.num_rows == 0 or config.source_column not in rows.column_names:
            return rows
        source = rows.column(config.source_column).combine_chunks()
        if config.vector_column in rows.column_names:
            current = rows.column(config.vector_column).combine_chunks()
            need = current.is_null().to_numpy(zero_copy_only=False) & source.is_valid().to_numpy(
                zero_copy_only=False)
        else:
            current = pa.nulls(rows.num_rows, vector_type(dims))
            need = source.is_valid().to_numpy(zero_copy_only=False)
        if not need.any():
            return rows
        computed = self._embedder.embed_source(config, source.filter(pa.array(need)), self._deadline, images)
        matrix = np.zeros((rows.num_rows, dims), dtype=np.float32)
        present = current.is_valid().to_numpy(zero_copy_only=False)
        if present.any():
            matrix[present] = current.filter(pa.array(present)).flatten().to_numpy(
                zero_copy_only=False).reshape(-1, dims)
        matrix[need] = computed
        valid = present | need
        column = pa.FixedSizeListArray.from_arrays(pa.array(matrix.reshape(-1)), type=vector_type(dims),
                                                   mask=pa.array(~valid))
        if config.vector_column in rows.column_names:
            return rows.set_column(rows.column_names.index(config.vector_column), config.vector_column, column)
        return rows.append_column(pa.field(config.vector_column, column.type), column)


def stage_stream(table: Table, preparer: RowPreparer, batches: Iterable[Batch], pool: ThreadPoolExecutor,
                 max_in_flight: int = 3) -> tuple[list[Staged], int]:
    """Prepares every batch and stages them all as one write; (staged, rows). A receiving thread takes the
    caller's messages as they come and has up to `max_in_flight` of them prepared (embedded, checked) side by
    side in `pool`, while this thread writes the prepared ones in order: receiving, preparing and writing
    overlap, and an add of many messages is one set of fragments. On any failure nothing staged is left."""
    ready: queue.Queue[Future[pa.Table] | BaseException | None] = queue.Queue()
    slots = threading.Semaphore(max_in_flight)
    stop = threading.Event()
    submitting = threading.Lock()  # a failed write's stop and a new submission never cross

    def receive() -> None:
        try:
            for batch in batches:
                while not slots.acquire(timeout=0.1):
                    if stop.is_set():
                        return
                rows = preparer.clean_lists(batch.rows)
                with submitting:
                    if stop.is_set():
                        return
                    ready.put(pool.submit(preparer.finish, rows, batch.images))
        except BaseException as exc:  # the caller's stream failed (cancelled, a bad message): the write stops
            ready.put(exc)
        finally:
            ready.put(None)

    def prepared() -> Iterator[pa.Table]:
        while True:
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            try:
                yield item.result()
            finally:
                slots.release()

    receiver = threading.Thread(target=receive, name="ingest-receive", daemon=True)
    receiver.start()
    try:
        staged = table.stage_stream(prepared(), preparer.schema)
    except BaseException:
        # Not joined: it may wait for the caller's next message, which ends when the call does (the error
        # ends it). It submits nothing more; what it queued is cancelled.
        with submitting:
            stop.set()
            _cancel_queued(ready)
        raise
    receiver.join()
    return ([staged] if staged.rows else []), staged.rows


def _cancel_queued(ready: queue.Queue[Future[pa.Table] | BaseException | None]) -> None:
    while True:
        try:
            item = ready.get_nowait()
        except queue.Empty:
            return
        if isinstance(item, Future):
            item.cancel()

