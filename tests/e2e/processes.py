"""The store as users run it, `python -m store_service`, for tests that need a process of its own: to kill
it, to restart it, or to see that a request cannot crash it or swell its memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import grpc

from store_service.cli import address_in_banner
from vectorlane.store.v1 import store_service_pb2_grpc as pb_grpc


class StoreProcess:
    def __init__(self, data_dir: Path, embed_address: str = "", *flags: str) -> None:
        env = {**os.environ, "VECTORLANE_PORT": "0", "VECTORLANE_METRICS_PORT": "-1",
               "VECTORLANE_DATA_DIR": str(data_dir), "VECTORLANE_EMBED_ADDRESS": embed_address}
        self.process = subprocess.Popen([sys.executable, "-m", "store_service", "--log-level", "WARNING", *flags],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.target = address_in_banner(self.process.stdout)
        assert self.target, "the store did not say where it listens"
        self.output: list[str] = []
        threading.Thread(target=self._drain, daemon=True).start()  # keep the pipe drained, keep what it said
        self.channel = grpc.insecure_channel(self.target)
        self.stub = pb_grpc.StorageServiceStub(self.channel)

    def _drain(self) -> None:
        for line in self.process.stdout:
            self.output.append(line)

    def alive(self) -> bool:
        return self.process.poll() is None

    def peak_rss_bytes(self) -> int:
        """The most memory the process has held resident so far (the kernel's VmHWM)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        self.process.send_signal(sig)
        self.process.wait(timeout=30)
        self.channel.close()
