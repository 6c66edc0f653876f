"""LanceDB's own Python tests, run against vectorlane with only the import and the connect lines changed: the
measure issue 20 names ("the same code from LanceDB's own tests, with only import and connect changed").

    python scripts/lancedb_parity.py --lancedb-src /path/to/lancedb   # a checkout, or a bare git directory

What the run changes in LanceDB's files, and nothing else:
- `import lancedb` becomes `import vectorlane as lancedb`; `from lancedb.x import ...` imports from
  `vectorlane.x`; `lancedb.conftest` (LanceDB's test helpers shipped in its package) is LanceDB's own file,
  importing vectorlane. Each module-level import that fails is recorded and its names stay undefined, so only
  the tests that use a missing name fail, not the whole file.
- `lancedb.connect(uri)` / `connect_async(uri)` connect to a real store of that database: one store per
  directory, a new one for each "memory://" (as LanceDB gives a new in-memory database each time), all wired
  to one real embed service (the services of `tests/lancedb_compat/`). `mem_db`, `tmp_db` and their async
  forms are such connections.

Which tests: `test_embeddings.py`, `test_embeddings_slow.py`, `test_pydantic.py`, `docs/test_embeddings_optional.py`,
`docs/test_pydantic_integration.py` whole, and the tests of `test_table.py` / `test_query.py` on embeddings,
bad vectors, adds, merge/update/delete, versions and search (SELECT below). Tests needing what no machine here
has (a provider's cloud account, images from the internet) are counted apart (NEEDS_NETWORK), and so are the
few that patch or call LanceDB's in-process internals (INTERNALS); LanceDB's own skip conditions (API keys not
set, packages not installed) skip as they do for LanceDB.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = "python/python/tests"
WHOLE = ["test_embeddings.py", "test_embeddings_slow.py", "test_pydantic.py", "docs/test_embeddings_optional.py",
         "docs/test_pydantic_integration.py", "test_fts.py", "test_hybrid_query.py", "test_rerankers.py"]
SELECT = re.compile(r"embedding|bad_vectors|nans|fixed_size_list|nullable|merge|update|delete|version|restore|"
                    r"tags|time_travel|search|query|add|create_table|count_rows|empty|uri|basic|consistency|f16|"
                    r"where|offset|limit|nprobes|vector|take|getitems|with_row_id|to_pandas|to_arrow|to_list|"
                    r"to_polars|schema|timeout|cast|multiple|fts|hybrid|rerank")
LEAVE_OUT = re.compile(r"branch|namespace|blob|computed_column|refresh_column|(?<!fts_)index|progress|"
                       r"parallelism|to_lance|releases_arrow|explain|analyze|distance_range|order_by|"
                       r"serialization|camelcase|fast_search|lsm|permutation|write_spec|scanner_state")
# The test_table.py tests issue 20 names ("the embedding, bad-vector, merge/update/delete, versions and search
# tests"); the run reports them apart as well as the wider selection.
ISSUE_TABLE = re.compile(r"embedding|bad_vectors|nans|fixed_size_list|merge|update|delete|version|restore|tags|"
                         r"time_travel|checkout|search")
# Tests that need what these machines cannot reach: a provider's cloud service, model weights or images
# downloaded at run time. Counted apart from the applicable ones, with the reason.
NEEDS_NETWORK = {
    "test_embeddings_slow.py::test_openclip": "downloads images from the internet and pretrained weights",
    "test_embeddings_slow.py::test_siglip": "downloads a SigLIP model from the hub",
    "test_embeddings_slow.py::test_instructor_embedding": "downloads an instructor model from the hub",
    "test_embeddings.py::test_url_retrieve_downloads_image": "downloads an image from the internet",
    "docs/test_embeddings_optional.py::test_embeddings_openai": "calls api.openai.com with a real key",
    "docs/test_embeddings_optional.py::test_embeddings_openai_async": "calls api.openai.com with a real key",
    "docs/test_embeddings_optional.py::test_embeddings_secret": "calls api.openai.com with a real key",
    "test_embeddings.py::test_embedding_function_with_pandas_ollama_pickle": "an Ollama server on localhost:11434",
    "test_embeddings_slow.py::test_ollama_embedding": "an Ollama server on localhost:11434",
    "test_rerankers.py::test_cross_encoder_reranker": "downloads cross-encoder/ms-marco-TinyBERT-L-6 from the hub",
    "test_rerankers.py::test_cross_encoder_reranker_return_all": "downloads cross-encoder/ms-marco-TinyBERT-L-6 "
                                                                  "from the hub",
    "test_query.py::test_query_reranked_async": "downloads cross-encoder/ms-marco-TinyBERT-L-6 from the hub",
    "test_fts.py::test_fts_jieba_tokenizer": "a jieba model in Lance's language-model home (an operator's files)",
    "test_fts.py::test_fts_lindera_tokenizer": "a lindera model in Lance's language-model home (an operator's files)",
    "test_embeddings_slow.py::test_basic_text_embeddings[openai]": "calls api.openai.com with a real key",
    "test_embeddings_slow.py::test_basic_text_embeddings[huggingface]": "downloads colbert-ir/colbertv2.0 from the hub",
    "test_embeddings_slow.py::test_basic_text_embeddings[ollama]": "an Ollama server on localhost:11434",
}
# Tests of LanceDB's in-process internals (a private helper called, an attribute patched or mocked), which
# have no counterpart where functions run in the embed service. Counted apart, with the reason.
INTERNALS = {
    "test_embeddings.py::test_instructor_ndims_uses_instruction": "patches get_model of LanceDB's in-process "
                                                                  "instructor class",
    "test_embeddings.py::test_ollama_embeddings_pickle": "puts a client object into LanceDB's in-process ollama "
                                                         "function's __dict__",
    "test_embeddings.py::test_jina_generate_image_input_dict_local_path": "calls a private helper of LanceDB's "
                                                                          "in-process jina client",
    "test_query.py::test_query_builder_with_different_vector_column": "mocks LanceDB's table internals (to_lance)",
    "test_fts.py::test_reject_legacy_tantivy_index": "calls LanceDB's private _get_fts_index_path (tantivy's folder)",
    "test_fts.py::test_fts_phrase_query_execution_preserves_user_text": "mocks LanceDB's table internals "
                                                                         "(_execute_query)",
    "test_hybrid_query.py::test_hybrid_phrase_query_is_preserved_in_analyze_plan": "mocks LanceDB's table "
                                                                                    "internals (_analyze_plan)",
}
# Where vectorlane differs from LanceDB by design, with the reason. Counted apart.
DIFFERS = {
    "test_hybrid_query.py::test_explain_plan": "asserts DataFusion's KNNVectorDistance node: the store's vector "
                                               "search runs on FAISS (or its own exact scan), and its plan names "
                                               "those steps",
    "test_table.py::test_consistency": "two clients of one store see its commits at once; read_consistency_interval "
        "governs commits made by other processes (another store, LanceDB) on the same dataset",
    "test_table.py::test_table_uri": "a table lives in the store, not at a path the client sees: its uri is the "
                                     "store's address and the table's name",
    "test_table.py::test_search_after_merge": "asserts Lance's ANN plan node; the store's plan names FaissSearch "
        "(the merge and the search themselves: tests/store_service/test_merge_columns.py)",
    "test_table.py::test_basic": "asserts the repr of LanceDB's LanceTable; a vectorlane Table's repr is its own",
    "test_embeddings.py::test_openai_variables_survive_metadata_round_trip": "a hosted function's secrets stay "
        "$var references in the client and are resolved by the embed service from its mounted secrets",
    "test_table.py::test_async_search_runs_embedding_on_dedicated_executor": "the dedicated executor's threads "
        "are named vectorlane-embedding, not lancedb-embedding (the embedding does run there)",
    "test_hybrid_query.py::test_hybrid_query_with_stale_fixed_size_binary_prefilter": "opens the table's files "
        "with Lance in the test process (to_lance) to change its indexes, and builds a BTree scalar index; the "
        "store has no scalar indexes (it evaluates filters from its own column state)",
}

CONFTEST = '''
import builtins, sys, tempfile
from pathlib import Path
from dataclasses import replace
sys.path.insert(0, {repo!r})
import pytest, pytest_asyncio
import vectorlane
from store_service.server import StoreServer
from tests.conftest import tiny_clip  # noqa: F401 - fixtures the services need
from tests.lancedb_compat.conftest import services, _forget_local_functions  # noqa: F401
from tests.store_service.conftest import BASE, word_hash_registered  # noqa: F401

# A LanceDB database is a directory (or a fresh in-memory one per "memory://" connect): here each is a store
# of its own, wired to the one embed service.
_state = {{"services": None, "stores": {{}}, "test": []}}


def _store_for(uri):
    key = str(uri)
    if key.startswith("memory://") or key not in _state["stores"]:
        embed = _state["services"].embed
        store = StoreServer(replace(BASE, data_dir=Path(tempfile.mkdtemp(prefix="parity-db-")),
                                    embed_address=f"127.0.0.1:{{embed.port}}")).start()
        _state["test"].append(store)
        if not key.startswith("memory://"):
            _state["stores"][key] = store
        return store
    return _state["stores"][key]


def _vl_connect(uri="memory://", *args, **kwargs):
    return vectorlane.connect(f"grpc://127.0.0.1:{{_store_for(uri).port}}", timeout=120)


async def _vl_connect_async(uri="memory://", *args, **kwargs):
    return await vectorlane.connect_async(f"grpc://127.0.0.1:{{_store_for(uri).port}}", timeout=120)


builtins._vl_connect = _vl_connect
builtins._vl_connect_async = _vl_connect_async


@pytest.fixture(scope="session", autouse=True)
def _embed(services):
    _state["services"] = services
    yield
    for store in _state["stores"].values():
        store.stop(grace=0.1)


@pytest.fixture(autouse=True)
def _new_test(_embed):
    yield


@pytest.fixture
def mem_db(_new_test):
    return _vl_connect("memory://")


@pytest.fixture
def tmp_db(_new_test, tmp_path):
    return _vl_connect(tmp_path)


@pytest_asyncio.fixture
async def mem_db_async(_new_test):
    return await _vl_connect_async("memory://")


@pytest_asyncio.fixture
async def tmp_db_async(_new_test, tmp_path):
    return await _vl_connect_async(tmp_path)


def pandas_string_type():
    import pandas as pd
    import pyarrow as pa
    return pa.large_utf8() if tuple(int(x) for x in pd.__version__.split(".")[:2]) >= (3, 0) else pa.utf8()
'''


class Source:
    """LanceDB's sources: a work tree, or a bare git directory read at HEAD."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.bare = not (path / "python").is_dir()

    def read(self, rel: str) -> str:
        if not self.bare:
            return (self.path / rel).read_text()
        return subprocess.run(["git", "--git-dir", str(self.path), "show", f"HEAD:{rel}"], check=True,
                              capture_output=True, text=True).stdout


