"""The wire contract is a package of its own (`vectorlane_contract`): the services depend on it and not on the
client, and the client's `vectorlane.store.v1` / `vectorlane.wire` are the contract's very modules."""

from __future__ import annotations

import subprocess
import sys


def test_the_services_load_without_the_client():
    probe = ("import sys, store_service.server, store_service.cli, embed_service.server, embed_service.cli; "
             "print(sorted(m for m in sys.modules if m == 'vectorlane' or m.startswith('vectorlane.')))")
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=True)
    assert loaded.stdout.strip() == "[]"


def test_the_client_offers_the_contract_under_its_own_name():
    import vectorlane.store.v1.store_service_pb2 as by_path
    import vectorlane_contract.store.v1.store_service_pb2 as contract
    from vectorlane import wire
    from vectorlane.embed.v1 import embed_service_pb2
    from vectorlane.store.v1 import store_service_pb2
    from vectorlane_contract import wire as contract_wire
    from vectorlane_contract.embed.v1 import embed_service_pb2 as contract_embed

    assert by_path is store_service_pb2 is contract and embed_service_pb2 is contract_embed
    assert wire.encode is contract_wire.encode and wire.decode is contract_wire.decode
    assert contract.DESCRIPTOR.services_by_name["StorageService"].full_name == "vectorlane.store.v1.StorageService"


def test_var_references_have_one_definition():
    """`$var:` is read by the client (local functions' variables), the store (secrets in table metadata) and
    the embed service (resolving secrets) with the contract's one definition."""
    from vectorlane_contract.references import Reference, parse, secret_name

    assert parse("$var:key") == Reference("key", None) and parse("$var:device:cpu") == Reference("device", "cpu")
    assert parse("sk-literal") is None and parse(3) is None
    assert secret_name("$var:openai.key-1") == "openai.key-1"
    assert secret_name("$var:key:sk-default") is None and secret_name("$var:../x") is None
    assert secret_name("$var:" + "k" * 129) is None and secret_name("sk-live") is None
