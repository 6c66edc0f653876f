"""Checksums of the files a commit adds to a Lance dataset, which Lance itself does not keep.

Lance serves a flipped byte silently (measured with pylance 13: `validate()` passes). So every data file,
deletion file and manifest vectorlane writes gets a line (path relative to the dataset, size, checksum),
durable before the commit that references the file is acknowledged: on a local disk appended to
`<table>.lance/_vectorlane/checksums.jsonl` and fsynced; on object storage, which cannot append, one object
per commit under `_vectorlane/checksums/` (merged into one when there are many; a replica that meets a file
it has no line for lists them again, since another replica may have committed it).

The first time this process reads a file it is hashed and compared: a mismatch is DATA_LOSS naming the
table, and the other tables keep serving. A file with no line (written by LanceDB, or
by vectorlane before checksums) is served as Lance serves it: unverified.

The log is append-only; a torn last line (a crash mid-append, never acknowledged) is ignored.

The checksum is CRC-32 (zlib's, 2.9 GB/s on one core here against SHA-256's 1.0 GB/s with SHA-NI): it
guards against bit rot and torn or truncated files, as CRC-32C does in HDFS and GCS, not against someone
who can write the table's folder (they could rewrite this log as well). Values carry their algorithm
(`crc32:…`); lines and references written before carry a bare SHA-256, which is still checked as such.

On object storage the line of a file Lance wrote holds its ETag instead (`etag:…`, read with a HEAD), and
checking it is a HEAD: an object is never changed in place, only written again whole, which gives it a new
ETag, so a file replaced, truncated or with a byte flipped since the commit is still DATA_LOSS, and the
provider's own checksums guard its bytes at rest. Hashing the content would download every file a second
time, on each write and on each replica's first read (what this store did before: lines in `crc32:` stay
checked by content). Files vectorlane writes itself (FAISS indexes, re-embedding chunks) keep the CRC-32 of
the bytes it uploaded, checked when they are read whole.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import threading
import uuid
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from store_service.errors import DataLoss
from store_service.storage.location import Location, as_location

SIDECAR_DIR = "_vectorlane"  # vectorlane's own files inside a dataset; Lance and LanceDB ignore the folder
LOG_FILE = "checksums.jsonl"
PARTS_DIR = f"{SIDECAR_DIR}/checksums"  # on object storage: one object of lines per commit
MERGE_FROM_PARTS = 64  # this many parts are merged into one when a table is opened
_CHUNK = 1 << 22


CRC32 = "crc32:"
ETAG = "etag:"  # on object storage: the object's ETag when the commit recorded it


class Digest:
    """A running checksum in the algorithm of `expected` (CRC-32 for anything new; a bare hex value is a
    SHA-256 from before)."""

    def __init__(self, expected: str = CRC32) -> None:
        self._sha = None if expected.startswith(CRC32) else hashlib.sha256()
        self._crc = 0

    def update(self, data: bytes | memoryview) -> None:  # both release the GIL on large buffers
        if self._sha is not None:
            self._sha.update(data)
        else:
            self._crc = zlib.crc32(data, self._crc)

    def value(self) -> str:
        return self._sha.hexdigest() if self._sha is not None else f"{CRC32}{self._crc:08x}"


def checksum(data: bytes | memoryview, expected: str = CRC32) -> str:
    digest = Digest(expected)
    digest.update(data)
    return digest.value()


PARALLEL_FROM_BYTES = 64 << 20  # a buffer this large is hashed in pieces on several cores


def checksum_parallel(data: bytes | memoryview | mmap.mmap, expected: str = CRC32, workers: int = 0) -> str:
    """`checksum`, with a large buffer's CRC-32 computed piece by piece on `workers` threads (all cores by
    default: zlib releases the GIL) and the pieces' CRCs combined: what a process waits for before it serves
    a 1.5 GB index file. A SHA-256 (written before) cannot be split and runs on one core."""
    view = memoryview(data).cast("B")
    workers = workers or os.cpu_count() or 1
    if not expected.startswith(CRC32) or workers < 2 or view.nbytes < PARALLEL_FROM_BYTES:
        return checksum(view, expected)
    step = -(-view.nbytes // workers)
    pieces = [view[start:start + step] for start in range(0, view.nbytes, step)]
    with ThreadPoolExecutor(max_workers=len(pieces), thread_name_prefix="checksum-piece") as pool:
        crcs = list(pool.map(zlib.crc32, pieces))
    value = crcs[0]
    for piece, crc in zip(pieces[1:], crcs[1:]):
        value = crc32_combine(value, crc, piece.nbytes)
    return f"{CRC32}{value:08x}"


# ----- CRC-32 of a concatenation from the CRCs of its parts ----------------------------------------------
# CRC-32 (reflected, polynomial 0xEDB88320) is linear over GF(2): crc(A + B) = crc(A) * x^(8 |B|) + crc(B)
# modulo the polynomial. Bit 31 of a reflected value is the coefficient of x^0.

_POLY = 0xEDB88320


def _multiply(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC polynomial, both reflected."""
    product = 0
    bit = 1 << 31
    while a:
        if a & bit:
            product ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _POLY if b & 1 else b >> 1
    return product


