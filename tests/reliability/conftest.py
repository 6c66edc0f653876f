"""The reliability suites start services as processes; none outlives the test that started it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.crash_trials import ServiceProcess


@pytest.fixture(autouse=True)
def kill_leftovers() -> Iterator[None]:
    yield
    ServiceProcess.kill_leftovers()
