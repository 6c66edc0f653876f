"""`vectorlane-embed`: run the embed service until SIGTERM or Ctrl-C, then shut down gracefully."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from embed_service import memory
from embed_service.config import EmbedConfig
from embed_service.server import EmbedServer
from rpc_common import process

BANNER = "vectorlane embed service on "


def address_in_banner(lines: Iterable[str]) -> str | None:
    """The address from the first line the service prints at start (for programs that start it)."""
    return process.address_in_banner(lines, BANNER)


def main(argv: Sequence[str] | None = None) -> int:
    config = EmbedConfig.from_args(argv)
    process.configure_logging(config.log_level)
    memory.keep_freed_memory()
    server = EmbedServer(config).start()
    print(f"{BANNER}{server.address}  (try: grpcurl -plaintext {server.address} list)\n"
          f"  health:  grpcurl -plaintext {server.address} grpc.health.v1.Health/Check\n"
          f"  embed:   grpcurl -plaintext -d '{{\"function\": {{\"name\": \"sentence-transformers\"}}, "
          f"\"inputs\": [{{\"text\": \"hello\"}}]}}' {server.address} "
          "vectorlane.embed.v1.EmbeddingService/Embed\n"
          f"  metrics: " + (f"http://{server.config.metrics_host}:{server.metrics_port}/metrics"
                            if server.metrics_port else "off") +
          "\n  (grpcurl is .venv/bin/grpcurl after `make install`)", flush=True)
    return process.serve_until_signalled(server, "embed_service")


if __name__ == "__main__":
    sys.exit(main())