def _x_to_2_to_the(k: int, cache: list[int] = [1 << 30]) -> int:  # noqa: B006 - the cache is the point
    """x^(2^k) modulo the polynomial (x^1 is 1 << 30 reflected), by squaring."""
    while len(cache) <= k:
        cache.append(_multiply(cache[-1], cache[-1]))
    return cache[k]


def crc32_combine(first: int, second: int, second_length: int) -> int:
    """The CRC-32 of A followed by B, given crc(A), crc(B) and B's length in bytes (zlib's crc32_combine)."""
    shift = 1 << 31  # x^0
    bits, k = second_length, 3  # x^(8 * length) = product of x^(2^k) over the set bits of length, k from 3
    while bits:
        if bits & 1:
            shift = _multiply(_x_to_2_to_the(k), shift)
        bits >>= 1
        k += 1
    return _multiply(shift, first) ^ second


def checksum_of(path: Path | tuple[Location, str], expected: str = CRC32) -> tuple[int, str]:
    """(size, checksum) of a file as it is stored (a local path, or a location and a path in it), in the
    algorithm of `expected` (for `etag:`, the object's ETag: a HEAD, nothing read)."""
    if expected.startswith(ETAG) and isinstance(path, tuple):
        size, tag = path[0].tagged_size(path[1])
        return size, f"{ETAG}{tag}"
    digest = Digest(expected)
    size = 0
    with (path[0].open(path[1]) if isinstance(path, tuple) else open(path, "rb")) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.value()


