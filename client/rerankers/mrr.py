"""LanceDB's module of `MRRReranker` (`lancedb.rerankers.mrr`)."""

from vectorlane.rerankers.fusion import MRRReranker

__all__ = ["MRRReranker"]
