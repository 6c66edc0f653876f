"""Plug-ins add functions through the `vectorlane.embeddings` entry-point group, without editing the service."""

from __future__ import annotations

import sys
import textwrap

import grpc
import numpy as np
import pytest

from embed_service.functions import get_registry
from tests.helpers import error_info, spec, texts, vectors
from vectorlane.embed.v1 import embed_service_pb2 as pb

PLUGIN = '''
import numpy as np
import pydantic
from embed_service.functions import EmbeddingFunction, register


@register("letter-counts")
class LetterCounts(EmbeddingFunction):
    """Counts of the letters a..h: a real, if simple, text embedding."""
    description = "letter counts (test plug-in)"
    letters: str = pydantic.Field("abcdefgh")

    def ndims(self):
        return len(self.letters)

    def embed_texts(self, texts, purpose):
        return np.asarray([[t.count(c) for c in self.letters] for t in texts], dtype=np.float32)


@register("always-breaks")
class AlwaysBreaks(EmbeddingFunction):
    def ndims(self):
        return 2

    def embed_texts(self, texts, purpose):
        raise KeyError("a bug in the plug-in")
'''


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    (tmp_path / "vl_test_plugin.py").write_text(PLUGIN)
    (tmp_path / "vl_broken_plugin.py").write_text("raise ImportError('this plug-in cannot load')\n")
    info = tmp_path / "vl_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: vl-test-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent("""\
        [vectorlane.embeddings]
        letter-counts = vl_test_plugin
        broken = vl_broken_plugin
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = get_registry()
    registry.rediscover()
    yield registry
    for name in ("letter-counts", "always-breaks"):
        registry.unregister(name)
    sys.modules.pop("vl_test_plugin", None)


def test_entry_point_plugins_are_served(plugin_on_path, start_embed, caplog):
    assert "letter-counts" in plugin_on_path.names()
    embed = start_embed()
    listed = [f.name for f in embed.stub.ListFunctions(pb.ListFunctionsRequest()).functions]
    assert "letter-counts" in listed and "open-clip" in listed
    response = embed.stub.Embed(pb.EmbedRequest(function=spec("letter-counts"), inputs=texts("abba", "cafe")))
    np.testing.assert_array_equal(vectors(response), [[2, 2, 0, 0, 0, 0, 0, 0], [1, 0, 1, 0, 1, 1, 0, 0]])


def test_a_broken_plugin_is_skipped_and_logged(plugin_on_path, caplog):
    plugin_on_path.rediscover()
    assert "broken" not in plugin_on_path.names()
    assert "letter-counts" in plugin_on_path.names()


def test_an_unexpected_error_is_internal_with_a_request_id(plugin_on_path, start_embed, caplog):
    embed = start_embed()
    with pytest.raises(grpc.RpcError) as err:
        embed.stub.Embed(pb.EmbedRequest(function=spec("always-breaks"), inputs=texts("x")))
    assert err.value.code() == grpc.StatusCode.INTERNAL
    request_id = error_info(err.value).metadata["request_id"]
    assert request_id in err.value.details()
    assert "a bug in the plug-in" not in err.value.details()  # internals stay in the log
    assert any(request_id in r.getMessage() for r in caplog.records)
    assert len(embed.stub.Embed(pb.EmbedRequest(function=spec("letter-counts"), inputs=texts("a"))).embeddings) == 1
