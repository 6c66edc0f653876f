"""One bucket of an object store, as the store uses it: streamed GETs, listings one level deep, PUTs plain and
conditional (what leases are made of), DELETEs. Each provider's own SDK speaks its API; nothing above this
module knows which provider it is on.

- `S3Bucket` (`s3://`): boto3, conditional PUTs with `If-None-Match: *` / `If-Match: <ETag>`.
- `AzureContainer` (`az://`): azure-storage-blob, the same conditions as Blob Storage's `If-None-Match` /
  `If-Match` on Put Blob.
- `GcsBucket` (`gs://`): google-cloud-storage, conditions on the object's generation (`ifGenerationMatch`,
  0 for "absent"). Untested against Google's service here: no local GCS server honours the condition (the
  store's start probe refuses one that does not, `NO_CONDITIONAL_WRITES`, which the tests check).

Credentials and endpoints come only from the process's environment, read the way Lance (object_store) reads
them, so the store and Lance always reach the same place: `AWS_*` for S3; `AZURE_STORAGE_ACCOUNT_NAME` with
`AZURE_STORAGE_ACCOUNT_KEY` or `AZURE_STORAGE_SAS_TOKEN` for Azure (`AZURE_STORAGE_USE_EMULATOR=true` with
`AZURITE_BLOB_STORAGE_URL` for a local emulator); for GCS `GOOGLE_SERVICE_ACCOUNT` (a key file) or
`GOOGLE_SERVICE_ACCOUNT_KEY` (its JSON), else the pod's identity (`STORAGE_EMULATOR_HOST` for a local emulator).
Errors name the verb and the provider's error code, never a
key, a bucket or an endpoint, as StorageUnreachable (UNAVAILABLE, and an OSError).
"""

from __future__ import annotations

import io
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit

from store_service.errors import StorageUnreachable

_TIMEOUTS = {"connect": 5, "read": 10}  # short beside a lease's renewal period
_ATTEMPTS = 3
_MULTIPART = 64 * 1024 * 1024  # a plain PUT above this goes up in parts
_T = TypeVar("_T")
_POOL = 32  # connections kept per client: request threads, a multipart upload's parts and leases at once


@dataclass(frozen=True)
class Entry:
    """One file in a folder: its name (no folder), size in bytes, modification time (ns since the epoch) and,
    on object storage, its ETag (what changes whenever the object is written again)."""

    name: str
    size: int
    mtime_ns: int
    tag: str = ""


class Bucket(ABC):
    """One bucket (S3) or container (Azure). Keys are full object names; `prefix` arguments end with "/"
    (or are empty for the bucket's root)."""

    provider: str

    @abstractmethod
    def get(self, key: str) -> IO[bytes]:
        """The object, streamed (FileNotFoundError when it is not there)."""

    @abstractmethod
    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        """The object's bytes and its ETag; None when it is not there."""

    @abstractmethod
    def head(self, key: str) -> tuple[int, str] | None:
        """The object's size and ETag; None when it is not there."""

    def size(self, key: str) -> int | None:
        found = self.head(key)
        return None if found is None else found[0]

    @abstractmethod
    def listing(self, prefix: str) -> tuple[list[Entry], list[str]]:
        """The objects directly under `prefix` and the names of the "folders" there."""

    @abstractmethod
    def any_under(self, prefix: str) -> bool: ...

    @abstractmethod
    def put(self, key: str, data: bytes | memoryview) -> None: ...

    @abstractmethod
    def put_if_absent(self, key: str, data: bytes) -> str | None:
        """Creates the object unless it exists (then None); its ETag."""

    @abstractmethod
    def put_if_match(self, key: str, data: bytes, tag: str) -> str | None:
        """Replaces the object if it still has ETag `tag` (else None, also when it is gone); its new ETag."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Deletes the object; nothing when it is not there."""

    @abstractmethod
    def delete_under(self, prefix: str) -> None:
        """Deletes every object whose key starts with `prefix`."""

    def endpoints(self) -> list[str]:
        """Where this bucket is reached, in the spellings an error text may carry."""
        return []


