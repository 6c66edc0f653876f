"""`make run`: the embedded default — the embed service, then (once its models are loaded) the store
service wired to it; Ctrl-C or SIGTERM stops both gracefully. Ports and the data directory come from the
environment (EMBED_PORT, STORE_PORT, VECTORLANE_DATA_DIR) or the defaults 50052, 50051 and ./data.

`make run-s3` (`--s3`): the same, with the tables on a local S3-compatible server started beside them (moto,
on S3_PORT or 9000, bucket `vectorlane`; it keeps objects in memory, so they go when it stops): the store runs
exactly as it would against a real bucket, with the endpoint and credentials in its environment."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def wait_serving(target: str, process: subprocess.Popen, timeout: float = 600.0) -> bool:
    channel = grpc.insecure_channel(target)
    stub = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if stub.Check(health_pb2.HealthCheckRequest(), timeout=2).status == \
                        health_pb2.HealthCheckResponse.SERVING:
                    return True
            except grpc.RpcError:
                pass
            time.sleep(0.5)
        return False
    finally:
        channel.close()


def main() -> int:
    with contextlib.ExitStack() as stack:
        env = dict(os.environ)
        if "--s3" in sys.argv[1:]:
            sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            from tests.object_store import LocalS3

            s3 = stack.enter_context(LocalS3(int(os.environ.get("S3_PORT", "9000"))))
            env.update(s3.environment(), VECTORLANE_DATA_DIR=s3.uri(s3.bucket("vectorlane"), "tables"))
            print(f"local S3 at {s3.endpoint}: tables in {env['VECTORLANE_DATA_DIR']} (AWS_* variables as "
                  "tests/object_store.py sets them)", flush=True)
        return run(env)


def run(env: dict[str, str]) -> int:
    embed_port = os.environ.get("EMBED_PORT", "50052")
    store_port = os.environ.get("STORE_PORT", "50051")
    embed_target = f"127.0.0.1:{embed_port}"
    embed = subprocess.Popen([sys.executable, "-m", "embed_service", "--port", embed_port, "--metrics-port", "9452"])
    children = [embed]

    signalled: list[int] = []

    def stop_all(signum: int = signal.SIGTERM, _frame: object = None) -> None:
        if _frame is not None:
            signalled.append(signum)
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop_all)
    signal.signal(signal.SIGINT, stop_all)
    print(f"waiting for the embed service on {embed_target} to load its models ...", flush=True)
    if not wait_serving(embed_target, embed):
        print("the embed service did not become ready; stopping", file=sys.stderr, flush=True)
        stop_all()
        embed.wait()
        return 1
    store = subprocess.Popen([sys.executable, "-m", "store_service", "--port", store_port, "--metrics-port", "9451",
                              "--embed-address", embed_target], env=env)
    children.append(store)
    while all(child.poll() is None for child in children):
        time.sleep(0.5)
    stop_all()
    codes = [child.wait() for child in children]
    if signalled and all(code in (0, -signal.SIGTERM, 128 + signal.SIGTERM) for code in codes):
        return 0  # Ctrl-C or SIGTERM, and both stopped gracefully: not an error
    return max(codes, key=abs)


if __name__ == "__main__":
    sys.exit(main())
