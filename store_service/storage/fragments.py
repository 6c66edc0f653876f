"""vectorlane's own files inside a dataset (`_vectorlane/`): FAISS index files and the chunks of re-embedding
operations. Immutable Arrow IPC or index bytes under fresh names, fsynced, referenced with their size and
checksum (`storage/checksums.py`), checked on every read and (Arrow) validated in full, so a corrupt file is
reported (DATA_LOSS) and never served or computed on. The table's rows themselves are Lance fragments
(`storage/table.py`)."""

from __future__ import annotations

import dataclasses
import mmap
import os
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from store_service.errors import DataLoss, NotFound
from store_service.storage import manifest
from store_service.storage.checksums import SIDECAR_DIR, Digest, checksum, checksum_parallel
from store_service.storage.location import LocalFolder, Location, as_location

INDEXES_DIR = f"{SIDECAR_DIR}/indexes"
ROW_ID = "_rowid"


@dataclass(frozen=True)
class FileRef:
    """A file of vectorlane's, with what it must contain: its row count and checksum."""

    path: str  # relative to the dataset directory
    rows: int
    checksum: str  # `crc32:…`, or a bare SHA-256 in references written before
    bytes: int
    first_row_id: int | None = None  # unused since tables are Lance datasets; kept for records that carry it

    @classmethod
    def from_json(cls, body: dict) -> "FileRef":
        fields = dict(body)
        if "sha256" in fields:  # written before checksums were CRC-32
            fields["checksum"] = fields.pop("sha256")
        return cls(**fields)

    def with_first_row_id(self, first: int) -> "FileRef":
        return dataclasses.replace(self, first_row_id=first)


def write(table_dir: Location | Path, table: pa.Table, subdir: str) -> FileRef:
    """Writes `table` as a new fragment file (fsynced) and returns the reference a manifest will hold."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    return write_file(table_dir, memoryview(sink.getvalue()), subdir, ".arrow", table.num_rows)


_HASH_ASIDE_BYTES = 1 << 20  # from this size the checksum is computed on a second thread during the write


def require_table(table_dir: Location | Path) -> None:
    """TABLE_NOT_FOUND when the table's folder is gone (dropped while a background writer still ran), so that
    the writer does not make the folder again."""
    files = as_location(table_dir)
    if not (manifest.listed_versions(files) if files.on_object_storage else files.exists(manifest.VERSIONS_DIR)):
        name = files.uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".lance")
        raise NotFound(f"no table named {name!r}", reason="TABLE_NOT_FOUND", table=name)


def write_file(table_dir: Location | Path, data: bytes | memoryview, subdir: str, suffix: str, rows: int
               ) -> FileRef:
    """Writes any immutable table file (fragment, deletions, index) under a fresh name, durably. For a large
    file the checksum runs beside the write (both release the GIL)."""
    files = as_location(table_dir)
    relative = f"{subdir}/{uuid.uuid4().hex}{suffix}"
    require_table(files)
    size = memoryview(data).nbytes
    digest = Digest()
    hashing = None
    if size >= _HASH_ASIDE_BYTES:
        hashing = threading.Thread(target=digest.update, args=(data,), name="fragment-checksum")
        hashing.start()
    else:
        digest.update(data)
    try:
        files.write_new(relative, data)
    finally:
        if hashing is not None:
            hashing.join()
    return FileRef(relative, rows, digest.value(), size)


_READ_CHUNK = 1 << 22


def read_file(table_dir: Location | Path, ref: FileRef, *, table: str) -> bytearray:
    """The bytes of a table file, verified against its size and checksum (DATA_LOSS otherwise): streamed into
    one buffer of the size its reference gives, each piece hashed as it arrives (no second pass, no buffer
    grown or joined: a 1.5 GB index file from a bucket is held once)."""
    data = bytearray(ref.bytes)
    view = memoryview(data)
    digest = Digest(ref.checksum)
    size = 0
    try:
        with as_location(table_dir).open(ref.path) as stream:
            while piece := stream.read(_READ_CHUNK):
                if size + len(piece) > ref.bytes:
                    size += len(piece)  # longer than it was written: corrupt, not read further
                    break
                view[size:size + len(piece)] = piece
                digest.update(piece)
                size += len(piece)
    except FileNotFoundError:
        raise DataLoss(f"table {table!r}: file {ref.path} is missing", reason="FRAGMENT_MISSING", table=table,
                       file=ref.path) from None
    finally:
        view.release()
    if size != ref.bytes or digest.value() != ref.checksum:
        raise DataLoss(f"table {table!r}: file {ref.path} does not match its checksum; it is not served",
                       reason="FRAGMENT_CORRUPT", table=table, file=ref.path)
    return data


def verified_source(table_dir: Location | Path, ref: FileRef, *, table: str) -> Path | bytearray:
    """A verified table file for a reader that parses it itself (FAISS reads an index straight into its own
    structures): on a local disk its path, checked where it lies (mapped, not copied); on object storage its
    bytes, read once and checked."""
    files = as_location(table_dir)
    if isinstance(files, LocalFolder):
        return verified_path(files.path, ref, table=table)
    return read_file(files, ref, table=table)


def verified_path(table_dir: Path, ref: FileRef, *, table: str) -> Path:
    """The path of a local table file whose size and checksum were just checked where it lies."""
    path = table_dir / ref.path
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == ref.bytes:
                if size == 0:
                    found = checksum(b"", ref.checksum)
                else:
                    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                        found = checksum_parallel(mapped, ref.checksum)
    except FileNotFoundError:
        raise DataLoss(f"table {table!r}: file {ref.path} is missing", reason="FRAGMENT_MISSING", table=table,
                       file=ref.path) from None
    if size != ref.bytes or found != ref.checksum:
        raise DataLoss(f"table {table!r}: file {ref.path} does not match its checksum; it is not served",
                       reason="FRAGMENT_CORRUPT", table=table, file=ref.path)
    return path


def read(table_dir: Location | Path, ref: FileRef, *, table: str) -> pa.Table:
    data = read_file(table_dir, ref, table=table)
    try:
        result = pa.ipc.open_file(pa.py_buffer(data)).read_all()
        result.validate(full=True)
    except pa.ArrowException as exc:
        raise DataLoss(f"table {table!r}: file {ref.path} is unreadable ({exc})", reason="FRAGMENT_CORRUPT",
                       table=table, file=ref.path) from None
    if result.num_rows != ref.rows:
        raise DataLoss(f"table {table!r}: file {ref.path} holds {result.num_rows} rows, not {ref.rows}",
                       reason="FRAGMENT_CORRUPT", table=table, file=ref.path)
    return result
