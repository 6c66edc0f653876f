"""A table's upkeep: compaction prepared outside the write lock (its files written and made durable, then one
`operations.Compact` commit), and cleanup of old versions with what vectorlane keeps beside them."""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from typing import Any

from lance.optimize import Compaction

from store_service.storage import leases, manifest
from store_service.storage.fragments import INDEXES_DIR
from store_service.storage.operations import Compact
from store_service.storage.table import Table

MAX_ROWS_PER_FILE = 1 << 20
UNLISTED_INDEX_GRACE_S = 6 * 3600.0  # an index file no version lists is removed only once this old


@dataclass(frozen=True)
class Cleaned:
    """What a cleanup removed."""

    versions: int = 0
    files: int = 0
    bytes: int = 0


def prepare_compaction(table: Table, target_rows_per_fragment: int = MAX_ROWS_PER_FILE) -> Compact | None:
    """Lance's compaction of the latest version, its new files durable and hashed: small fragments, and
    fragments with many deleted rows, rewritten into fewer (stable row ids kept, so FAISS labels stay valid).
    None when nothing needs compacting. The commit refuses it (Moved) if a fragment it rewrote was changed
    meanwhile."""
    base = table.writer_dataset()
    plan = Compaction.plan(base, {"target_rows_per_fragment": target_rows_per_fragment,
                                  "materialize_deletions": True})
    if plan.num_tasks() == 0:
        return None
    results = [task.execute(base) for task in plan.tasks]
    paths = tuple(manifest.data_file(f) for result in results for fragment in result.new_fragments
                  for f in fragment.files)
    try:
        checksums = table.make_durable(paths)
    except BaseException:
        table.remove_files(paths)
        raise
    originals = {int(f.id): _deletion(f) for result in results for f in result.original_fragments}
    return Compact(tuple(results), int(plan.read_version), originals, paths, checksums)


def _deletion(fragment: Any) -> str | None:
    return manifest.deletion_path(fragment.id, fragment.deletion_file) if fragment.deletion_file else None


def cleanup(table: Table, older_than: datetime.timedelta) -> Cleaned:
    """Removes versions older than `older_than` (never the latest, never a tagged one) and the files only
    they referenced; what vectorlane keeps beside them (index files, checksum lines) follows."""
    with table.write_lock:
        base = table.writer_dataset()
        stats = base.cleanup_old_versions(older_than=older_than, error_if_tagged_old_versions=False)
        table.forget_versions(set(table.version_numbers()))
        removed_indexes = _collect_index_files(table, base)
        leases.collect_expired(table.files)  # the claims of work that finished long ago
        table.checksums.retain(table.files.exists)
    return Cleaned(versions=int(stats.old_versions), bytes=int(stats.bytes_removed) + removed_indexes[1],
                   files=int(stats.data_files_removed + stats.deletion_files_removed +
                             stats.transaction_files_removed) + removed_indexes[0])


def _collect_index_files(table: Table, dataset: Any) -> tuple[int, int]:
    present = table.files.entries(INDEXES_DIR)
    if not present:
        return 0, 0
    referenced: set[str] = set()
    for number in table.version_numbers():
        try:
            _, indexes = manifest.split_schema(dataset.checkout_version(number).schema)
        except (OSError, ValueError):
            continue
        referenced.update(entry["file"]["path"] for entry in indexes)
    files = size = 0
    settled = time.time_ns() - int(UNLISTED_INDEX_GRACE_S * 1e9)  # a newer one may be a build not committed yet
    for entry in present:
        relative = f"{INDEXES_DIR}/{entry.name}"
        if relative not in referenced and entry.mtime_ns < settled:
            size += entry.size
            table.files.remove(relative)
            files += 1
    return files, size
