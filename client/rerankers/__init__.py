"""LanceDB's rerankers (`lancedb.rerankers`): `table.search("q", query_type="hybrid").rerank(RRFReranker())`.
The fusion ones run in the store; subclass `Reranker` for your own, which runs here."""

from vectorlane.rerankers.base import Reranker
from vectorlane.rerankers.fusion import FusionReranker, LinearCombinationReranker, MRRReranker, RRFReranker

__all__ = ["FusionReranker", "LinearCombinationReranker", "MRRReranker", "RRFReranker", "Reranker"]
