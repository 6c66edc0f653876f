"""Secret references: $var:name resolves from the secrets directory or VECTORLANE_SECRET_*, never literal."""

from __future__ import annotations

import pytest

from embed_service.errors import InvalidSettings, SecretNotFound
from embed_service.functions.openai import OpenAIEmbeddings
from embed_service.secret_refs import SecretResolver


def test_environment():
    resolver = SecretResolver(environ={"VECTORLANE_SECRET_OPENAI_KEY": "from-env"})
    assert resolver.resolve("$var:openai_key", setting="api_key") == "from-env"
    with pytest.raises(SecretNotFound):
        resolver.resolve("$var:other", setting="api_key")


@pytest.mark.parametrize("hidden", ["$var:other:sk-hidden-literal", "$var:other:", "$var:k\nsk-x"])
def test_a_default_in_a_secret_reference_is_a_literal_secret(hidden):
    """LanceDB's `$var:name:default` would store the default (a key) in table metadata with the reference."""
    resolver = SecretResolver(environ={"VECTORLANE_SECRET_OTHER": "from-env"})
    with pytest.raises(InvalidSettings) as refused:
        resolver.resolve(hidden, setting="api_key")
    assert refused.value.reason == "LITERAL_SECRET" and "sk-" not in refused.value.message
    with pytest.raises(InvalidSettings):
        OpenAIEmbeddings.create({"api_key": hidden, "name": "m"})


def test_secrets_directory_wins_over_environment(tmp_path):
    (tmp_path / "openai_key").write_text("from-file\n")
    resolver = SecretResolver(tmp_path, environ={"VECTORLANE_SECRET_OPENAI_KEY": "from-env"})
    assert resolver.resolve("$var:openai_key", setting="api_key") == "from-file"


def test_only_prefixed_environment_variables_are_reachable():
    resolver = SecretResolver(environ={"HOME": "/root", "AWS_SECRET_ACCESS_KEY": "x"})
    with pytest.raises(SecretNotFound):
        resolver.resolve("$var:AWS_SECRET_ACCESS_KEY", setting="api_key")


def test_names_cannot_climb_out_of_the_secrets_directory(tmp_path):
    (tmp_path / "outside").write_text("nope")
    inner = tmp_path / "secrets"
    inner.mkdir()
    for name in ("..", "../outside", "/etc/passwd", "a/../../outside"):
        with pytest.raises(InvalidSettings):
            SecretResolver(inner, environ={}).resolve(f"$var:{name}", setting="api_key")


@pytest.mark.parametrize("literal", ["sk-abc123", "$var", "$var:", "var:name", "$env:KEY"])
def test_literal_keys_are_refused_when_the_function_is_created(literal):
    with pytest.raises(InvalidSettings) as err:
        OpenAIEmbeddings.create({"api_key": literal})
    assert err.value.reason == "LITERAL_SECRET"
    assert "sk-abc123" not in str(err.value)  # a key is never echoed back


def test_references_stay_references_in_the_settings():
    function = OpenAIEmbeddings.create({"api_key": "$var:openai_key", "name": "text-embedding-3-small"})
    assert function.settings()["api_key"] == "$var:openai_key"
    assert function.given_settings() == {"api_key": "$var:openai_key", "name": "text-embedding-3-small"}
