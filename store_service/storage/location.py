"""Where tables live: a local directory, or a prefix in an object store (`s3://bucket/prefix`,
`az://container/prefix`, `gs://bucket/prefix`), behind one small interface.

Lance reads and commits datasets at either kind of location by itself (a commit on object storage is a
manifest written with put-if-not-exists). What the store keeps beside a dataset (checksums, FAISS index
files, re-embedding records, leases) goes through a `Location`:

- `LocalFolder`: files made durable by the store (fsync of each file and its folder before a change is
  acknowledged; a file published by name appears whole: temporary, fsync, rename).
- `ObjectFolder`: objects in a bucket, through the provider's own API (`buckets.py`). An object is durable
  once its PUT is answered and appears whole or not at all, so `sync` has nothing to do and `publish` is a PUT.

Credentials and the endpoint come only from the process's environment (`AWS_*` for S3, `AZURE_STORAGE_*` for
Azure, `GOOGLE_SERVICE_ACCOUNT*` for GCS, as Lance reads them too), never from a caller or a table's metadata;
a plain-http endpoint is refused unless the operator allows it (`AWS_ALLOW_HTTP=true`, `AZURE_ALLOW_HTTP=true`,
`GOOGLE_ALLOW_HTTP=true`). Paths given to a location are relative, with `/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import uuid
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from store_service.errors import StorageFailed
from store_service.storage import durable
from store_service.storage.buckets import Bucket, Entry, azure_account_url, bucket_for

OBJECT_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")
SERVED_SCHEMES = ("s3", "az", "gs")  # where the store makes conditional writes (buckets.py)
SIDECAR_PROBE = "_vectorlane/probes"


class Location(ABC):
    """A folder of files, local or in an object store."""

    uri: str  # what Lance is given for the folder
    on_object_storage: bool

    @abstractmethod
    def child(self, name: str) -> "Location": ...

    def uri_of(self, relative: str) -> str:
        return f"{self.uri}/{relative}"

    @abstractmethod
    def read(self, relative: str) -> bytes: ...

    @abstractmethod
    def open(self, relative: str) -> IO[bytes]:
        """A file to read, streamed (FileNotFoundError when it is not there)."""

    @abstractmethod
    def exists(self, relative: str = "") -> bool:
        """Whether the file exists, or for a folder whether anything is in it."""

    @abstractmethod
    def size(self, relative: str) -> int: ...

    @abstractmethod
    def entries(self, folder: str = "") -> list[Entry]:
        """The files directly in `folder` (none when it does not exist), names starting with "." left out."""

    @abstractmethod
    def folders(self) -> list[str]:
        """The names of the folders directly in this one."""

    @abstractmethod
    def write_new(self, relative: str, data: bytes | memoryview) -> None:
        """Writes a file nothing refers to yet under a fresh name, durably."""

    @abstractmethod
    def publish(self, relative: str, data: bytes) -> None:
        """Puts `data` at `relative`, replacing what was there: readers see the old, or all of the new."""

    @abstractmethod
    def append_line(self, relative: str, text: str) -> None:
        """Appends durably to a log file (local folders only: an object cannot be appended to)."""

    @abstractmethod
    def remove(self, relative: str) -> None:
        """Removes a file; nothing when it is not there."""

    @abstractmethod
    def remove_all(self) -> None:
        """Removes the folder and everything in it."""

    @abstractmethod
    def sync(self, relatives: Iterable[str]) -> None:
        """Makes files someone else wrote (Lance, which never fsyncs) durable, with their folders."""

    # ----- conditional writes (what leases are made of) -----------------------------------------------
    @abstractmethod
    def read_tagged(self, relative: str) -> tuple[bytes, str] | None:
        """A small file's bytes and a tag that changes whenever it is replaced; None when it is not there."""

    @abstractmethod
    def put_if_absent(self, relative: str, data: bytes) -> str | None:
        """Creates the file unless it exists (then None); its new tag."""

    @abstractmethod
    def put_if_unchanged(self, relative: str, data: bytes, tag: str) -> str | None:
        """Replaces the file if it still carries `tag` (else None); its new tag."""

    def shown(self, text: str) -> str:
        """`text` (an error of Lance's or the filesystem's) without where this location is."""
        return text

    def tagged_size(self, relative: str) -> tuple[int, str]:
        """An object's size and ETag (what changes whenever it is written again); object storage only."""
        raise NotImplementedError("a local file has no ETag")