class _Stream(io.RawIOBase):
    """An object being downloaded, as a file whose errors are the store's: whatever the SDK raises while the
    body streams (a timeout, a connection reset, a short read) is StorageUnreachable, like its other calls."""

    def __init__(self, read: Callable[[int], bytes], read_all: Callable[[], bytes],
                 failed: Callable[[str, BaseException], OSError], close: Callable[[], None] = lambda: None) -> None:
        self._read, self._read_all, self._failed, self._close = read, read_all, failed, close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        try:
            data = self._read(len(buffer))
        except StorageUnreachable:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK's own errors, mapped here
            raise self._failed("GET", exc) from None
        buffer[:len(data)] = data
        return len(data)

    def readall(self) -> bytes:
        try:
            return self._read_all()
        except StorageUnreachable:
            raise
        except Exception as exc:  # noqa: BLE001 - as in readinto
            raise self._failed("GET", exc) from None

    def close(self) -> None:
        try:
            self._close()
        except Exception:  # noqa: BLE001 - a download given up: nothing to report
            pass
        super().close()


def _streamed(stream: _Stream) -> IO[bytes]:
    return io.BufferedReader(stream, buffer_size=1 << 20)


def bucket_for(uri: str) -> tuple[Bucket, str]:
    """The bucket an object-store URI names, and the key prefix of its path ("" at the bucket's root)."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    prefix = parts.path.strip("/")
    if scheme == "s3":
        return S3Bucket(parts.netloc), prefix
    if scheme == "az":
        return AzureContainer(parts.netloc), prefix
    if scheme == "gs":
        return GcsBucket(parts.netloc), prefix
    raise ValueError(f"{scheme}:// is not an object store this store serves")


# ----- S3 -----------------------------------------------------------------------------------------------------
_S3_LOCK = threading.Lock()
_S3: dict[tuple[str, ...], Any] = {}
_S3_SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                "AWS_PROFILE")


def _s3_client() -> Any:
    """One boto3 client per environment the process has (one, but for tests; clients are thread-safe,
    making one is not)."""
    settings = tuple(os.environ.get(name, "") for name in _S3_SETTINGS)
    with _S3_LOCK:
        if settings not in _S3:
            import boto3
            from botocore.config import Config

            _S3[settings] = boto3.session.Session().client("s3", config=Config(
                connect_timeout=_TIMEOUTS["connect"], read_timeout=_TIMEOUTS["read"], max_pool_connections=_POOL,
                retries={"max_attempts": _ATTEMPTS, "mode": "standard"}))
        return _S3[settings]


def _s3_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    return str((response or {}).get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""


_S3_MISSING = ("NoSuchKey", "404", "NotFound")
_S3_PRECONDITION = ("PreconditionFailed", "ConditionalRequestConflict", "412", "409")


class S3Bucket(Bucket):
    provider = "S3"

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = _s3_client()

    def _failed(self, verb: str, exc: BaseException) -> OSError:
        return StorageUnreachable(f"S3 {verb} failed ({_s3_code(exc) or type(exc).__name__})")

    def get(self, key: str) -> IO[bytes]:
        try:
            body = self.client.get_object(Bucket=self.name, Key=key)["Body"]
        except Exception as exc:  # noqa: BLE001 - botocore's errors are not OSErrors: mapped here, once
            if _s3_code(exc) in _S3_MISSING:
                raise FileNotFoundError(key.rsplit("/", 1)[-1]) from None
            raise self._failed("GET", exc) from None
        return _streamed(_Stream(body.read, body.read, self._failed, body.close))

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        try:
            found = self.client.get_object(Bucket=self.name, Key=key)
            return found["Body"].read(), str(found["ETag"])
        except Exception as exc:  # noqa: BLE001 - as in get
            if _s3_code(exc) in _S3_MISSING:
                return None
            raise self._failed("GET", exc) from None

    def head(self, key: str) -> tuple[int, str] | None:
        try:
            found = self.client.head_object(Bucket=self.name, Key=key)
            return int(found["ContentLength"]), str(found["ETag"])
        except Exception as exc:  # noqa: BLE001 - as in get
            if _s3_code(exc) in _S3_MISSING:
                return None
            raise self._failed("HEAD", exc) from None

    def listing(self, prefix: str) -> tuple[list[Entry], list[str]]:
        files: list[Entry] = []
        folders: list[str] = []
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix,
                                                                          Delimiter="/")
            for page in pages:
                for item in page.get("Contents", []):
                    name = item["Key"][len(prefix):]
                    if name:
                        files.append(Entry(name, int(item["Size"]), int(item["LastModified"].timestamp() * 1e9),
                                           str(item.get("ETag", ""))))
                folders.extend(common["Prefix"][len(prefix):].rstrip("/") for common in page.get("CommonPrefixes", []))
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("LIST", exc) from None
        return files, folders

    def any_under(self, prefix: str) -> bool:
        try:
            return bool(self.client.list_objects_v2(Bucket=self.name, Prefix=prefix, MaxKeys=1).get("KeyCount", 0))
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("LIST", exc) from None

    def put(self, key: str, data: bytes | memoryview) -> None:
        """One PUT, or above _MULTIPART a multipart upload, made again whole (up to _ATTEMPTS times) when one
        of its parts kept failing: it becomes visible only when completed, so a retry is safe."""
        for attempt in range(_ATTEMPTS):
            try:
                if len(data) <= _MULTIPART:
                    self.client.put_object(Bucket=self.name, Key=key, Body=bytes(data))
                else:
                    from boto3.s3.transfer import TransferConfig

                    self.client.upload_fileobj(io.BytesIO(data), self.name, key, Config=TransferConfig(
                        multipart_threshold=_MULTIPART, multipart_chunksize=_MULTIPART // 4, max_concurrency=4))
                return
            except Exception as exc:  # noqa: BLE001 - as in get
                if len(data) <= _MULTIPART or attempt == _ATTEMPTS - 1:
                    raise self._failed("PUT", exc) from None
                time.sleep(0.5 * 2 ** attempt)

    def _conditional_put(self, key: str, data: bytes, **condition: str) -> str | None:
        try:
            return str(self.client.put_object(Bucket=self.name, Key=key, Body=data, **condition)["ETag"])
        except Exception as exc:  # noqa: BLE001 - as in get
            if _s3_code(exc) in _S3_PRECONDITION + _S3_MISSING:
                return None
            raise self._failed("PUT", exc) from None

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        return self._conditional_put(key, data, IfNoneMatch="*")

    def put_if_match(self, key: str, data: bytes, tag: str) -> str | None:
        return self._conditional_put(key, data, IfMatch=tag)

    def delete(self, key: str) -> None:
        try:
            self.client.delete_object(Bucket=self.name, Key=key)
        except Exception as exc:  # noqa: BLE001 - as in get
            if _s3_code(exc) not in _S3_MISSING:
                raise self._failed("DELETE", exc) from None

    def delete_under(self, prefix: str) -> None:
        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.name, Prefix=prefix)
            for page in pages:
                keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
                if keys:
                    self.client.delete_objects(Bucket=self.name, Delete={"Objects": keys, "Quiet": True})
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("DELETE", exc) from None

    def endpoints(self) -> list[str]:
        return [os.environ.get(name, "") for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT")] + \
            [f"{self.name}.s3"]


# ----- Azure Blob Storage -------------------------------------------------------------------------------------
_EMULATOR_URL = "http://127.0.0.1:10000"


def azure_account_url(environ: Any = None) -> str:
    """The blob endpoint of the account the environment names, as object_store (and so Lance) computes it."""
    env = os.environ if environ is None else environ
    account = env.get("AZURE_STORAGE_ACCOUNT_NAME", "")
    if env.get("AZURE_STORAGE_USE_EMULATOR", "").lower() == "true":
        return f"{env.get('AZURITE_BLOB_STORAGE_URL', _EMULATOR_URL).rstrip('/')}/{account}"
    return f"https://{account}.blob.core.windows.net"


_AZURE_LOCK = threading.Lock()
_AZURE: dict[str, Any] = {}


def _azure_service() -> Any:
    """One BlobServiceClient for the process, credentials from the environment: an account key, a SAS
    token, or (when azure-identity is installed) its default chain (workload or managed identity)."""
    with _AZURE_LOCK:
        url = azure_account_url()  # names the account (and the emulator's port): a client per account
        if url not in _AZURE:
            from azure.storage.blob import BlobServiceClient

            credential: Any
            if account_key := os.environ.get("AZURE_STORAGE_ACCOUNT_KEY"):
                credential = {"account_name": os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", ""),
                              "account_key": account_key}
            elif sas := os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
                credential = sas
            else:
                try:
                    from azure.identity import DefaultAzureCredential
                except ImportError:
                    raise OSError("no Azure credentials: set AZURE_STORAGE_ACCOUNT_KEY or AZURE_STORAGE_SAS_TOKEN "
                                  "(or install azure-identity for a workload or managed identity)") from None
                credential = DefaultAzureCredential()
            _AZURE[url] = BlobServiceClient(url, credential=credential, connection_timeout=_TIMEOUTS["connect"],
                                            read_timeout=_TIMEOUTS["read"], retry_total=_ATTEMPTS)
        return _AZURE[url]


def _container_gone(exc: BaseException) -> bool:
    """Whether Azure's "not found" is the container's (the store's storage is gone: UNAVAILABLE), not a blob's."""
    return getattr(exc, "error_code", None) == "ContainerNotFound"


class AzureContainer(Bucket):
    provider = "Azure"

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = _azure_service().get_container_client(name)

    def _failed(self, verb: str, exc: BaseException) -> OSError:
        return StorageUnreachable(f"Azure {verb} failed ({getattr(exc, 'error_code', None) or type(exc).__name__})")

    def get(self, key: str) -> IO[bytes]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            download = self.client.get_blob_client(key).download_blob()
        except ResourceNotFoundError as exc:
            if _container_gone(exc):
                raise self._failed("GET", exc) from None
            raise FileNotFoundError(key.rsplit("/", 1)[-1]) from None
        except Exception as exc:  # noqa: BLE001 - azure.core's errors are not OSErrors: mapped here, once
            raise self._failed("GET", exc) from None
        return _streamed(_Stream(download.read, download.readall, self._failed))

    def _blob(self, verb: str, call: Callable[[], _T]) -> _T | None:
        """`call()`; None when the blob is not there. The container gone, or any other failure: unreachable."""
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return call()
        except ResourceNotFoundError as exc:
            if _container_gone(exc):
                raise self._failed(verb, exc) from None
            return None
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed(verb, exc) from None

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        def read() -> tuple[bytes, str]:
            download = self.client.get_blob_client(key).download_blob()
            return download.readall(), str(download.properties.etag)

        return self._blob("GET", read)

    def head(self, key: str) -> tuple[int, str] | None:
        def look() -> tuple[int, str]:
            found = self.client.get_blob_client(key).get_blob_properties()
            return int(found.size), str(found.etag)

        return self._blob("HEAD", look)

    def listing(self, prefix: str) -> tuple[list[Entry], list[str]]:
        from azure.storage.blob import BlobPrefix

        files: list[Entry] = []
        folders: list[str] = []
        try:
            for item in self.client.walk_blobs(name_starts_with=prefix or None, delimiter="/"):
                name = item.name[len(prefix):]
                if isinstance(item, BlobPrefix):
                    folders.append(name.rstrip("/"))
                elif name:
                    files.append(Entry(name, int(item.size), int(item.last_modified.timestamp() * 1e9),
                                       str(item.etag or "")))
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("LIST", exc) from None
        return files, folders

    def any_under(self, prefix: str) -> bool:
        try:
            return any(True for _ in self.client.list_blobs(name_starts_with=prefix or None, results_per_page=1)
                       .by_page().next())
        except StopIteration:
            return False
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("LIST", exc) from None

    def put(self, key: str, data: bytes | memoryview) -> None:
        try:
            self.client.get_blob_client(key).upload_blob(bytes(data), overwrite=True, max_concurrency=4)
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("PUT", exc) from None

    def _conditional_put(self, key: str, data: bytes, **condition: Any) -> str | None:
        from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError

        try:
            return str(self.client.get_blob_client(key).upload_blob(data, **condition)["etag"])
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            if _container_gone(exc):
                raise self._failed("PUT", exc) from None
            return None
        except Exception as exc:  # noqa: BLE001 - as in get
            if getattr(exc, "status_code", None) in (409, 412):
                return None
            raise self._failed("PUT", exc) from None

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        return self._conditional_put(key, data, overwrite=False)

    def put_if_match(self, key: str, data: bytes, tag: str) -> str | None:
        from azure.core import MatchConditions

        return self._conditional_put(key, data, overwrite=True, etag=tag,
                                     match_condition=MatchConditions.IfNotModified)

    def delete(self, key: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            self.client.delete_blob(key)
        except ResourceNotFoundError as exc:
            if _container_gone(exc):
                raise self._failed("DELETE", exc) from None
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("DELETE", exc) from None

    def delete_under(self, prefix: str) -> None:
        try:
            names = [item.name for item in self.client.list_blobs(name_starts_with=prefix or None)]
            for name in names:  # one by one: not every Blob Storage (Azurite) takes batches
                self.delete(name)
        except OSError:
            raise
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("DELETE", exc) from None

    def endpoints(self) -> list[str]:
        url = azure_account_url()
        return [url, urlsplit(url).netloc, os.environ.get("AZURITE_BLOB_STORAGE_URL", "")]


# ----- Google Cloud Storage -----------------------------------------------------------------------------------
_GCS_LOCK = threading.Lock()
_GCS: dict[str, Any] = {}


def _gcs_client() -> Any:
    """One storage.Client for the process, credentials read as object_store (Lance) reads them."""
    where = os.environ.get("STORAGE_EMULATOR_HOST", "")
    with _GCS_LOCK:
        if where not in _GCS:
            try:
                from google.cloud import storage
            except ImportError:
                raise OSError("gs:// needs google-cloud-storage (pip install google-cloud-storage)") from None
            credentials: Any = None
            path = os.environ.get("GOOGLE_SERVICE_ACCOUNT") or os.environ.get("GOOGLE_SERVICE_ACCOUNT_PATH")
            if path or os.environ.get("GOOGLE_SERVICE_ACCOUNT_KEY"):
                import json

                from google.oauth2 import service_account

                credentials = (service_account.Credentials.from_service_account_file(path) if path else
                               service_account.Credentials.from_service_account_info(
                                   json.loads(os.environ["GOOGLE_SERVICE_ACCOUNT_KEY"])))
            elif os.environ.get("STORAGE_EMULATOR_HOST"):
                from google.auth.credentials import AnonymousCredentials

                credentials = AnonymousCredentials()
            _GCS[where] = storage.Client(project=os.environ.get("GOOGLE_CLOUD_PROJECT") or "-",
                                         credentials=credentials)
        return _GCS[where]


class GcsBucket(Bucket):
    provider = "GCS"

    def __init__(self, name: str) -> None:
        self.name = name
        self.client = _gcs_client()
        self.bucket = self.client.bucket(name)

    def _failed(self, verb: str, exc: BaseException) -> OSError:
        return StorageUnreachable(f"GCS {verb} failed ({getattr(exc, 'code', None) or type(exc).__name__})")

    @staticmethod
    def _code(exc: BaseException) -> int:
        return int(getattr(exc, "code", 0) or 0)

    def get(self, key: str) -> IO[bytes]:
        try:
            blob = self.bucket.get_blob(key, timeout=_TIMEOUTS["read"])
            if blob is None:
                raise FileNotFoundError(key.rsplit("/", 1)[-1])
            return io.BytesIO(blob.download_as_bytes(timeout=_TIMEOUTS["read"]))
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - google.api_core's errors are not OSErrors: mapped here, once
            if self._code(exc) == 404:
                raise FileNotFoundError(key.rsplit("/", 1)[-1]) from None
            raise self._failed("GET", exc) from None

    def get_tagged(self, key: str) -> tuple[bytes, str] | None:
        for _ in range(_ATTEMPTS):
            try:
                blob = self.bucket.get_blob(key, timeout=_TIMEOUTS["read"])
                if blob is None:
                    return None
                data = blob.download_as_bytes(if_generation_match=blob.generation, timeout=_TIMEOUTS["read"])
                return data, str(blob.generation)
            except Exception as exc:  # noqa: BLE001 - as in get
                if self._code(exc) == 404:
                    return None
                if self._code(exc) != 412:  # 412: replaced between the look and the read: read it again
                    raise self._failed("GET", exc) from None
        raise StorageUnreachable("GCS GET failed (the object kept changing)")

    def head(self, key: str) -> tuple[int, str] | None:
        try:
            blob = self.bucket.get_blob(key, timeout=_TIMEOUTS["read"])
            return None if blob is None else (int(blob.size), str(blob.generation))  # (an ETag changes with metadata)
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("HEAD", exc) from None

    def listing(self, prefix: str) -> tuple[list[Entry], list[str]]:
        files: list[Entry] = []
        try:
            found = self.client.list_blobs(self.bucket, prefix=prefix or None, delimiter="/",
                                           timeout=_TIMEOUTS["read"])
            for blob in found:
                name = blob.name[len(prefix):]
                if name:
                    files.append(Entry(name, int(blob.size), int(blob.updated.timestamp() * 1e9),
                                       str(blob.generation)))
            folders = [folder[len(prefix):].rstrip("/") for folder in found.prefixes]
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("LIST", exc) from None
        return files, folders

    def any_under(self, prefix: str) -> bool:
        try:
            return any(True for _ in self.client.list_blobs(self.bucket, prefix=prefix or None, max_results=1,
                                                            timeout=_TIMEOUTS["read"]))
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("LIST", exc) from None

    def put(self, key: str, data: bytes | memoryview) -> None:
        try:
            self.bucket.blob(key).upload_from_string(bytes(data), timeout=max(_TIMEOUTS["read"], len(data) / 2**22))
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("PUT", exc) from None

    def _conditional_put(self, key: str, data: bytes, generation: int) -> str | None:
        blob = self.bucket.blob(key)
        try:
            blob.upload_from_string(data, if_generation_match=generation, timeout=_TIMEOUTS["read"])
        except Exception as exc:  # noqa: BLE001 - as in get
            if self._code(exc) in (404, 409, 412):
                return None
            raise self._failed("PUT", exc) from None
        return str(blob.generation)

    def put_if_absent(self, key: str, data: bytes) -> str | None:
        return self._conditional_put(key, data, 0)

    def put_if_match(self, key: str, data: bytes, tag: str) -> str | None:
        try:
            generation = int(tag)
        except ValueError:
            return None
        return self._conditional_put(key, data, generation)

    def delete(self, key: str) -> None:
        try:
            self.bucket.blob(key).delete(timeout=_TIMEOUTS["read"])
        except Exception as exc:  # noqa: BLE001 - as in get
            if self._code(exc) != 404:
                raise self._failed("DELETE", exc) from None

    def delete_under(self, prefix: str) -> None:
        try:
            names = [blob.name for blob in self.client.list_blobs(self.bucket, prefix=prefix or None)]
        except Exception as exc:  # noqa: BLE001 - as in get
            raise self._failed("LIST", exc) from None
        for name in names:
            self.delete(name)

    def endpoints(self) -> list[str]:
        return [os.environ.get("STORAGE_EMULATOR_HOST", ""), "storage.googleapis.com/" + self.name]
