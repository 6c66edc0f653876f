"""Running a service as a process: log setup, a start banner other programs can parse, and a graceful
stop on SIGTERM or Ctrl-C."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterable
from typing import Protocol


class Stoppable(Protocol):
    def stop(self) -> None: ...


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def address_in_banner(lines: Iterable[str], banner: str) -> str | None:
    """The address from the first line starting with `banner` (for programs that start a service)."""
    for line in lines:
        if line.startswith(banner):
            return line[len(banner):].split()[0]
    return None


def serve_until_signalled(server: Stoppable, logger: str) -> int:
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger(logger).info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    # Wait in short steps: the kernel may deliver the signal to one of gRPC's threads, and Python runs the
    # handler only when the main thread next executes bytecode. A bare wait() could then sleep through a
    # SIGTERM (seen: 1 run in 8 hung until SIGKILL).
    while not stop.wait(0.2):
        pass
    server.stop()
    return 0