class LocalFolder(Location):
    on_object_storage = False

    def __init__(self, path: Path) -> None:
        self.path = path
        self.uri = str(path)

    def __repr__(self) -> str:
        return f"LocalFolder({self.path})"

    def child(self, name: str) -> "LocalFolder":
        return LocalFolder(self.path / name)

    def local_path(self, relative: str = "") -> Path:
        return self.path / relative if relative else self.path

    def read(self, relative: str) -> bytes:
        return (self.path / relative).read_bytes()

    def open(self, relative: str) -> IO[bytes]:
        return open(self.path / relative, "rb")  # noqa: SIM115 - the caller closes it

    def exists(self, relative: str = "") -> bool:
        return (self.path / relative).exists()

    def size(self, relative: str) -> int:
        return (self.path / relative).stat().st_size

    def entries(self, folder: str = "") -> list[Entry]:
        try:
            found = list(os.scandir(self.path / folder))
        except (FileNotFoundError, NotADirectoryError):
            return []
        entries = []
        for item in found:
            if item.name.startswith(".") or not item.is_file():
                continue
            try:
                stat = item.stat()
            except FileNotFoundError:
                continue
            entries.append(Entry(item.name, stat.st_size, stat.st_mtime_ns))
        return entries

    def folders(self) -> list[str]:
        try:
            return [item.name for item in os.scandir(self.path) if item.is_dir()]
        except FileNotFoundError:
            return []

    def _folder_for(self, target: Path) -> None:
        """Makes the folders up to `target`'s, each made one durable in its parent (not the table's own
        folder: a writer must not make a dropped table's folder again)."""
        missing = []
        folder = target.parent
        while folder != self.path and not folder.is_dir():
            missing.append(folder)
            folder = folder.parent
        for folder in reversed(missing):
            with durable.storage_errors(folder / "folder"):
                folder.mkdir(exist_ok=True)
            durable.fsync_dir(folder.parent)

    def write_new(self, relative: str, data: bytes | memoryview) -> None:
        target = self.path / relative
        self._folder_for(target)
        durable.write_new(target, data)

    def publish(self, relative: str, data: bytes) -> None:
        target = self.path / relative
        self._folder_for(target)
        durable.publish(target, data)

    def append_line(self, relative: str, text: str) -> None:
        target = self.path / relative
        self._folder_for(target)
        with durable.storage_errors(target), open(target, "a") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())

    def remove(self, relative: str) -> None:
        (self.path / relative).unlink(missing_ok=True)

    def remove_all(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)

    def sync(self, relatives: Iterable[str]) -> None:
        folders = set()
        for relative in relatives:
            durable.fsync_file(self.path / relative)
            folders.add((self.path / relative).parent)
        for folder in folders:
            durable.fsync_dir(folder)

    def shown(self, text: str) -> str:
        return text.replace(str(self.path.parent), "<data_dir>")

    @contextlib.contextmanager
    def _locked(self, relative: str) -> Iterator[Path]:
        """The file's path, with an exclusive lock (flock: across processes) on a lock file beside it."""
        target = self.path / relative
        self._folder_for(target)
        with open(target.with_name(f".{target.name}.lock"), "a+b") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield target
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read_tagged(self, relative: str) -> tuple[bytes, str] | None:
        with self._locked(relative) as target:
            try:
                data = target.read_bytes()
            except FileNotFoundError:
                return None
        return data, _tag(data)

    def put_if_absent(self, relative: str, data: bytes) -> str | None:
        with self._locked(relative) as target:
            if target.exists():
                return None
            durable.publish(target, data)
        return _tag(data)

    def put_if_unchanged(self, relative: str, data: bytes, tag: str) -> str | None:
        with self._locked(relative) as target:
            try:
                current = target.read_bytes()
            except FileNotFoundError:
                return None
            if _tag(current) != tag:
                return None
            durable.publish(target, data)
        return _tag(data)


