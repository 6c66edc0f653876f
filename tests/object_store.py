"""A real S3-compatible server on loopback for the tests (moto in server mode, its own process): it honours
the conditional PUTs Lance commits with (`If-None-Match: *`) and those leases use (`If-Match`).

    with LocalS3() as s3:
        s3.bucket("tables")                # made with boto3 (a bare HTTP PUT is refused)
        env = s3.environment()             # AWS_* variables for a process that reaches it
        uri = s3.uri("tables", "db")       # s3://tables/db

`python -m tests.object_store` runs one in the foreground and prints its environment (`make run-s3`).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from types import TracebackType

KEY_ID = "vectorlane-test"
SECRET = "vectorlane-test-secret"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalS3:
    def __init__(self, port: int = 0) -> None:
        self.port = port or _free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> "LocalS3":
        self.process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                                         str(self.port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the local S3 server (moto) did not start") from None
                time.sleep(0.1)

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()

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
