"""The committed generated code is exactly what `make protos` produces from protos/."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_code_matches_the_protos(tmp_path):
    written = load_generator().generate(tmp_path)
    assert written, "no generated files"
    drifted = [str(rel) for rel in written
               if not (ROOT / "contract" / rel).exists()
               or (ROOT / "contract" / rel).read_bytes() != (tmp_path / rel).read_bytes()]
    assert not drifted, f"generated code is stale; run `make protos`: {drifted}"


def test_generated_typescript_matches_the_protos(tmp_path):
    """client-ts/src/gen is what protoc-gen-es makes of protos/ (client-ts's npm packages, which make installs)."""
    written = load_generator().generate_typescript(tmp_path)
    committed = ROOT / "client-ts" / "src" / "gen"
    assert {p.relative_to(committed) for p in committed.rglob("*.ts")} == set(written)
    drifted = [str(rel) for rel in written if (committed / rel).read_bytes() != (tmp_path / rel).read_bytes()]
    assert not drifted, f"generated TypeScript is stale; run `make protos`: {drifted}"


def test_every_proto_message_and_field_is_commented():
    missing = []
    for proto in (ROOT / "protos").rglob("*.proto"):
        previous = ""
        for number, line in enumerate(proto.read_text().splitlines(), 1):
            stripped = line.strip()
            declares = stripped.startswith(("message ", "service ", "enum ", "rpc ")) or (
                "=" in stripped and stripped.endswith(";") and not stripped.startswith(("syntax", "package",
                                                                                         "option", "//")))
            if declares and not previous.startswith("//"):
                missing.append(f"{proto.name}:{number}: {stripped}")
            previous = stripped
    assert not missing, "uncommented declarations:\n" + "\n".join(missing)
