"""`vectorlane-embed`: run the embed service until SIGTERM or Ctrl-C, then shut down gracefully."""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Iterable, Sequence

from embed_service.config import EmbedConfig
from embed_service.server import EmbedServer

BANNER = "vectorlane embed service on "


def address_in_banner(lines: Iterable[str]) -> str | None:
    """The address from the first line the service prints at start (for programs that start it)."""
    for line in lines:
        if line.startswith(BANNER):
            return line[len(BANNER):].split()[0]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    config = EmbedConfig.from_args(argv)
    logging.basicConfig(level=config.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    server = EmbedServer(config).start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        logging.getLogger("embed_service").info("received %s", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"{BANNER}{server.address}  (try: grpcurl -plaintext {server.address} list)\n"
          f"  health:  grpcurl -plaintext {server.address} grpc.health.v1.Health/Check\n"
          f"  embed:   grpcurl -plaintext -d '{{\"function\": {{\"name\": \"sentence-transformers\"}}, "
          f"\"inputs\": [{{\"text\": \"hello\"}}]}}' {server.address} "
          "vectorlane.embed.v1.EmbeddingService/Embed\n"
          f"  metrics: " + (f"http://{server.config.metrics_host}:{server.metrics_port}/metrics"
                            if server.metrics_port else "off") +
          "\n  (grpcurl is .venv/bin/grpcurl after `make install`)", flush=True)
    stop.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