class ChecksumLog:
    """The checksums of one dataset's files, and which of them this process has verified."""

    def __init__(self, dataset_dir: Location | Path, table: str) -> None:
        self.files = as_location(dataset_dir)
        self.table = table
        self._known: dict[str, tuple[int, str]] | None = None
        self._parts: set[str] = set()  # on object storage: the parts read so far
        self._verified: set[str] = set()
        self._running: dict[str, threading.Event] = {}  # files a thread is checking now
        self._lock = threading.Lock()

    def _load(self) -> dict[str, tuple[int, str]]:
        if self._known is None:
            known: dict[str, tuple[int, str]] = {}
            try:
                _parse(self.files.read(f"{SIDECAR_DIR}/{LOG_FILE}").decode(errors="replace"), known)
            except FileNotFoundError:
                pass
            self._known = known
            if self.files.on_object_storage:
                self._read_new_parts()
                if len(self._parts) >= MERGE_FROM_PARTS:
                    self._merge()
        return self._known

    def _read_new_parts(self) -> bool:
        """Reads the parts written since the last look (other replicas' commits); whether there were any."""
        assert self._known is not None
        new = False
        for _ in range(3):  # a part merged away between the listing and its read: list again
            try:
                for entry in self.files.entries(PARTS_DIR):
                    if entry.name not in self._parts:
                        _parse(self.files.read(f"{PARTS_DIR}/{entry.name}").decode(errors="replace"), self._known)
                        self._parts.add(entry.name)
                        new = True
                return new
            except FileNotFoundError:
                continue
        return new

    def _merge(self) -> None:
        """One part with every line known, then the parts it holds removed (a part another writer adds
        meanwhile is neither read nor removed)."""
        assert self._known is not None
        merged = f"{uuid.uuid4().hex}.jsonl"
        self.files.publish(f"{PARTS_DIR}/{merged}", _lines(self._known))
        for part in self._parts:
            self.files.remove(f"{PARTS_DIR}/{part}")
        self._parts = {merged}

    def hash(self, paths: Iterable[str]) -> dict[str, tuple[int, str]]:
        """(size, checksum) of files relative to the dataset, as they are stored now: on object storage
        their ETags (a HEAD each: the bytes Lance just uploaded are not downloaded again to be hashed)."""
        kind = ETAG if self.files.on_object_storage else CRC32
        return {relative: checksum_of((self.files, relative), kind) for relative in paths}

    def append(self, entries: dict[str, tuple[int, str]]) -> None:
        """Records lines for files a commit is about to reference, durably (before the commit)."""
        if not entries:
            return
        text = _lines(entries).decode()
        with self._lock:
            if self.files.on_object_storage:
                part = f"{uuid.uuid4().hex}.jsonl"
                self.files.publish(f"{PARTS_DIR}/{part}", text.encode())
                self._load()
                self._parts.add(part)
            else:
                self.files.append_line(f"{SIDECAR_DIR}/{LOG_FILE}", text)
            self._load().update(entries)
            self._verified.update(entries)  # just hashed from what is stored

    def record(self, paths: Iterable[str]) -> None:
        self.append(self.hash(paths))

    def retain(self, keep: Callable[[str], bool]) -> None:
        """Keeps the lines of the files `keep` accepts (after a cleanup removed files)."""
        with self._lock:
            if self.files.on_object_storage:
                self._load()
                self._read_new_parts()
            known = {path: entry for path, entry in self._load().items() if keep(path)}
            self._known = known
            if self.files.on_object_storage:
                self._merge()
            else:
                self.files.publish(f"{SIDECAR_DIR}/{LOG_FILE}", _lines(known))

    def knows(self, relative: str) -> bool:
        with self._lock:
            return relative in self._load()

    def is_verified(self, relative: str) -> bool:
        with self._lock:
            return relative in self._verified

    def verify(self, relative: str, reason: str = "FRAGMENT_CORRUPT") -> None:
        """Checks a file against its line the first time this process reads it (DATA_LOSS on a mismatch).
        A file another thread is checking (a read, or the background scrub) is waited for, not hashed twice."""
        while True:
            with self._lock:
                if relative in self._verified:
                    return
                running = self._running.get(relative)
                if running is None:
                    running = self._running[relative] = threading.Event()
                    break
            running.wait()  # then look again: verified, or this thread checks it and reports what it finds
        try:
            self._check(relative, reason)
        finally:
            with self._lock:
                self._running.pop(relative, None)
            running.set()

    def verify_folder(self, folder: str, reason: str) -> None:
        """`verify` for each file in a folder (an FTS index's), listed once per process."""
        with self._lock:
            if folder in self._verified:
                return
        with self._lock:
            logged = [path for path in self._load() if path.startswith(folder + "/")]
        present = {f"{folder}/{entry.name}" for entry in self.files.entries(folder)}
        for path in sorted(present | set(logged)):  # a logged file that is gone is FRAGMENT_MISSING
            self.verify(path, reason)
        with self._lock:
            self._verified.add(folder)

    def _check(self, relative: str, reason: str) -> None:
        with self._lock:
            expected = self._load().get(relative)
            if expected is None and self.files.on_object_storage and self._read_new_parts():
                expected = self._load().get(relative)  # committed by another replica since this one looked
        if expected is not None and expected[1].startswith(ETAG) and not self.files.on_object_storage:
            expected = None  # a table copied off a bucket: an ETag is not a local file's; served as Lance serves it
        if expected is not None:
            try:
                found = checksum_of((self.files, relative), expected[1])
            except FileNotFoundError:
                raise DataLoss(f"table {self.table!r}: file {relative} is missing", reason="FRAGMENT_MISSING",
                               table=self.table, file=relative) from None
            if found != expected:
                raise DataLoss(f"table {self.table!r}: file {relative} does not match its checksum; it is not "
                               "served", reason=reason, table=self.table, file=relative)
        with self._lock:
            self._verified.add(relative)


def _parse(text: str, into: dict[str, tuple[int, str]]) -> None:
    for line in text.splitlines():
        try:
            entry = json.loads(line)
            value = entry["checksum"] if "checksum" in entry else entry["sha256"]
            into[str(entry["path"])] = (int(entry["bytes"]), str(value))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line: its commit was never acknowledged


def _lines(entries: dict[str, tuple[int, str]]) -> bytes:
    return "".join(_line(p, size, digest) + "\n" for p, (size, digest) in entries.items()).encode()


def _line(path: str, size: int, value: str) -> str:
    key = "checksum" if ":" in value else "sha256"  # a bare SHA-256 (a line from before) keeps its own form
    return json.dumps({"path": path, "bytes": size, key: value})
