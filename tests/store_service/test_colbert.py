"""The `colbert` rerank function (LanceDB's ColbertReranker, and AnswerdotaiRerankers with model_type="colbert"):
a random-weights ColBERT checkpoint made by the tests, scored by the embed service as ColBERT defines it (MaxSim
of normalized token vectors, the query padded with [MASK]) and equal to the same sum computed here one document
at a time from the checkpoint's tensors; through the store on full-text and hybrid searches; bad models
refused."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2

import vectorlane
from tests.helpers import error_info
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.rerankers import AnswerdotaiRerankers, ColbertReranker

TEXTS = ["red apple pie", "blue whale song", "fast red car", "green apple tart", "quiet blue lake", "the dog",
         "a quick fox", "sun over the river", "tiger in the night", "cherry and banana"]


@pytest.fixture(scope="module")
def reference(tiny_colbert):
    """ColBERT's score computed here, one document at a time (no padding), from the checkpoint's tensors."""
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import torch
    from safetensors import safe_open
    from transformers import BertModel, BertTokenizerFast

    tokenizer = BertTokenizerFast.from_pretrained(tiny_colbert)
    encoder = BertModel.from_pretrained(tiny_colbert).eval()
    with safe_open(str(tiny_colbert / "model.safetensors"), framework="pt") as weights:
        projection = weights.get_tensor("linear.weight")

    def vectors(text: str, marker: str, pad_to: int | None) -> np.ndarray:
        ids = [tokenizer.cls_token_id, tokenizer.convert_tokens_to_ids(marker),
               *tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.sep_token_id]
        if pad_to:
            ids += [tokenizer.mask_token_id] * (pad_to - len(ids))
        with torch.no_grad():
            hidden = encoder(input_ids=torch.tensor([ids])).last_hidden_state[0]
        out = (hidden @ projection.T).numpy()
        return out / np.linalg.norm(out, axis=1, keepdims=True)

    def score(query: str, texts: list[str]) -> np.ndarray:
        q = vectors(query, "[unused0]", 32)
        return np.array([(q @ vectors(t, "[unused1]", None).T).max(axis=1).sum() for t in texts], dtype=np.float32)

    return score


def spec(**settings) -> epb.FunctionSpec:
    given = struct_pb2.Struct()
    given.update({"name": "tiny-colbert", "device": "cpu", **settings})
    return epb.FunctionSpec(name="colbert", settings=given)


def test_the_embed_service_scores_as_colbert_defines_it(embed, reference):
    expected = reference("red apple", TEXTS)
    for batch in (32, 3):  # documents of other lengths padded together, or not
        reply = embed.stub.Rerank(epb.RerankRequest(function=spec(batch_size=batch), query="red apple",
                                                    documents=TEXTS))
        assert np.allclose(reply.scores, expected, atol=1e-4)
    huge = embed.stub.Rerank(epb.RerankRequest(function=spec(), query="red apple " * 6_000,
                                               documents=["blue whale " * 90_000, TEXTS[0]]))
    assert len(huge.scores) == 2 and np.isfinite(huge.scores).all()  # both cut to the model's window first
    backwards = embed.stub.Rerank(epb.RerankRequest(function=spec(), query="red apple", documents=TEXTS[::-1]))
    assert np.allclose(backwards.scores, expected[::-1], atol=1e-4)


def test_a_checkpoint_that_is_not_colbert_is_refused(embed, tiny_cross_encoder):
    request = epb.RerankRequest(function=spec(name=tiny_cross_encoder.name), query="x", documents=["y"])
    with pytest.raises(grpc.RpcError) as refused:
        embed.stub.Rerank(request)
    assert error_info(refused.value).reason == "MODEL_LOAD_FAILED"
    with pytest.raises(grpc.RpcError) as unknown:
        embed.stub.Rerank(epb.RerankRequest(function=spec(query_max_length=10_000), query="x", documents=["y"]))
    assert unknown.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert embed.stub.Rerank(epb.RerankRequest(function=spec(), query="x", documents=["y"])).scores


def test_colbert_reranks_searches_through_the_store(start_store, embed, tiny_colbert, reference):
    store = start_store(embed)
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    rng = np.random.default_rng(0)
    table = db.create_table("t", data=[{"id": i, "text": t, "vector": rng.standard_normal(4).astype("float32").tolist()}
                                       for i, t in enumerate(TEXTS)])
    table.create_fts_index("text")
    colbert = ColbertReranker(model_name="tiny-colbert", device="cpu")
    found = table.search("apple red blue", query_type="fts").rerank(colbert).limit(10).to_arrow()
    assert found.num_rows > 0
    assert np.allclose(found.column("_relevance_score").to_numpy(),
                       reference("apple red blue", found.column("text").to_pylist()), atol=1e-4)
    assert np.all(np.diff(found.column("_relevance_score").to_numpy()) <= 0)

    same = AnswerdotaiRerankers(model_type="colbert", model_name="tiny-colbert", device="cpu")
    again = table.search("apple red blue", query_type="fts").rerank(same).limit(10).to_arrow()
    assert again.column("id").to_pylist() == found.column("id").to_pylist()
    hybrid = table.search(query_type="hybrid").vector([0.1, 0.2, 0.3, 0.4]).text("apple").rerank(colbert) \
        .limit(5).to_arrow()
    assert np.allclose(hybrid.column("_relevance_score").to_numpy(),
                       reference("apple", hybrid.column("text").to_pylist()), atol=1e-4)
    with pytest.raises(ValueError, match="not hosted"):
        AnswerdotaiRerankers(model_type="t5", model_name="x")
    db.close()
