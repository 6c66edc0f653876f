"""The vectorlane embedding service: hosts embedding functions behind gRPC (vectorlane.embed.v1)."""

from embed_service.config import EmbedConfig
from embed_service.server import EmbedServer

__all__ = ["EmbedConfig", "EmbedServer"]
