"""Where tables live: a local directory, or a prefix in an object store (`s3://bucket/prefix`, and `gs://`,
`az://` / `abfs://` where pyarrow and Lance both reach them), behind one small interface.

Lance reads and commits datasets at either kind of location by itself (a commit on object storage is a
manifest written with put-if-not-exists). What the store keeps beside a dataset (checksums, FAISS index
files, re-embedding records) goes through a `Location`:

- `LocalFolder`: files made durable by the store (fsync of each file and its folder before a change is
  acknowledged; a file published by name appears whole: temporary, fsync, rename).
- `ObjectFolder`: objects through pyarrow's filesystem for the scheme. An object is durable once its PUT
  is answered and appears whole or not at all, so `sync` has nothing to do and `publish` is a PUT.

Credentials and the endpoint come only from the process's environment (`AWS_ACCESS_KEY_ID`,
`AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`, ... as both pyarrow and Lance read them), never
from a caller or a table's metadata; a plain-http endpoint is refused unless the operator allows it
(`AWS_ALLOW_HTTP=true`, Lance's own switch). Paths given to a location are relative, with `/`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
import uuid
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from store_service.errors import StorageFailed
from store_service.storage import durable

OBJECT_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")
SERVED_SCHEMES = ("s3",)  # the others need conditional writes this store does not make on them yet
SIDECAR_PROBE = "_vectorlane/probes"


@dataclass(frozen=True)
class Entry:
    """One file in a folder: its name (no folder), size in bytes and modification time (ns since the epoch)."""

    name: str
    size: int
    mtime_ns: int


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
    """A prefix in an object store, through pyarrow's filesystem for its scheme."""

    on_object_storage = True

    def __init__(self, uri: str, filesystem: Any = None, base: str | None = None, root: str | None = None) -> None:
        import pyarrow.fs as pafs

        self.uri = uri.rstrip("/")
        self.root = root or self.uri  # the data directory's URI (what error texts must not show)
        if filesystem is None:
            filesystem, base = pafs.FileSystem.from_uri(self.uri)
        self.fs = filesystem
        self.base = (base or "").rstrip("/")
        self._pafs = pafs

    def __repr__(self) -> str:
        return f"ObjectFolder({self.uri})"

    def child(self, name: str) -> "ObjectFolder":
        return ObjectFolder(f"{self.uri}/{name}", self.fs, f"{self.base}/{name}", self.root)

    def _key(self, relative: str) -> str:
        return f"{self.base}/{relative}" if relative else self.base

    def read(self, relative: str) -> bytes:
        with self.open(relative) as f:
            return bytes(f.read())

    def open(self, relative: str) -> IO[bytes]:
        """The object as one streamed GET. (pyarrow's input stream reads a whole object in ranged requests:
        a 200 MB object took 90 s from a local S3 server that answers one GET of it in 0.4 s.)"""
        client, bucket, key = self._s3()
        try:
            return client.get_object(Bucket=bucket, Key=_joined(key, relative))["Body"]
        except Exception as exc:  # noqa: BLE001 - botocore's errors are not OSErrors: mapped here
            if _s3_code(exc) in ("NoSuchKey", "404"):
                raise FileNotFoundError(relative) from None
            raise OSError(f"S3 GET of {relative} failed ({_s3_code(exc) or type(exc).__name__})") from None

    def exists(self, relative: str = "") -> bool:
        return bool(self.fs.get_file_info(self._key(relative)).type != self._pafs.FileType.NotFound)

    def size(self, relative: str) -> int:
        info = self.fs.get_file_info(self._key(relative))
        if info.type == self._pafs.FileType.NotFound:
            raise FileNotFoundError(relative)
        return int(info.size)

    def _listing(self, folder: str) -> list[Any]:
        selector = self._pafs.FileSelector(self._key(folder), allow_not_found=True)
        return list(self.fs.get_file_info(selector))

    def entries(self, folder: str = "") -> list[Entry]:
        found = []
        for info in self._listing(folder):
            if info.type != self._pafs.FileType.File or info.base_name.startswith("."):
                continue
            mtime = info.mtime_ns if info.mtime_ns is not None else time.time_ns()
            found.append(Entry(info.base_name, int(info.size), int(mtime)))
        return found

    def folders(self) -> list[str]:
        return [info.base_name for info in self._listing("") if info.type == self._pafs.FileType.Directory]

    def write_new(self, relative: str, data: bytes | memoryview) -> None:
        self.publish(relative, data)

    def publish(self, relative: str, data: bytes | memoryview) -> None:
        with durable.storage_errors(Path(relative)), self.fs.open_output_stream(self._key(relative)) as f:
            f.write(data)

    def append_line(self, relative: str, text: str) -> None:
        raise NotImplementedError("an object cannot be appended to")

    def remove(self, relative: str) -> None:
        """One DELETE (pyarrow's would leave an empty "folder" object behind when it empties a prefix)."""
        client, bucket, key = self._s3()
        try:
            client.delete_object(Bucket=bucket, Key=_joined(key, relative))
        except Exception as exc:  # noqa: BLE001 - as in open
            if _s3_code(exc) not in ("NoSuchKey", "404"):
                raise OSError(f"S3 DELETE of {relative} failed ({_s3_code(exc) or type(exc).__name__})") from None

    def remove_all(self) -> None:
        try:
            self.fs.delete_dir(self.base)
        except FileNotFoundError:
            pass

    def sync(self, relatives: Iterable[str]) -> None:
        return None  # an object is durable once its PUT is answered

    # S3's conditional PUTs (If-None-Match: *, If-Match: <ETag>), which pyarrow does not expose: through boto3,
    # configured by the same AWS_* environment
    def _s3(self) -> tuple[Any, str, str]:
        parts = urlsplit(self.uri)
        return _s3_client(), parts.netloc, parts.path.lstrip("/")

    def read_tagged(self, relative: str) -> tuple[bytes, str] | None:
        client, bucket, key = self._s3()
        try:
            found = client.get_object(Bucket=bucket, Key=_joined(key, relative))
            return found["Body"].read(), str(found["ETag"])
        except Exception as exc:  # noqa: BLE001 - botocore's errors are not OSErrors: mapped here, once
            if _s3_code(exc) in ("NoSuchKey", "404"):
                return None
            raise OSError(f"S3 GET of {relative} failed ({_s3_code(exc) or type(exc).__name__})") from None

    def _conditional_put(self, relative: str, data: bytes, **condition: str) -> str | None:
        client, bucket, key = self._s3()
        try:
            return str(client.put_object(Bucket=bucket, Key=_joined(key, relative), Body=data, **condition)["ETag"])
        except Exception as exc:  # noqa: BLE001 - as above
            if _s3_code(exc) in ("PreconditionFailed", "ConditionalRequestConflict", "NoSuchKey", "412", "409"):
                return None
            raise OSError(f"S3 PUT of {relative} failed ({_s3_code(exc) or type(exc).__name__})") from None

    def put_if_absent(self, relative: str, data: bytes) -> str | None:
        return self._conditional_put(relative, data, IfNoneMatch="*")

    def put_if_unchanged(self, relative: str, data: bytes, tag: str) -> str | None:
        return self._conditional_put(relative, data, IfMatch=tag)

    def shown(self, text: str) -> str:
        """Without the data directory's URI, its bucket and prefix in any spelling (s3://b/p, b/p, p/ as
        object_store writes keys, a virtual-hosted b.s3...), and the endpoint."""
        parts = urlsplit(self.root)
        bucket, prefix = parts.netloc, parts.path.strip("/")
        for where in (self.root, f"{bucket}/{prefix}" if prefix else "", f"{bucket}.s3", f"{prefix}/" if prefix
                      else "", os.environ.get("AWS_ENDPOINT_URL", ""), os.environ.get("AWS_ENDPOINT_URL_S3", "")):
            if where:
                text = text.replace(where, "<data_dir>/" if where.endswith("/") else "<data_dir>")
        return text


