"""Model rerankers hosted by the embed service (`Rerank`, the `cross-encoder` function) and used by the store's
searches: the scores equal the same model run in-process; vector, full-text and hybrid searches reranked
through the Python client as LanceDB's CrossEncoderReranker ranks them; bad requests refused precisely."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from google.protobuf import struct_pb2

import vectorlane
from tests.helpers import error_info
from vectorlane.embed.v1 import embed_service_pb2 as epb
from vectorlane.rerankers import CrossEncoderReranker
from vectorlane.store.v1 import store_service_pb2 as pb

TEXTS = ["red apple pie", "blue whale song", "fast red car", "green apple tart", "quiet blue lake", "the dog",
         "a quick fox", "sun over the river", "tiger in the night", "cherry and banana"]


@pytest.fixture
def in_process(tiny_cross_encoder):
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(tiny_cross_encoder), device="cpu")
    return lambda query, texts: np.asarray(model.predict([(query, t) for t in texts]), dtype=np.float32)


def spec(**settings) -> epb.FunctionSpec:
    given = struct_pb2.Struct()
    given.update({"name": "tiny-cross-encoder", "device": "cpu", **settings})
    return epb.FunctionSpec(name="cross-encoder", settings=given)


def test_the_embed_service_scores_as_the_model_does_in_process(embed, in_process):
    reply = embed.stub.Rerank(epb.RerankRequest(function=spec(), query="red apple", documents=TEXTS))
    assert np.allclose(reply.scores, in_process("red apple", TEXTS), atol=1e-5)
    assert embed.stub.Rerank(epb.RerankRequest(function=spec(), query="x")).scores == []


@pytest.mark.parametrize("case, reason", [
    ("an embedding function", "NOT_A_RERANKER"),
    ("1001 documents", "TOO_MANY_INPUTS"),
    ("a 70 KB query", "QUERY_TOO_LONG"),
    ("an unknown setting", "UNKNOWN_SETTING"),
    ("a model that is not there", "MODEL_DOWNLOAD_NOT_ALLOWED"),
])
def test_bad_rerank_requests_are_refused(embed, case, reason):
    request = {
        "an embedding function": epb.RerankRequest(function=epb.FunctionSpec(name="sentence-transformers"),
                                                   query="x", documents=["y"]),
        "1001 documents": epb.RerankRequest(function=spec(), query="x", documents=["y"] * 1001),
        "a 70 KB query": epb.RerankRequest(function=spec(), query="x" * 70_000, documents=["y"]),
        "an unknown setting": epb.RerankRequest(function=spec(colour="red"), query="x", documents=["y"]),
        "a model that is not there": epb.RerankRequest(function=spec(name="no-such-model"), query="x",
                                                       documents=["y"]),
    }[case]
    with pytest.raises(grpc.RpcError) as excinfo:
        embed.stub.Rerank(request)
    assert error_info(excinfo.value).reason == reason, excinfo.value.details()
    with pytest.raises(grpc.RpcError) as excinfo:  # and a rerank function does not embed
        embed.stub.Embed(epb.EmbedRequest(function=spec(), inputs=[epb.EmbedInput(text="x")]))
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.fixture
def table(start_store, embed, tiny_cross_encoder):
    store = start_store(embed)
    db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
    rng = np.random.default_rng(0)
    rows = [{"id": i, "text": t, "vector": rng.standard_normal(4).astype("float32").tolist()}
            for i, t in enumerate(TEXTS)]
    made = db.create_table("t", data=rows)
    made.create_fts_index("text")
    made.store = store
    yield made
    db.close()


def test_searches_reranked_by_the_cross_encoder(table, in_process):
    reranker = CrossEncoderReranker(model_name="tiny-cross-encoder", device="cpu")
    vector = [0.1, 0.2, 0.3, 0.4]
    searched = table.search(vector).limit(6).to_arrow()
    reranked = table.search(vector).rerank(reranker, query_string="red apple").limit(6).to_arrow()
    expected = in_process("red apple", searched.column("text").to_pylist())
    assert sorted(reranked.column("id").to_pylist()) == sorted(searched.column("id").to_pylist())
    assert np.allclose(reranked.column("_relevance_score").to_numpy(), np.sort(expected)[::-1], atol=1e-5)
    assert "_distance" not in reranked.column_names  # return_score="relevance", as LanceDB

    text = table.search("apple red blue", query_type="fts").rerank(reranker).limit(10).to_arrow()
    scores = text.column("_relevance_score").to_numpy()
    assert np.all(np.diff(scores) <= 0) and text.num_rows > 0
    assert np.allclose(scores, in_process("apple red blue", text.column("text").to_pylist()), atol=1e-5)

    everything = CrossEncoderReranker(model_name="tiny-cross-encoder", device="cpu", return_score="all")
    fused = table.search(query_type="hybrid").vector(vector).text("apple").rerank(everything).limit(5) \
        .select(["id"]).to_arrow()
    assert set(fused.column_names) == {"id", "_distance", "_score", "_relevance_score", "_rowid"}
    assert np.all(np.diff(fused.column("_relevance_score").to_numpy()) <= 0)

    with pytest.raises(ValueError):  # a vector search reranks only with the query's text
        table.search(vector).rerank(reranker)
    with pytest.raises(NotImplementedError):  # the model runs in the embed service, not here
        reranker.rerank_vector("x", searched)


def test_bad_reranked_searches_are_refused(table):
    rerank = pb.Rerank(name="cross-encoder", settings=struct_pb2.Struct(fields={
        "name": struct_pb2.Value(string_value="tiny-cross-encoder")}))
    cases = [
        (pb.SearchRequest(table="t", vector=pb.Vector(values=[0.0] * 4), rerank=rerank), "MISSING_RERANK_QUERY"),
        (pb.SearchRequest(table="t", vector=pb.Vector(values=[0.0] * 4), rerank=pb.Rerank(
            name="cross-encoder", column="id", query="x")), "INVALID_COLUMN_TYPE"),
        (pb.SearchRequest(table="t", full_text=pb.FullTextQuery(text="apple"), rerank=pb.Rerank(
            name="word-hash")), "NOT_A_RERANKER"),
        (pb.SearchRequest(table="t", full_text=pb.FullTextQuery(text="apple"), rerank=pb.Rerank()),
         "MISSING_FUNCTION"),
        (pb.SearchRequest(table="t", text="apple", full_text=pb.FullTextQuery(text="apple"), limit=600,
                          rerank=rerank), "RERANK_TOO_MANY"),  # two lists of 600
        (pb.SearchRequest(table="t", vector=pb.Vector(values=[0.0] * 4), limit=1001, rerank=pb.Rerank(
            name="cross-encoder", query="x")), "RERANK_TOO_MANY"),
    ]
    for request, reason in cases:
        with pytest.raises(grpc.RpcError) as excinfo:
            table.store.stub.Search(request)
        assert error_info(excinfo.value).reason == reason, excinfo.value.details()
    assert table.count_rows() == len(TEXTS)


def test_a_providers_rerank_api_reranks_a_search_through_the_store(start_embed, start_store, monkeypatch):
    from tests.provider_servers import KEYS, ProviderServer, rerank_score
    from vectorlane.rerankers import CohereReranker, JinaReranker, VoyageAIReranker

    monkeypatch.setenv("VECTORLANE_SECRET_COHERE_KEY", KEYS["cohere"])
    monkeypatch.setenv("VECTORLANE_SECRET_JINA_KEY", KEYS["jina"])
    monkeypatch.setenv("VECTORLANE_SECRET_VOYAGEAI_KEY", KEYS["voyageai"])
    with ProviderServer() as upstream:
        store = start_store(start_embed(secret_allowed_hosts=("http://127.0.0.1:*",)))
        db = vectorlane.connect(f"grpc://{store.target}", timeout=60)
        table = db.create_table("t", data=[{"id": i, "text": t} for i, t in enumerate(TEXTS)])
        table.create_fts_index("text")
        for reranker in (CohereReranker(api_key="$var:cohere_key"), JinaReranker(api_key="$var:jina_key"),
                         VoyageAIReranker(api_key="$var:voyageai_key")):
            reranker.settings["base_url"] = upstream.url
            found = table.search("red apple blue", query_type="fts").rerank(reranker).limit(10).to_arrow()
            expected = [rerank_score({"red", "apple", "blue"}, t) for t in found.column("text").to_pylist()]
            assert np.allclose(found.column("_relevance_score").to_numpy(), expected)
            assert np.all(np.diff(found.column("_relevance_score").to_numpy()) <= 0)
        with pytest.raises(ValueError):  # a key travels only as a reference
            CohereReranker(api_key="sk-literal")
        db.close()