class ObjectFolder(Location):
    """A prefix in an object store's bucket, through the provider's own API (`buckets`)."""

    on_object_storage = True

    def __init__(self, uri: str, bucket: Bucket | None = None, base: str | None = None,
                 root: str | None = None) -> None:
        self.uri = uri.rstrip("/")
        self.root = root or self.uri  # the data directory's URI (what error texts must not show)
        if bucket is None:
            bucket, base = bucket_for(self.uri)
        self.bucket = bucket
        self.base = (base or "").strip("/")

    def __repr__(self) -> str:
        return f"ObjectFolder({self.uri})"

    def child(self, name: str) -> "ObjectFolder":
        return ObjectFolder(f"{self.uri}/{name}", self.bucket, _joined(self.base, name), self.root)

    def _key(self, relative: str) -> str:
        return _joined(self.base, relative)

    def _prefix(self, folder: str) -> str:
        key = self._key(folder)
        return f"{key}/" if key else ""

    def read(self, relative: str) -> bytes:
        with self.open(relative) as f:
            return bytes(f.read())

    def open(self, relative: str) -> IO[bytes]:
        """The object as one streamed GET. (pyarrow's input stream reads a whole object in ranged requests:
        a 200 MB object took 90 s from a local S3 server that answers one GET of it in 0.4 s.)"""
        return self.bucket.get(self._key(relative))

    def exists(self, relative: str = "") -> bool:
        return (bool(relative) and self.bucket.size(self._key(relative)) is not None) or \
            self.bucket.any_under(self._prefix(relative))

    def size(self, relative: str) -> int:
        return self.tagged_size(relative)[0]

    def tagged_size(self, relative: str) -> tuple[int, str]:
        found = self.bucket.head(self._key(relative))
        if found is None:
            raise FileNotFoundError(relative)
        return found

    def entries(self, folder: str = "") -> list[Entry]:
        return [entry for entry in self.bucket.listing(self._prefix(folder))[0] if not entry.name.startswith(".")]

    def folders(self) -> list[str]:
        return self.bucket.listing(self._prefix(""))[1]

    def write_new(self, relative: str, data: bytes | memoryview) -> None:
        self.publish(relative, data)

    def publish(self, relative: str, data: bytes | memoryview) -> None:
        with durable.storage_errors(Path(relative)):  # UNAVAILABLE STORAGE_FAILED: nothing was committed
            self.bucket.put(self._key(relative), data)

    def append_line(self, relative: str, text: str) -> None:
        raise NotImplementedError("an object cannot be appended to")

    def remove(self, relative: str) -> None:
        self.bucket.delete(self._key(relative))

    def remove_all(self) -> None:
        self.bucket.delete_under(self._prefix(""))

    def sync(self, relatives: Iterable[str]) -> None:
        return None  # an object is durable once its PUT is answered

    def read_tagged(self, relative: str) -> tuple[bytes, str] | None:
        return self.bucket.get_tagged(self._key(relative))

    def put_if_absent(self, relative: str, data: bytes) -> str | None:
        return self.bucket.put_if_absent(self._key(relative), data)

    def put_if_unchanged(self, relative: str, data: bytes, tag: str) -> str | None:
        return self.bucket.put_if_match(self._key(relative), data, tag)

    def shown(self, text: str) -> str:
        """Without the data directory's URI, its bucket and prefix in any spelling (s3://b/p, b/p, p/ as
        object_store writes keys, a virtual-hosted b.s3...), and the endpoint."""
        parts = urlsplit(self.root)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        for where in (self.root, f"{bucket}/{prefix}" if prefix else "", f"{prefix}/" if prefix else "",
                      *self.bucket.endpoints()):
            if where:
                text = text.replace(where, "<data_dir>/" if where.endswith("/") else "<data_dir>")
        return text


def _joined(prefix: str, relative: str) -> str:
    """An object key: `relative` under `prefix` (none at a bucket's root)."""
    return f"{prefix}/{relative}" if prefix and relative else prefix or relative


