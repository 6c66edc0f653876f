"""LanceDB's module of `ColbertReranker` (`lancedb.rerankers.colbert`)."""

from vectorlane.rerankers.models import ColbertReranker

__all__ = ["ColbertReranker"]
