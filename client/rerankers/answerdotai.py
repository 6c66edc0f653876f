"""LanceDB's module of `AnswerdotaiRerankers` (`lancedb.rerankers.answerdotai`)."""

from vectorlane.rerankers.models import AnswerdotaiRerankers

__all__ = ["AnswerdotaiRerankers"]
