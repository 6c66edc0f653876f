"""The real grpcurl learns the contract from the store's reflection, comments included: `describe` shows what
each field means, and a method resolves by its full name (it said "Symbol not found")."""

from __future__ import annotations

import pytest

from tests.helpers import GRPCURL, grpcurl

pytestmark = pytest.mark.skipif(GRPCURL is None, reason="grpcurl is installed by `make install`")


def test_describe_shows_the_contracts_comments(store):
    message = grpcurl(store.target, "describe", "vectorlane.store.v1.SearchRequest")
    assert message.returncode == 0, message.stderr
    assert "// A text, embedded as a query." in message.stdout and "string text = 3;" in message.stdout


def test_describe_resolves_a_method_by_its_full_name(store):
    method = grpcurl(store.target, "describe", "vectorlane.store.v1.StorageService.Search")
    assert method.returncode == 0, method.stderr
    assert "rpc Search ( .vectorlane.store.v1.SearchRequest )" in method.stdout
    missing = grpcurl(store.target, "describe", "vectorlane.store.v1.StorageService.NoSuchMethod")
    assert missing.returncode != 0 and "not found" in missing.stderr.lower()