def change_imports_and_connect(text: str) -> str:
    """The only edits: imports of lancedb name vectorlane; connect calls reach the test's services."""
    text = re.sub(r"^(\s*)import lancedb\s*$", r"\1import vectorlane as lancedb", text, flags=re.M)
    for alias in re.findall(r"^\s*import lancedb as (\w+)\s*$", text, flags=re.M):  # `import lancedb as ldb`
        text = text.replace(f"{alias}.connect_async(", "_vl_connect_async(")
        text = text.replace(f"{alias}.connect(", "_vl_connect(")
    text = re.sub(r"^(\s*)import lancedb as (\w+)\s*$", r"\1import vectorlane as \2", text, flags=re.M)
    text = re.sub(r"^(\s*)import lancedb\.(\w+)\s*$", r"\1import vectorlane.\2\n\1import vectorlane as lancedb",
                  text, flags=re.M)
    text = re.sub(r"^(\s*)from lancedb\.conftest import", r"\1from lancedb_conftest import", text, flags=re.M)
    text = re.sub(r"^(\s*)from lancedb(\.[\w.]+)? import", r"\1from vectorlane\2 import", text, flags=re.M)
    text = text.replace("lancedb.connect_async(", "_vl_connect_async(").replace("lancedb.connect(", "_vl_connect(")
    return text


