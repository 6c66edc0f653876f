"""Client fixtures: a real store wired to a real embed service (hosting `word-hash` and the tiny open_clip),
and `vectorlane.connect` to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import vectorlane
from tests.store_service.conftest import RunningStore, start_store, word_hash_registered  # noqa: F401

__all__ = ["start_store", "word_hash_registered"]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    root = tmp_path / "images"
    root.mkdir()
    return root


@pytest.fixture
def services(start_embed, start_store, images) -> RunningStore:  # noqa: F811
    embed = start_embed(image_roots=(images,))
    return start_store(embed)


@pytest.fixture
def db(services: RunningStore) -> Iterator[vectorlane.Connection]:
    connection = vectorlane.connect(f"grpc://{services.target}", timeout=60)
    yield connection
    connection.close()
