"""LanceDB's module of `RRFReranker` (`lancedb.rerankers.rrf`)."""

from vectorlane.rerankers.fusion import RRFReranker

__all__ = ["RRFReranker"]