def guard_module_imports(text: str, module: str) -> str:
    """Each name a top-level import cannot give is recorded and stays undefined, instead of failing the file:
    only the tests that use a missing name fail."""
    tree = ast.parse(text)
    lines = text.splitlines()
    imports = [n for n in tree.body if isinstance(n, ast.Import)
               or (isinstance(n, ast.ImportFrom) and n.module != "__future__")]
    for node in sorted(imports, key=lambda n: -n.lineno):
        if isinstance(node, ast.ImportFrom):
            prefix = "." * node.level + (node.module or "")
            singles = [f"from {prefix} import {a.name}" + (f" as {a.asname}" if a.asname else "")
                       for a in node.names]
        else:
            singles = [ast.unparse(ast.Import(names=[a])) for a in node.names]
        guarded: list[str] = []
        for single in singles:
            guarded += ["try:", "    " + single, "except (ImportError, AttributeError) as _exc:",
                        f"    __import__('builtins').__dict__.setdefault('_vl_missing', set()).add("
                        f"({module!r}, {single!r}))"]
        lines[node.lineno - 1:node.end_lineno] = guarded
    return "\n".join(lines) + "\n"


def selected(path: str, name: str) -> bool:
    if path not in ("test_table.py", "test_query.py"):
        return True
    return bool(SELECT.search(name)) and not LEAVE_OUT.search(name)


