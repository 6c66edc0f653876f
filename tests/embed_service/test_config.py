"""Every setting is a flag and a VECTORLANE_ environment variable; flags win."""

from __future__ import annotations

from pathlib import Path

import pytest

from embed_service.config import EmbedConfig
from embed_service.core import FunctionSpec


def test_defaults_are_the_embedded_ones():
    config = EmbedConfig.from_args([], environ={})
    assert config.port == 50052 and config.host == "127.0.0.1" and config.batching is True
    assert config.preload_specs() == [FunctionSpec("sentence-transformers")]


def test_environment_then_flags():
    env = {"VECTORLANE_PORT": "6000", "VECTORLANE_BATCHING": "false", "VECTORLANE_IMAGE_ROOTS": "/a,/b",
           "VECTORLANE_MAX_BATCH_WAIT_MS": "2.5", "VECTORLANE_SECRETS_DIR": "/run/secrets"}
    config = EmbedConfig.from_args([], environ=env)
    assert config.port == 6000 and config.batching is False and config.max_batch_wait_ms == 2.5
    assert config.image_roots == (Path("/a"), Path("/b")) and config.secrets_dir == Path("/run/secrets")
    flagged = EmbedConfig.from_args(["--port", "7000", "--batching", "--image-allowed-hosts", "img.local,cdn:8080"],
                                    environ=env)
    assert flagged.port == 7000 and flagged.batching is True
    assert flagged.image_allowed_hosts == ("img.local", "cdn:8080")


def test_preload_takes_a_json_list_with_settings():
    config = EmbedConfig(preload='[{"name": "open-clip", "settings": {"name": "ViT-B-32"}}, {"name": "openai"}]')
    assert config.preload_specs() == [FunctionSpec("open-clip", {"name": "ViT-B-32"}), FunctionSpec("openai")]
    assert EmbedConfig(preload="").preload_specs() == []


def test_bad_values_are_refused_with_the_flag_named(capsys):
    with pytest.raises(SystemExit):
        EmbedConfig.from_args([], environ={"VECTORLANE_PORT": "fifty"})
    assert "--port" in capsys.readouterr().err
