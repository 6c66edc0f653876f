"""The files a schema change that adds columns commits: for each fragment, a data file holding the new columns
for every physical row, computed by Lance from SQL expressions or by a function of some columns, made durable
and hashed before the commit (`operations.ChangeSchema`). Computed outside the table's write lock; a fragment
added before the commit is computed by the next preparation (the commit says `Moved`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from store_service.errors import InvalidArgument
from store_service.expressions import Judged
from store_service.expressions.budget import EVALUATION
from store_service.expressions.lance import fragment_input_bytes
from store_service.storage import field_ids, lance_errors, manifest
from store_service.storage.manifest import DATA_DIR, FragmentRef, Manifest
from store_service.storage.operations import DataKey
from store_service.storage.table import Snapshot, Table


@dataclass(frozen=True)
class NewColumns:
    """Columns to compute for every physical row: SQL expressions by name (Lance's SQL, as LanceDB has it,
    judged by the expression gate), or a function from a batch of the `reads` columns to a batch of the new
    ones."""

    values: Mapping[str, Judged] | Callable[[pa.RecordBatch], pa.RecordBatch]
    reads: list[str] | None = None
    batch_rows: int = 1024
    error_reason: str = "INVALID_EXPRESSION"  # when a value cannot be computed


class ColumnFiles:
    """The new columns' files of one schema change, by fragment, computed as fragments appear; `discard`
    removes them all (a change that failed or was refused)."""

    def __init__(self, table: Table, new_columns: NewColumns) -> None:
        self.table = table
        self.new_columns = new_columns
        self.done: dict[DataKey, tuple[list[Any], list[pa.Field]]] = {}
        self.written: list[str] = []
        self.fields_without_fragments: tuple[pa.Field, ...] | None = None

    def cover(self, snapshot: Snapshot) -> None:
        """Computes the files of the fragments of `snapshot` not covered yet."""
        for ref in snapshot.manifest.fragments:
            if ref.data_key not in self.done:
                self.done[ref.data_key] = self._merged(snapshot, ref)
        if not snapshot.manifest.fragments:
            self.fields_without_fragments = tuple(self._new_fields(snapshot.dataset))

    def keep_used(self, committed: Manifest) -> None:
        """After the commit: removes the files of fragments that went away between attempts."""
        self.table.remove_unused(self.written, committed)

    def discard(self) -> None:
        self.table.remove_files(self.written)
        self.written.clear()
        self.done.clear()

    def _merged(self, snapshot: Snapshot, ref: FragmentRef) -> tuple[list[Any], list[pa.Field]]:
        """(the data files holding the new columns for the fragment's physical rows, made durable; the new
        fields with their ids)."""
        table, new_columns = self.table, self.new_columns
        for path in ref.files:
            table.checksums.verify(path)
        fragment = snapshot.dataset.get_fragment(ref.id)
        given, batch_rows, reserve = new_columns.values, new_columns.batch_rows, 0
        values: Mapping[str, str] | Callable[[pa.RecordBatch], pa.RecordBatch] = given  # type: ignore[assignment]
        if isinstance(given, Mapping):
            what = f"computing {', '.join(list(given)[:4])}"
            reads = frozenset().union(*(judged.columns for judged in given.values()))
            plan = EVALUATION.batches([j.cost for j in given.values()],
                                      fragment_input_bytes(snapshot, ref, reads), what=what, in_flight=2)
            values = {n: j.text for n, j in given.items()}
            batch_rows, reserve = min(batch_rows, plan.rows), plan.reserve
        with EVALUATION.reserve(reserve, what="computing new columns"), self._computing(), \
                table._storage_errors(DATA_DIR, "fragment"):
            metadata, schema = fragment.merge_columns(values, columns=new_columns.reads, batch_size=batch_rows)
        old = set(ref.metadata.files and [f.path for f in ref.metadata.files])
        files = [f for f in metadata.files if f.path not in old]
        paths = [manifest.data_file(f) for f in files]
        self.written.extend(paths)
        table.checksums.append(table.make_durable(paths))
        known = {name for name in snapshot.dataset.schema.names}
        fields = [f.with_nullable(True) for f in field_ids.arrow_with_ids(schema) if f.name not in known]
        return files, fields  # nullable: rows added later hold null in them

    @contextlib.contextmanager
    def _computing(self) -> Iterator[None]:
        """What Lance (or the function) says about values it cannot compute, as the caller's error."""
        try:
            yield
        except (ValueError, TypeError, RuntimeError, OSError, pa.ArrowException) as exc:
            if isinstance(exc, OSError) and lance_errors.is_disk_full(exc):
                raise
            raise InvalidArgument(f"table {self.table.name!r}: the new columns cannot be computed "
                                  f"({self.table.shown(exc)})", reason=self.new_columns.error_reason,
                                  table=self.table.name) from None

    def _new_fields(self, base: Any) -> list[pa.Field]:
        """The new columns' fields on a table without fragments: their types, numbered after the largest id."""
        new_columns = self.new_columns
        with self._computing():
            if isinstance(new_columns.values, Mapping):
                computed = base.scanner(columns={n: j.text for n, j in new_columns.values.items()}).projected_schema
            else:
                reads = base.schema.empty_table().select(list(new_columns.reads or ()))
                computed = new_columns.values(pa.RecordBatch.from_pylist([], schema=reads.schema)).schema
        fields = [f.with_nullable(True) for f in computed]  # rows added later hold null in them
        return field_ids.numbered(fields, max(field_ids.all_ids(base.lance_schema), default=-1) + 1)
