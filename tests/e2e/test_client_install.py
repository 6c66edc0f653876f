"""`pip install vectorlane` is the client alone: installed from this checkout (`./contract ./client`) into a
fresh virtual environment, it holds no server package, imports without torch, FAISS or Lance, and its LanceDB
walkthrough (a table with a server function, rows without vectors, a search by text) runs against the real
services this test starts."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import BASE_CONFIG
from tests.store_service.conftest import BASE as STORE_BASE
from tests.store_service.conftest import word_hash_registered  # noqa: F401 - autouse: the embed service hosts it

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SERVICE_ONLY = ("torch", "open_clip", "sentence_transformers", "openai", "faiss", "lance", "lark", "pandas",
                "store_service", "embed_service", "rpc_common")

SCRIPT = textwrap.dedent("""
    import importlib.util, json, sys
    import vectorlane
    from vectorlane.embeddings import get_registry
    from vectorlane.pydantic import LanceModel, Vector

    db = vectorlane.connect(sys.argv[1])
    func = get_registry().get("word-hash").create(dims=16)

    class Words(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = db.create_table("words", schema=Words)
    table.add([{"text": "hello world"}, {"text": "goodbye moon"}])
    found = table.search("hello there").limit(1).to_list()
    batch = table.search([[1.0] * 16, [-1.0] * 16]).limit(1).to_list()
    missing = [m for m in json.loads(sys.argv[2]) if importlib.util.find_spec(m) is not None]
    print(json.dumps({"text": found[0]["text"], "queries": sorted(r["query_index"] for r in batch),
                      "imported": sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules),
                      "installed": missing}))
""")


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the client's distribution installed from this checkout (pip's own resolver, the
    project's constraints), as a user's `pip install vectorlane` would."""
    source = tmp_path_factory.mktemp("source")  # the build writes beside the copies, not in the checkout
    shutil.copy(ROOT / "constraints.txt", source / "constraints.txt")
    for package in ("client", "contract"):
        shutil.copytree(ROOT / package, source / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    venv = tmp_path_factory.mktemp("client-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    done = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "-c", str(source / "constraints.txt"),
                           str(source / "contract"), str(source / "client")], capture_output=True, text=True,
                          timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return python


def test_the_base_distribution_is_the_client_without_torch(client_venv, tmp_path):
    from dataclasses import replace

    from embed_service.server import EmbedServer
    from store_service.server import StoreServer

    listed = subprocess.run([str(client_venv), "-m", "pip", "list", "--format", "json"], capture_output=True,
                            text=True, check=True, timeout=120)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "vectorlane" in names and "grpcio" in names and "pyarrow" in names
    assert not names & {"torch", "faiss-cpu", "pylance", "open-clip-torch", "sentence-transformers", "openai",
                        "lark", "pandas"}, names

    embed = EmbedServer(replace(BASE_CONFIG)).start()
    store = StoreServer(replace(STORE_BASE, data_dir=tmp_path / "data",
                                embed_address=f"127.0.0.1:{embed.port}")).start()
    try:
        ran = subprocess.run([str(client_venv), "-c", SCRIPT, f"grpc://127.0.0.1:{store.port}",
                              json.dumps(list(SERVICE_ONLY))], capture_output=True, text=True, timeout=300,
                             cwd=tmp_path)  # not the checkout: `vectorlane` comes from the venv
        assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
        result = json.loads(ran.stdout.strip().splitlines()[-1])
    finally:
        store.stop(grace=0.2)
        embed.stop(grace=0.2)
    assert result == {"text": "hello world", "queries": [0, 1], "imported": [], "installed": []}