_S3_LOCK = threading.Lock()
_S3: list[Any] = []


def _s3_client() -> Any:
    """One boto3 client for the process (clients are thread-safe; making one is not), with timeouts and
    retries short beside a lease's renewal period."""
    with _S3_LOCK:
        if not _S3:
            import boto3
            from botocore.config import Config

            _S3.append(boto3.session.Session().client("s3", config=Config(
                connect_timeout=5, read_timeout=10, retries={"max_attempts": 3, "mode": "standard"})))
        return _S3[0]


def _joined(prefix: str, relative: str) -> str:
    """An object key: `relative` under `prefix` (none at a bucket's root)."""
    return f"{prefix}/{relative}" if prefix else relative


def _s3_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


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
    """Refuses (ValueError) a data directory on object storage the operator did not fully allow: a plain-http
    endpoint without AWS_ALLOW_HTTP=true, a URI carrying credentials, an object URI without a bucket."""
    env = os.environ if environ is None else environ
    parts = urlsplit(uri)
    if parts.username or parts.password or parts.query:
        raise ValueError("the data directory's URI may not carry credentials or options; give them in the "
                         "environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL)")
    if not parts.netloc:
        raise ValueError(f"{parts.scheme}:// data directory without a bucket")
    segments = parts.path.strip("/").split("/") if parts.path.strip("/") else []
    if parts.fragment or "//" in parts.path or any(seg in (".", "..") for seg in segments):
        raise ValueError("the data directory's prefix must be plain: no '.', '..', empty segments or '#'")
    if parts.scheme.lower() not in SERVED_SCHEMES:
        raise ValueError(f"{parts.scheme}:// is not served yet: the store claims work that must run once with S3's "
                         "conditional writes; use s3:// (or an S3-compatible endpoint via AWS_ENDPOINT_URL)")
    if parts.scheme.lower() == "s3":
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT") or ""
        if endpoint.lower().startswith("http://") and env.get("AWS_ALLOW_HTTP", "").lower() != "true":
            raise ValueError("the S3 endpoint is plain http; set AWS_ALLOW_HTTP=true to allow it (only on a "
                             "trusted network)")


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
