"""Real object stores on loopback for the tests, each its own process, both honouring the conditional PUTs
Lance commits with (`If-None-Match: *`) and those leases use (`If-Match`):

- `LocalS3`: an S3-compatible server (moto in server mode, from PyPI).
- `LocalAzure`: Azure Blob Storage's emulator (Azurite, from npm: `tests/azurite`, installed by `make`).

And one that does not honour them, for the store's refusal of such a bucket: `LocalGcs`, a GCS emulator
(gcp-storage-emulator, from PyPI), which accepts a second upload with `ifGenerationMatch=0`.

Both answer the same small interface:

    with LocalS3() as s3:
        s3.bucket("tables")                # made with the provider's SDK (a bare HTTP PUT is refused)
        env = s3.environment()             # the variables a process (pyarrow, Lance, the store) reaches it with
        uri = s3.uri("tables", "db")       # s3://tables/db (az://tables/db)
        s3.keys("tables", "db/")           # the object names under a prefix
        s3.read("tables", key); s3.write("tables", key, data)
        s3.secrets                         # what must never show in logs, errors or metadata

`python -m tests.object_store` runs a LocalS3 in the foreground and prints its environment (`make run-s3`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

KEY_ID = "vectorlane-test"
SECRET = "vectorlane-test-secret"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _ServerProcess:
    """A server of the tests' own in its own process, on a free loopback port, killed on exit."""

    what = "server"

    def __init__(self, port: int = 0) -> None:
        self.port = port or _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self, command: list[str], ready: Callable[[], object], seconds: float = 30) -> None:
        """Starts `command` and waits until `ready()` stops raising."""
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + seconds
        while True:
            try:
                ready()
                return
            except Exception:  # noqa: BLE001 - not listening yet
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the local {self.what} did not start") from None
                time.sleep(0.1)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()


class LocalS3(_ServerProcess):
    provider = "s3"
    what = "S3 server (moto)"
    secrets = (KEY_ID, SECRET)

    def __enter__(self) -> "LocalS3":
        self._start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                    lambda: urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close())
        return self

    def environment(self) -> dict[str, str]:
        """What a process needs to reach this server, as the standard variables pyarrow and Lance read."""
        return {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_REGION": REGION,
                "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": self.endpoint, "AWS_ALLOW_HTTP": "true"}

    def client(self):  # noqa: ANN201 - boto3's client type is generated
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=KEY_ID,
                            aws_secret_access_key=SECRET, region_name=REGION)

    def bucket(self, name: str) -> str:
        with contextlib.suppress(Exception):  # made already
            self.client().create_bucket(Bucket=name)
        return name

    def uri(self, bucket: str, prefix: str = "") -> str:
        return f"s3://{bucket}/{prefix}".rstrip("/")

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        found: list[str] = []
        for page in self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            found.extend(item["Key"] for item in page.get("Contents", []))
        return found

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.client().get_object(Bucket=bucket, Key=key)["Body"].read())

    def write(self, bucket: str, key: str, data: bytes) -> None:
        self.client().put_object(Bucket=bucket, Key=key, Body=data)


AZURITE = Path(__file__).parent / "azurite" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"  # Azurite's well-known development account and key
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class LocalAzure(_ServerProcess):
    provider = "az"
    what = "Azure Blob Storage (Azurite)"
    secrets = (ACCOUNT_KEY,)

    def __enter__(self) -> "LocalAzure":
        if not AZURITE.exists():
            raise RuntimeError(f"Azurite is not installed ({AZURITE}); run make install")
        self._folder = tempfile.TemporaryDirectory(prefix="azurite-")
        self._start([str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--location",
                     self._folder.name, "--skipApiVersionCheck", "--silent"],
                    lambda: self.service().get_service_properties(), seconds=60)
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        super().__exit__(kind, value, traceback)
        self._folder.cleanup()

    def environment(self) -> dict[str, str]:
        """The variables Lance (object_store) and the store read for an Azure account, here the emulator's."""
        return {"AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT, "AZURE_STORAGE_ACCOUNT_KEY": ACCOUNT_KEY,
                "AZURE_STORAGE_USE_EMULATOR": "true", "AZURITE_BLOB_STORAGE_URL": self.endpoint,
                "AZURE_ALLOW_HTTP": "true"}

    def service(self):  # noqa: ANN201 - the SDK's client
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient(f"{self.endpoint}/{ACCOUNT}", credential={"account_name": ACCOUNT,
                                                                           "account_key": ACCOUNT_KEY})

    def bucket(self, name: str) -> str:
        with contextlib.suppress(Exception):  # made already
            self.service().create_container(name)
        return name

    def uri(self, bucket: str, prefix: str = "") -> str:
        return f"az://{bucket}/{prefix}".rstrip("/")

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        return [item.name for item in self.service().get_container_client(bucket).list_blobs(
            name_starts_with=prefix or None)]

    def read(self, bucket: str, key: str) -> bytes:
        return bytes(self.service().get_blob_client(bucket, key).download_blob().readall())

    def write(self, bucket: str, key: str, data: bytes) -> None:
        self.service().get_blob_client(bucket, key).upload_blob(data, overwrite=True)


class LocalGcs(_ServerProcess):
    """gcp-storage-emulator in its own process (objects in memory). It ignores generation preconditions."""

    provider = "gs"
    what = "GCS emulator"
    secrets: tuple[str, ...] = ()

    def __enter__(self) -> "LocalGcs":
        self._start([sys.executable, "-m", "gcp_storage_emulator", "start", "--host", "127.0.0.1", "--port",
                     str(self.port), "--in-memory"],
                    lambda: urllib.request.urlopen(f"{self.endpoint}/storage/v1/b?project=test", timeout=1).close())
        return self

    def environment(self) -> dict[str, str]:
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GOOGLE_ALLOW_HTTP": "true", "GOOGLE_CLOUD_PROJECT": "test"}

    def bucket(self, name: str) -> str:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        with environment(self.environment()), contextlib.suppress(Exception):  # made already
            storage.Client(project="test", credentials=AnonymousCredentials()).create_bucket(name)
        return name

    def uri(self, bucket: str, prefix: str = "") -> str:
        return f"gs://{bucket}/{prefix}".rstrip("/")


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """This process's environment with `values` set, as it was afterwards."""
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def main() -> None:
    port = int(os.environ.get("VECTORLANE_S3_PORT", "9000"))
    bucket = os.environ.get("VECTORLANE_S3_BUCKET", "vectorlane")
    with LocalS3(port) as s3:
        s3.bucket(bucket)
        print(f"local S3 (moto) at {s3.endpoint}, bucket {bucket!r}; a store reaches it with:", flush=True)
        for name, value in s3.environment().items():
            print(f"  export {name}={value}")
        print(f"  VECTORLANE_DATA_DIR={s3.uri(bucket, 'tables')}", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            assert s3.process is not None
            s3.process.wait()


if __name__ == "__main__":
    main()
