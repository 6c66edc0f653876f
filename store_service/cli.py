"""`vectorlane-store`: run the store service until SIGTERM or Ctrl-C, then shut down gracefully."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence

from rpc_common import process
from store_service.config import StoreConfig
from store_service.server import StoreServer

BANNER = "vectorlane store service on "


def address_in_banner(lines: Iterable[str]) -> str | None:
    """The address from the first line the service prints at start (for programs that start it)."""
    return process.address_in_banner(lines, BANNER)


def main(argv: Sequence[str] | None = None) -> int:
    config = StoreConfig.from_args(argv)
    process.configure_logging(config.log_level)
    server = StoreServer(config).start()
    a = server.address
    print(f"{BANNER}{a}  (data in {config.shown_data_dir()}, embed service {config.embed_address or 'none'})\n"
          f"  tables:  grpcurl -plaintext {a} vectorlane.store.v1.StorageService/ListTables\n"
          f"  health:  grpcurl -plaintext {a} grpc.health.v1.Health/Check\n"
          f"  metrics: " + (f"http://{config.metrics_host}:{server.metrics_port}/metrics"
                            if server.metrics_port else "off") +
          "\n  (grpcurl is .venv/bin/grpcurl after `make install`; README.md has the walkthrough)", flush=True)
    return process.serve_until_signalled(server, "store_service")


if __name__ == "__main__":
    sys.exit(main())