def prepare(source: Source, work: Path, under_lancedb: bool = False) -> list[str]:
    """Write the chosen tests into `work`: changed to reach vectorlane, or unchanged (LanceDB's own conftest
    and the installed `lancedb`) for the baseline run."""
    (work / "docs").mkdir()
    if under_lancedb:
        (work / "conftest.py").write_text(source.read(f"{TESTS}/conftest.py"))
        (work / "utils.py").write_text(source.read(f"{TESTS}/utils.py"))
        return _write_tests(source, work, lambda text, rel: text)
    (work / "conftest.py").write_text(CONFTEST.format(repo=str(REPO)))
    helpers = source.read("python/python/lancedb/conftest.py").replace("from .embeddings", "from vectorlane.embeddings")
    (work / "lancedb_conftest.py").write_text(guard_module_imports(change_imports_and_connect(helpers), "conftest"))
    (work / "utils.py").write_text(change_imports_and_connect(source.read(f"{TESTS}/utils.py")))
    return _write_tests(source, work, lambda text, rel: guard_module_imports(change_imports_and_connect(text), rel))


def _write_tests(source: Source, work: Path, change) -> list[str]:
    chosen: list[str] = []
    for rel in WHOLE + ["test_table.py", "test_query.py"]:
        text = change(source.read(f"{TESTS}/{rel}"), rel)
        (work / rel).write_text(text)
        for node in ast.parse(text).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_"):
                if selected(rel, node.name):
                    chosen.append(f"{rel}::{node.name}")
    return chosen


def run(work: Path, chosen: list[str], junit: Path, extra: list[str]) -> int:
    files = sorted({c.split("::")[0] for c in chosen})
    names = {c.split("::")[1] for c in chosen if c.split("::")[0] in ("test_table.py", "test_query.py")}
    deselect = []
    for rel in ("test_table.py", "test_query.py"):
        for node in ast.parse((work / rel).read_text()).body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_") \
                    and node.name not in names:
                deselect += ["--deselect", f"{rel}::{node.name}"]
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(work),
           "-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function", "-W", "ignore",
           "--timeout", "300", f"--junitxml={junit}", *deselect, *extra, *files]
    return subprocess.run(cmd, cwd=work).returncode


def outcomes_of(junit: Path) -> dict[str, bool]:
    """Each test that ran and was not skipped: whether it passed."""
    result = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        if case.find("skipped") is None:
            test_id = f"{case.get('classname', '').replace('.', '/')}.py::{case.get('name')}"
            result[test_id] = case.find("failure") is None and case.find("error") is None
    return result


def compare(junit: Path, baseline: Path) -> None:
    """The goal's measure: every test that passes under LanceDB here passes against vectorlane."""
    ours, theirs = outcomes_of(junit), outcomes_of(baseline)
    both = sorted(t for t, ok in theirs.items() if ok and t in ours)
    lost = [t for t in both if not ours[t]]
    apart = [t for t in lost if t in NEEDS_NETWORK or t.split("[")[0] in NEEDS_NETWORK
             or t.split("[")[0] in INTERNALS or t.split("[")[0] in DIFFERS]
    print(f"\n== against LanceDB {_lancedb_version()} on the same tests ==")
    print(f"pass under LanceDB: {sum(theirs.values())} of {len(theirs)} that ran; "
          f"of those, pass against vectorlane: {len(both) - len(lost)} of {len(both)}")
    print(f"fail here but pass under LanceDB: {len(lost) - len(apart)} (and {len(apart)} counted apart above)")
    for test_id in lost:
        if test_id not in apart:
            print(f"   {test_id}")
    gained = sorted(t for t, ok in ours.items() if ok and t in theirs and not theirs[t])
    print(f"pass here but fail under LanceDB: {len(gained)}")
    for test_id in gained:
        print(f"   {test_id}")


