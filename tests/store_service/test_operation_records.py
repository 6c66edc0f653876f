"""Re-embedding operation records changed by several store processes at once (a replica running the operation,
another asked to cancel it), on a local disk, S3 and Azure Blob Storage: every change is a read, change and
conditional write, so none is lost — a cancel asked meanwhile survives the runner's next save, and the runner's
progress and end survive a cancel."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from store_service.errors import NotFound
from store_service.functions.operations import CANCELLED, RUNNING, SUCCEEDED, OperationLog, new_operation
from store_service.storage.location import LocalFolder, ObjectFolder
from tests.object_store import environment


@pytest.fixture(params=["local", "s3", "az"])
def records(request, tmp_path: Path):
    """The operation log of a real (one-row) Lance table on each kind of location."""
    if request.param == "local":
        files = LocalFolder(tmp_path / "docs.lance")
        lance.write_dataset(pa.table({"id": [1]}), files.uri)
        yield OperationLog(files)
        return
    server = request.getfixturevalue("local_s3" if request.param == "s3" else "local_azure")
    with environment(server.environment()):
        files = ObjectFolder(server.uri(server.bucket("records"), f"{uuid.uuid4().hex[:8]}/docs.lance"))
        lance.write_dataset(pa.table({"id": [1]}), files.uri)
        yield OperationLog(files)


def test_concurrent_changes_to_one_record_are_all_kept(records):
    operation = records.save(new_operation("docs", "REEMBED", "vector", None, 1), create=True)
    threads = [threading.Thread(target=lambda: [records.update(operation.id, lambda op: op.but(
        rows_done=op.rows_done + 1)) for _ in range(8)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert records.load(operation.id, table="docs").rows_done == 32


def test_a_cancel_asked_meanwhile_survives_the_runners_next_save(records):
    runner = records.save(new_operation("docs", "REEMBED", "vector", None, 1), create=True)  # the runner holds a copy
    runner = records.save(runner.but(rows_done=10))
    records.update(runner.id, lambda current: current.but(cancel_requested=True))  # another process cancels
    written = records.save(runner.but(rows_done=20))  # the runner's stale copy, saved over the cancel
    assert written.cancel_requested and written.rows_done == 20  # the runner learns of the cancel from its save
    stored = records.load(runner.id, table="docs")
    assert stored.cancel_requested and stored.rows_done == 20 and stored.state == RUNNING
    records.save(written.but(state=CANCELLED))
    assert records.load(runner.id, table="docs").state == CANCELLED


def test_a_cancel_never_undoes_the_runners_end(records):
    runner = records.save(new_operation("docs", "REEMBED", "vector", None, 1), create=True)
    records.save(runner.but(state=SUCCEEDED, rows_done=5, result_version=3))
    records.update(runner.id, lambda current: current.but(cancel_requested=True))  # a cancel arriving late
    stored = records.load(runner.id, table="docs")
    assert stored.state == SUCCEEDED and stored.rows_done == 5 and stored.result_version == 3


def test_a_record_gone_is_not_made_again_by_a_late_writer(records):
    runner = records.save(new_operation("docs", "REEMBED", "vector", None, 1), create=True)
    records.files.remove(records._state(runner.id))  # the table dropped (and made again) by another process
    assert records.update(runner.id, lambda current: current.but(cancel_requested=True)) is None
    with pytest.raises(NotFound):  # the runner's next save: its table was dropped (and maybe made again)
        records.save(runner.but(rows_done=5))
    assert not records.files.exists(records._state(runner.id))
