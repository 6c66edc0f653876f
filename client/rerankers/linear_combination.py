"""LanceDB's module of `LinearCombinationReranker` (`lancedb.rerankers.linear_combination`)."""

from vectorlane.rerankers.fusion import LinearCombinationReranker

__all__ = ["LinearCombinationReranker"]