def _lancedb_version() -> str:
    try:
        import lancedb  # type: ignore[import-not-found]
        return str(lancedb.__version__)
    except ImportError:
        return "(not installed)"


def report(junit: Path) -> None:
    outcomes: dict[str, list[tuple[str, str]]] = {"passed": [], "failed": [], "skipped": [], "network": [],
                                                  "internals": [], "differs": []}
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        test_id = f"{module}.py::{case.get('name')}"
        failure = case.find("failure") if case.find("failure") is not None else case.find("error")
        base = test_id.split("[")[0]
        if case.find("skipped") is not None:
            outcomes["skipped"].append((test_id, case.find("skipped").get("message", "")[:100]))
        elif test_id in NEEDS_NETWORK or base in NEEDS_NETWORK:
            outcomes["network"].append((test_id, NEEDS_NETWORK.get(test_id) or NEEDS_NETWORK[base]))
        elif base in INTERNALS:
            outcomes["internals"].append((test_id, INTERNALS[base]))
        elif base in DIFFERS:
            outcomes["differs"].append((test_id, DIFFERS[base]))
        elif failure is not None:
            outcomes["failed"].append((test_id, (failure.get("message") or "").splitlines()[0][:160]
                                       if failure.get("message") else ""))
        else:
            outcomes["passed"].append((test_id, ""))
    passed, failed = len(outcomes["passed"]), len(outcomes["failed"])
    print("\n== LanceDB's own tests against vectorlane (imports and connect changed) ==")
    ran = passed + failed + len(outcomes["network"]) + len(outcomes["internals"]) + len(outcomes["differs"])
    print(f"ran {ran}; skipped by LanceDB's own conditions: {len(outcomes['skipped'])}")
    for kind, title in (("network", "need a network service or a download"),
                        ("internals", "test LanceDB's in-process internals"),
                        ("differs", "differ by design")):
        print(f"{title} (counted apart): {len(outcomes[kind])}")
        for test_id, why in outcomes[kind]:
            print(f"   {test_id}: {why}")
    print(f"applicable: {passed + failed}; pass: {passed} ({100.0 * passed / max(1, passed + failed):.1f} %)")
    named = [(t, ok) for ok, kind in ((True, "passed"), (False, "failed")) for t, _ in outcomes[kind] if _named(t)]
    good = sum(ok for _, ok in named)
    print(f"of them, the tests issue 20 names (whole files; test_table.py's embedding, bad-vector, merge/update/"
          f"delete, version and search tests; test_query.py): {good} of {len(named)} "
          f"({100.0 * good / max(1, len(named)):.1f} %)")
    print("failures:")
    for test_id, why in outcomes["failed"]:
        print(f"   {test_id}: {why}")


def _named(test_id: str) -> bool:
    path, _, name = test_id.partition("::")
    return path != "test_table.py" or bool(ISSUE_TABLE.search(name))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lancedb-src", type=Path, required=True, help="a LanceDB checkout or bare git directory")
    parser.add_argument("--keep", type=Path, help="write the changed tests here and keep them")
    parser.add_argument("--under-lancedb", action="store_true",
                        help="run the same tests unchanged under the installed lancedb (the baseline)")
    parser.add_argument("--against", type=Path, help="a baseline run's junit.xml: report what passes there only")
    parser.add_argument("pytest_args", nargs="*", help="passed to pytest (e.g. -k merge)")
    args = parser.parse_args()
    work = (args.keep or Path(tempfile.mkdtemp(prefix="lancedb-parity-"))).resolve()
    if args.keep and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    chosen = prepare(Source(args.lancedb_src), work, args.under_lancedb)
    junit = work / "junit.xml"
    run(work, chosen, junit, args.pytest_args)
    report(junit)
    if args.against:
        compare(junit, args.against)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
