"""Round trips through the one conversion module: domain -> protobuf -> domain."""

from __future__ import annotations

import numpy as np

from embed_service import conversions
from embed_service.core import FunctionSpec
from embed_service.functions.base import Modality, Purpose
from embed_service.inputs import ImageBytes, ImageUri, TextInput
from vectorlane.embed.v1 import embed_service_pb2 as pb


def test_function_spec_round_trip():
    spec = FunctionSpec("open-clip", {"name": "ViT-B-32", "normalize": False, "batch_size": 8,
                                      "nested": {"a": [1, "b"]}, "pretrained": None})
    back = conversions.function_spec(conversions.to_pb_spec(spec))
    assert back.name == spec.name and back.settings == spec.settings


def test_input_round_trip():
    values = [TextInput("hi"), ImageBytes(b"\x00\x01"), ImageUri("file:///x.png")]
    assert conversions.embed_inputs([conversions.to_pb_input(v) for v in values]) == values
    assert conversions.embed_inputs([pb.EmbedInput()]) == [None]


def test_purpose_and_modalities():
    for purpose in Purpose:
        assert conversions.purpose(conversions.to_pb_purpose(purpose)) is purpose
    assert conversions.purpose(pb.INPUT_PURPOSE_UNSPECIFIED) is Purpose.SOURCE
    assert conversions.from_pb_modalities([pb.MODALITY_TEXT, pb.MODALITY_IMAGE]) == (Modality.TEXT, Modality.IMAGE)


def test_vectors_round_trip_as_float32():
    vectors = np.random.default_rng(0).standard_normal((3, 5)).astype(np.float32)
    response = conversions.embed_response(5, vectors)
    np.testing.assert_array_equal(conversions.vectors_of(pb.EmbedResponse.FromString(response.SerializeToString())),
                                  vectors)
    assert conversions.vectors_of(conversions.embed_response(5, vectors[:0])).shape == (0, 5)


def test_stream_items_inherit_nothing_themselves():
    message = pb.StreamEmbedRequest(sequence=4, inputs=[pb.EmbedInput(text="x")], purpose=pb.INPUT_PURPOSE_QUERY)
    (item,) = list(conversions.stream_items([message]))
    assert item.sequence == 4 and item.spec is None and item.purpose is Purpose.QUERY