def probe_conditional_writes(location: "Location") -> None:
    """Refuses (StorageFailed) an object store that does not honour conditional writes (some S3-compatible
    servers accept If-None-Match and ignore it): leases, and Lance's own commits, would be unsafe there."""
    probe = f"{SIDECAR_PROBE}/{uuid.uuid4().hex}"
    try:
        if location.put_if_absent(probe, b"1") is None or location.put_if_absent(probe, b"2") is not None:
            raise StorageFailed("the object store does not honour conditional writes (If-None-Match); "
                                "replicas and Lance's commits would be unsafe on it", reason="NO_CONDITIONAL_WRITES")
    except OSError as exc:
        raise StorageFailed(f"the data directory cannot be written ({exc})", reason="STORAGE_UNREACHABLE") from None
    finally:
        try:
            location.remove(probe)
        except OSError:
            pass


def _tag(data: bytes) -> str:
    return f"{len(data)}-{zlib.crc32(data):08x}"


def is_object_uri(text: str | Path) -> bool:
    return urlsplit(str(text)).scheme.lower() in OBJECT_SCHEMES


def check_object_environment(uri: str, environ: dict[str, str] | None = None) -> None:
    """Refuses (ValueError) a data directory on object storage the operator did not fully allow: a URI carrying
    credentials or options, an object URI without a bucket or with a prefix that is not plain, a scheme not
    served, a plain-http endpoint without the provider's switch (AWS_ALLOW_HTTP=true, AZURE_ALLOW_HTTP=true)."""
    env = os.environ if environ is None else environ
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme not in SERVED_SCHEMES:
        raise ValueError(f"{parts.scheme}:// is not served: the store claims work that must run once with "
                         "conditional writes, which it makes on S3 (s3://, and S3-compatible endpoints via "
                         "AWS_ENDPOINT_URL), Azure Blob Storage (az://container/prefix) and GCS (gs://bucket/prefix)")
    if parts.username or parts.password or parts.query:
        raise ValueError("the data directory's URI may not carry credentials or options; give them in the "
                         "environment (AWS_* for s3://, AZURE_STORAGE_* for az://)")
    if not parts.netloc:
        raise ValueError(f"{parts.scheme}:// data directory without a bucket")
    segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if parts.fragment or "//" in parts.path or any(seg in (".", "..") for seg in segments):
        raise ValueError("the data directory's prefix must be plain: no '.', '..', empty segments or '#'")
    if scheme == "s3":
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT") or ""
        if endpoint.lower().startswith("http://") and env.get("AWS_ALLOW_HTTP", "").lower() != "true":
            raise ValueError("the S3 endpoint is plain http; set AWS_ALLOW_HTTP=true to allow it (only on a "
                             "trusted network)")
    if scheme == "gs" and env.get("STORAGE_EMULATOR_HOST", "").lower().startswith("http://") and \
            env.get("GOOGLE_ALLOW_HTTP", "").lower() != "true":
        raise ValueError("the GCS endpoint (STORAGE_EMULATOR_HOST) is plain http; set GOOGLE_ALLOW_HTTP=true to "
                         "allow it (only on a trusted network)")
    if scheme == "az":
        if not env.get("AZURE_STORAGE_ACCOUNT_NAME"):
            raise ValueError("az:// needs the storage account in AZURE_STORAGE_ACCOUNT_NAME")
        if azure_account_url(env).lower().startswith("http://") and env.get("AZURE_ALLOW_HTTP", "").lower() != "true":
            raise ValueError("the Azure endpoint (the emulator's) is plain http; set AZURE_ALLOW_HTTP=true to allow "
                             "it (only on a trusted network)")


def open_location(data_dir: str | Path) -> Location:
    """The location a `--data-dir` names: an object-store URI, or a local directory (made if missing)."""
    text = str(data_dir)
    if is_object_uri(text):
        check_object_environment(text)
        return ObjectFolder(text)
    path = Path(text)
    path.mkdir(parents=True, exist_ok=True)
    return LocalFolder(path)


def as_location(where: Location | Path | str) -> Location:
    """A location for a folder given as a Location, a local path, or a URI (no folder is made)."""
    if isinstance(where, Location):
        return where
    if is_object_uri(str(where)):
        return ObjectFolder(str(where))
    return LocalFolder(Path(where))
