"""Shared fixtures: real embed servers on 127.0.0.1 with ephemeral ports, a tiny open_clip checkpoint."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from embed_service.config import EmbedConfig  # noqa: E402
from embed_service.server import EmbedServer  # noqa: E402
from vectorlane.embed.v1 import embed_service_pb2_grpc as pb_grpc  # noqa: E402

if TYPE_CHECKING:
    from tests.object_store import LocalAzure, LocalS3

TINY_CLIP = {
    "embed_dim": 128,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 128, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 4, "layers": 2},
}


@dataclass
class TinyClip:
    root: Path
    config: Path
    checkpoint: Path

    def settings(self, **extra: object) -> dict:
        return {"name": str(self.config), "pretrained": str(self.checkpoint), "device": "cpu", **extra}


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> TinyClip:
    """A 7.6M-parameter open_clip architecture with random weights, saved as a state-dict checkpoint."""
    from embed_service.torchvision_compat import ensure_torchvision_importable

    ensure_torchvision_importable()
    import open_clip
    import torch

    root = tmp_path_factory.mktemp("models")
    config = root / "tiny-clip.json"
    config.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(config)
    torch.manual_seed(1234)
    model = open_clip.create_model("tiny-clip", pretrained=None)
    checkpoint = root / "tiny-clip.pt"
    torch.save(model.state_dict(), checkpoint)
    return TinyClip(root, config, checkpoint)


TINY_CROSS_ENCODER = "tiny-cross-encoder"


@pytest.fixture(scope="session")
def tiny_cross_encoder(tiny_clip: TinyClip) -> Path:
    """A random-weights BERT cross-encoder (`tests/tiny_models.py`) where the embed service's model roots are
    (beside the tiny open_clip): `cross-encoder` loads it by its folder's name through the real
    sentence-transformers CrossEncoder."""
    from tests.tiny_models import tiny_cross_encoder as build

    return build(tiny_clip.root / TINY_CROSS_ENCODER)


TINY_COLBERT = "tiny-colbert"


@pytest.fixture(scope="session")
def tiny_colbert(tiny_clip: TinyClip) -> Path:
    """A random-weights ColBERT checkpoint (`tests/tiny_models.py`) where the embed service's model roots are:
    `colbert` loads it by its folder's name."""
    from tests.tiny_models import tiny_colbert as build

    return build(tiny_clip.root / TINY_COLBERT)


@dataclass
class RunningEmbed:
    server: EmbedServer
    channel: grpc.Channel
    stub: pb_grpc.EmbeddingServiceStub

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.server.port}"


BASE_CONFIG = EmbedConfig(port=0, metrics_port=0, preload="", retry_initial_delay=0.01, retry_max_delay=0.05,
                          grace_seconds=2.0, endpoint_allowed_hosts=("http://127.0.0.1:*",))  # the tests' local APIs


@pytest.fixture
def start_embed(tiny_clip: TinyClip) -> Iterator[Callable[..., RunningEmbed]]:
    """Starts an embed server with config overrides; every one started is stopped after the test."""
    running: list[RunningEmbed] = []

    def start(**overrides: object) -> RunningEmbed:
        overrides.setdefault("model_roots", (tiny_clip.root,))
        server = EmbedServer(replace(BASE_CONFIG, **overrides)).start()
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        handle = RunningEmbed(server, channel, pb_grpc.EmbeddingServiceStub(channel))
        running.append(handle)
        return handle

    yield start
    for handle in running:
        handle.channel.close()
        handle.server.stop(grace=0.5)


@pytest.fixture
def embed(start_embed: Callable[..., RunningEmbed]) -> RunningEmbed:
    return start_embed()


@pytest.fixture(scope="session")
def local_s3() -> Iterator["LocalS3"]:
    """A real S3-compatible server (moto, its own process) on loopback for the session."""
    from tests.object_store import LocalS3

    with LocalS3() as s3:
        yield s3


@pytest.fixture(scope="session")
def local_azure() -> Iterator["LocalAzure"]:
    """Azure Blob Storage's emulator (Azurite, its own process) on loopback for the session."""
    from tests.object_store import LocalAzure

    with LocalAzure() as azure:
        yield azure
