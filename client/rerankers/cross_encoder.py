"""LanceDB's module of `CrossEncoderReranker` (`lancedb.rerankers.cross_encoder`)."""

from vectorlane.rerankers.models import CrossEncoderReranker

__all__ = ["CrossEncoderReranker"]
