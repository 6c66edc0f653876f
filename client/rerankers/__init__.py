"""LanceDB's rerankers (`lancedb.rerankers`): `table.search("q", query_type="hybrid").rerank(RRFReranker())`.
The fusion ones run in the store, the model ones (CrossEncoderReranker, ColbertReranker, the providers' APIs) in
the embed service through the store; subclass `Reranker` for your own, which runs here."""

from vectorlane.rerankers.base import Reranker
from vectorlane.rerankers.fusion import FusionReranker, LinearCombinationReranker, MRRReranker, RRFReranker
from vectorlane.rerankers.models import (AnswerdotaiRerankers, CohereReranker, ColbertReranker, CrossEncoderReranker,
                                         JinaReranker, ModelReranker, VoyageAIReranker)

__all__ = ["AnswerdotaiRerankers", "CohereReranker", "ColbertReranker", "CrossEncoderReranker", "FusionReranker",
           "JinaReranker", "LinearCombinationReranker", "MRRReranker", "ModelReranker", "RRFReranker", "Reranker",
           "VoyageAIReranker"]
