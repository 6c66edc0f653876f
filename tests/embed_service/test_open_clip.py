"""open-clip through the service, with a tiny architecture loaded via the real pretrained=<file> path."""

from __future__ import annotations

import numpy as np
import pytest

from tests.helpers import png, spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb


@pytest.fixture(scope="module")
def reference_model(tiny_clip):
    """The same checkpoint loaded directly with open_clip, to compare the service's vectors against."""
    import open_clip
    import torch

    open_clip.add_model_config(tiny_clip.config)
    model, _, preprocess = open_clip.create_model_and_transforms("tiny-clip", pretrained=None)
    model.load_state_dict(torch.load(tiny_clip.checkpoint, weights_only=True))
    model.eval()
    return model, preprocess, open_clip.get_tokenizer("tiny-clip")


def test_text_embeddings_come_from_the_checkpoint(embed, tiny_clip, reference_model):
    import torch

    response = embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings()),
                                                inputs=texts("a photo of a dog", "a red car")))
    got = vectors(response)
    assert response.dimensions == 128 and got.shape == (2, 128)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    model, _, tokenizer = reference_model
    with torch.no_grad():
        want = torch.nn.functional.normalize(model.encode_text(tokenizer(["a photo of a dog", "a red car"])),
                                             dim=-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_images_embed_through_the_vision_tower(embed, tiny_clip, reference_model):
    from io import BytesIO

    import torch
    from PIL import Image

    red, blue = png((220, 20, 20), pattern=True), png((20, 20, 220))
    response = embed.stub.Embed(pb.EmbedRequest(
        function=spec("open-clip", tiny_clip.settings()),
        inputs=[pb.EmbedInput(image_bytes=red), pb.EmbedInput(text="red"), pb.EmbedInput(image_bytes=blue),
                pb.EmbedInput(image_bytes=red)]))
    got = vectors(response)
    assert got.shape == (4, 128)
    np.testing.assert_array_equal(got[0], got[3])  # the same image twice gives the same vector
    assert not np.allclose(got[0], got[2])
    model, preprocess, tokenizer = reference_model
    with torch.no_grad():
        image = preprocess(Image.open(BytesIO(red)).convert("RGB")).unsqueeze(0)
        want_image = torch.nn.functional.normalize(model.encode_image(image), dim=-1).numpy()[0]
        want_text = torch.nn.functional.normalize(model.encode_text(tokenizer(["red"])), dim=-1).numpy()[0]
    np.testing.assert_allclose(got[0], want_image, atol=1e-4)  # image inputs dispatch to encode_image
    np.testing.assert_allclose(got[1], want_text, atol=1e-4)  # text inputs, in the same batch, to encode_text


def test_normalize_false_returns_raw_vectors(embed, tiny_clip):
    response = embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings(normalize=False)),
                                                inputs=texts("a photo of a dog")))
    assert abs(float(np.linalg.norm(vectors(response)[0])) - 1.0) > 1e-3


def test_query_purpose_embeds_text_queries_as_text(embed, tiny_clip):
    function = spec("open-clip", tiny_clip.settings())
    source = vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("dog"))))
    query = vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("dog"),
                                                     purpose=pb.INPUT_PURPOSE_QUERY)))
    np.testing.assert_allclose(source, query, atol=1e-6)


def test_describe_reports_dimensions_modalities_and_settings(embed, tiny_clip):
    d = embed.stub.DescribeFunction(pb.DescribeFunctionRequest(function=spec("open-clip", tiny_clip.settings())))
    assert d.dimensions == 128
    assert list(d.modalities) == [pb.MODALITY_TEXT, pb.MODALITY_IMAGE]
    assert d.normalized is True
    assert d.settings["batch_size"] == 64 and d.settings["pretrained"] == str(tiny_clip.checkpoint)


def test_model_is_loaded_once_per_weights(embed, tiny_clip):
    function = spec("open-clip", tiny_clip.settings())
    for _ in range(3):
        embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts("x")))
    embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings(batch_size=8)),
                                     inputs=texts("x")))  # another batch size: the same weights
    embed.stub.Embed(pb.EmbedRequest(function=spec("open-clip", tiny_clip.settings(pretrained=None)),
                                     inputs=texts("x")))  # other weights
    loads = embed.server.metrics.value("vectorlane_embed_model_loads_total",
                                       {"function": "open-clip", "outcome": "ok"})
    assert loads == 2


def test_stream_embed_answers_every_request_in_order(embed, tiny_clip):
    function = spec("open-clip", tiny_clip.settings())
    words = [f"word {i}" for i in range(20)]
    requests = [pb.StreamEmbedRequest(sequence=i, function=function if i == 0 else None, inputs=texts(w))
                for i, w in enumerate(words)]
    responses = list(embed.stub.StreamEmbed(iter(requests)))
    assert [r.sequence for r in responses] == list(range(20))
    single = vectors(embed.stub.Embed(pb.EmbedRequest(function=function, inputs=texts(*words))))
    streamed = np.concatenate([vectors(r) for r in responses])
    np.testing.assert_allclose(streamed, single, atol=1e-5)
