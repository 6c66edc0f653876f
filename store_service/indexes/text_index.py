"""A table's full-text (FTS) indexes: Lance's inverted index (BM25), which LanceDB reads and writes too.

Lance keeps them: their files under `<table>.lance/_indices/<uuid>/`, their list in the manifest's index
section (not vectorlane's catalog of FAISS indexes), so a table LanceDB indexed is searched here and the
reverse. vectorlane builds one without committing it (Lance's `create_index_uncommitted` over the version's
fragments, its segment merged into the final files), makes the files durable and logs their checksums, then
lists it with one typed commit (`operations.CreateTextIndex`) in place of the one it replaces. Dropping is a
commit too (`DropTextIndex`).

Rows added after a build are searched flat by Lance beside the index until `catch_up` (optimize) builds it
again over every fragment; a compaction's new fragments are such rows as well (Lance maps no index through
vectorlane's compaction commit).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import lance
import pyarrow as pa

from store_service.errors import AlreadyExists, FailedPrecondition, InvalidArgument, ServiceError
from store_service.schema import field_at
from store_service.storage import lance_errors
from store_service.storage.manifest import Manifest
from store_service.storage.operations import CommittedNotDurable, CreateTextIndex, DropTextIndex, Moved

if TYPE_CHECKING:
    from store_service.storage.table import Snapshot, Table
    from store_service.tables.owner import TableOwner

log = logging.getLogger(__name__)

INDICES_DIR = "_indices"
INVERTED = "Inverted"  # Lance's index type name in list_indices
BASE_TOKENIZERS = ("simple", "whitespace", "raw", "ngram", "icu", "icu/split")
# Tokenizers with a language model (Jieba for Chinese, Lindera's dictionaries for Japanese and Korean), read by
# Lance from `$LANCE_LANGUAGE_MODEL_HOME/<kind>/<model>`: the operator's folder, so a model is a plain name.
MODEL_TOKENIZER = re.compile(r"(jieba|lindera)/([A-Za-z0-9][A-Za-z0-9_-]{0,63})")
LANGUAGES = ("Arabic", "Danish", "Dutch", "English", "Finnish", "French", "German", "Greek", "Hungarian", "Italian",
             "Norwegian", "Portuguese", "Romanian", "Russian", "Spanish", "Swedish", "Tamil", "Turkish")
MAX_TOKEN_LENGTH = 1024
MAX_NGRAM = 16  # grams per character grow with max - min + 1: the build's memory with them
MAX_NAME_CHARS = 256
MAX_STOP_WORDS = 1024
MAX_STOP_WORD_BYTES = 64
MAX_BUILD_MEMORY_MIB = 16384  # Lance's default is 2 GiB per worker
MAX_BUILD_WORKERS = 64
MAX_TOKENIZE_BYTES = 64 * 1024
MAX_TOKENS = 65_536  # what one Tokenize answers; an ngram tokenizer makes up to (max - min + 1) per character


@dataclass(frozen=True)
class TextIndexParams:
    """LanceDB's `create_fts_index` tokenizer settings, with its defaults."""

    with_position: bool = False
    base_tokenizer: str = "simple"
    language: str = "English"
    max_token_length: int | None = 40  # None: no limit
    lower_case: bool = True
    stem: bool = True
    remove_stop_words: bool = True
    ascii_folding: bool = True
    ngram_min_length: int = 3
    ngram_max_length: int = 3
    prefix_only: bool = False
    custom_stop_words: tuple[str, ...] | None = None
    block_size: int = 128  # documents per posting block; 256 is Lance's experimental FTS v3 format

    def check(self) -> "TextIndexParams":
        def refuse(message: str, field: str) -> InvalidArgument:
            return InvalidArgument(message, reason="INVALID_FTS_PARAMS", field=field)

        if self.base_tokenizer not in BASE_TOKENIZERS and not MODEL_TOKENIZER.fullmatch(self.base_tokenizer):
            raise refuse(f"base_tokenizer must be one of {', '.join(BASE_TOKENIZERS)}, or jieba/<model> or "
                         f"lindera/<model> (a model name of letters, digits, '_' and '-'); got "
                         f"{self.base_tokenizer[:64]!r}", "base_tokenizer")
        if self.language not in LANGUAGES:
            raise refuse(f"LanceDB does not support the requested language: {self.language[:64]!r}\n"
                         f"Supported languages: {', '.join(LANGUAGES)}", "language")
        if self.block_size not in (128, 256):
            raise refuse(f"block_size must be 128 or 256; got {self.block_size}", "block_size")
        if self.max_token_length is not None and not 1 <= self.max_token_length <= MAX_TOKEN_LENGTH:
            raise refuse(f"max_token_length must be 1 to {MAX_TOKEN_LENGTH}; got {self.max_token_length}",
                         "max_token_length")
        if not 1 <= self.ngram_min_length <= self.ngram_max_length <= MAX_NGRAM:
            raise refuse(f"ngram lengths must satisfy 1 <= min <= max <= {MAX_NGRAM}; got "
                         f"{self.ngram_min_length} and {self.ngram_max_length}", "ngram_min_length")
        words = self.custom_stop_words or ()
        if len(words) > MAX_STOP_WORDS or any(len(w.encode("utf-8", "surrogatepass")) > MAX_STOP_WORD_BYTES
                                              for w in words):
            raise refuse(f"custom_stop_words holds at most {MAX_STOP_WORDS} words of at most "
                         f"{MAX_STOP_WORD_BYTES} bytes", "custom_stop_words")
        return self

    def lance_arguments(self) -> dict[str, Any]:
        found = asdict(self)
        found["min_ngram_length"] = found.pop("ngram_min_length")
        found["max_ngram_length"] = found.pop("ngram_max_length")
        if self.custom_stop_words is None:
            found.pop("custom_stop_words")
        else:
            found["custom_stop_words"] = list(self.custom_stop_words)
        return found


@dataclass(frozen=True)
class BuildResources:
    """What one build may use (LanceDB's `FTS(memory_limit=, num_workers=)`; not kept with the index). None and
    0 workers mean Lance's defaults (2 GiB per worker; a worker per core)."""

    memory_limit_mib: int | None = None
    num_workers: int = 0

    def check(self) -> "BuildResources":
        if self.memory_limit_mib is not None and not 0 <= self.memory_limit_mib <= MAX_BUILD_MEMORY_MIB:
            raise InvalidArgument(f"memory_limit must be 0 to {MAX_BUILD_MEMORY_MIB} MiB; got {self.memory_limit_mib}",
                                  reason="INVALID_FTS_PARAMS", field="memory_limit")
        if not 0 <= self.num_workers <= MAX_BUILD_WORKERS:
            raise InvalidArgument(f"num_workers must be 0 to {MAX_BUILD_WORKERS}; got {self.num_workers}",
                                  reason="INVALID_FTS_PARAMS", field="num_workers")
        return self

    def lance_arguments(self) -> dict[str, int]:
        found: dict[str, int] = {}
        if self.memory_limit_mib is not None:
            found["memory_limit"] = self.memory_limit_mib
        if self.num_workers:
            found["num_workers"] = self.num_workers
        return found


@dataclass(frozen=True)
class TextIndexEntry:
    """An FTS index a version lists."""

    name: str
    column: str
    uuid: str
    version: int  # the table version it was built on
    fragments: frozenset[int]  # the fragments it covers


def entries(snapshot: Snapshot) -> list[TextIndexEntry]:
    """The version's FTS indexes (read once per manifest object: every full-text search asks)."""
    key = id(snapshot.manifest)
    found = _ENTRIES.get(key)
    if found is None or found[0] is not snapshot.manifest:
        listed = []
        for index in snapshot.dataset.list_indices():
            if index.get("type") != INVERTED or len(index.get("fields", ())) != 1:
                continue
            listed.append(TextIndexEntry(index["name"], index["fields"][0], str(index["uuid"]),
                                         int(index.get("version") or 0),
                                         frozenset(int(f) for f in index.get("fragment_ids") or ())))
        found = (snapshot.manifest, tuple(listed))
        with _ENTRIES_LOCK:
            if len(_ENTRIES) >= 256:
                _ENTRIES.clear()
            _ENTRIES[key] = found
    return list(found[1])


_ENTRIES: dict[int, tuple[Manifest, tuple[TextIndexEntry, ...]]] = {}
_ENTRIES_LOCK = threading.Lock()


def parameters(snapshot: Snapshot, name: str) -> dict[str, Any]:
    """An FTS index's tokenizer settings, as Lance reports them (LookupError when it cannot)."""
    try:
        found = snapshot.dataset.stats.index_stats(name)
        return dict(found["indices"][0]["params"])
    except Exception as exc:  # noqa: BLE001 - Lance's own errors, of many kinds
        raise LookupError(f"Lance reports no settings for index {name!r}") from exc


def reported_parameters(snapshot: Snapshot, name: str) -> dict[str, Any]:
    """`parameters`, or none for a listing (which never fails for want of an index's statistics)."""
    try:
        return parameters(snapshot, name)
    except LookupError:
        return {}


def format_versions(snapshot: Snapshot) -> dict[str, int]:
    """Each FTS index's on-disk format version as Lance records it (LanceDB's `index_version`: 2 for 128-document
    posting blocks, 3 for 256), by index uuid; none Lance cannot describe."""
    found: dict[str, int] = {}
    try:
        for described in snapshot.dataset.describe_indices():
            for segment in described.segments or ():
                if segment.index_version is not None:
                    found[str(segment.uuid)] = int(segment.index_version)
    except Exception as exc:  # noqa: BLE001 - a listing never fails for want of Lance's description
        log.debug("index format versions not described: %s", exc)
    return found


def files_of(index: Any) -> list[str]:
    """A built index's files, relative to the dataset."""
    return [f"{INDICES_DIR}/{index.uuid}/{f.path}" for f in index.files or ()]


def check_column(schema: pa.Schema, column: str) -> None:
    """A string column (or a list of strings), at the top level or in a struct (`nested.text`)."""
    try:
        kind = field_at(schema, column).type
    except KeyError:
        raise InvalidArgument(f"FTS index cannot be created: Field path `{column[:256]}` not found in the table",
                              reason="UNKNOWN_COLUMN", column=column) from None
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or
            (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and
            (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type))):
        raise InvalidArgument(f"FTS index cannot be created on column {column!r}: it holds {kind}, and an FTS "
                              "index needs a string column (or a list of strings)", reason="INVALID_COLUMN_TYPE",
                              column=column)


def check_name(name: str) -> None:
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidArgument(f"an index name has at most {MAX_NAME_CHARS} printable characters",
                              reason="INVALID_INDEX_NAME", limit=MAX_NAME_CHARS)


def check_free(snapshot: Snapshot, column: str, name: str, replace: bool) -> None:
    """INDEX_EXISTS before any build when the name or column is taken (and not to be replaced); the commit
    checks again against the version it commits on."""
    for entry in entries(snapshot):
        if (entry.name == name or entry.column == column) and not replace:
            raise AlreadyExists(f"FTS index {entry.name!r} already exists on column {entry.column!r}; pass "
                                "replace=True to rebuild it", reason="INDEX_EXISTS", index=entry.name)
    if any(e["name"] == name for e in snapshot.manifest.indexes):
        raise AlreadyExists(f"a vector index named {name!r} already exists", reason="INDEX_EXISTS", index=name)


def prepare_create(table: Table, snapshot: Snapshot, column: str, params: TextIndexParams, *, name: str = "",
                   replace: bool = False, operation: str = "create_fts_index", rebuilds: str | None = None,
                   resources: BuildResources = BuildResources()) -> CreateTextIndex:
    """The index built over `snapshot`'s fragments, its files durable and hashed: the operation that lists it."""
    check_column(snapshot.schema, column)
    params.check()
    resources.check()
    name = name or f"{column}_idx"
    check_name(name)
    check_free(snapshot, column, name, replace)
    dataset = snapshot.dataset
    fragment_ids = [f.fragment_id for f in dataset.get_fragments()]
    segment_uuid = str(uuid.uuid4())
    written: list[str] = [f"{INDICES_DIR}/{segment_uuid}"]
    try:
        with _lance_refusals(table, params):
            segment = dataset.create_index_uncommitted(column, "INVERTED", name=name, fragment_ids=fragment_ids,
                                                       replace=True, index_uuid=segment_uuid,
                                                       **params.lance_arguments(), **resources.lance_arguments())
            index = dataset.merge_existing_index_segments([segment])
        folder = f"{INDICES_DIR}/{index.uuid}"
        written.append(folder)
        files = files_of(index)
        checksums = table.make_durable(files)
        table.files.sync([folder, INDICES_DIR])  # the new folder's entry, and the folder of indexes
    except BaseException:
        table.remove_folders(written)
        raise
    table.remove_folders([p for p in written if p != folder])  # the segment, merged into the index's files
    return CreateTextIndex(index, column, replace, tuple(files), checksums, snapshot.manifest, name=operation,
                           rebuilds=rebuilds)


@contextlib.contextmanager
def _lance_refusals(table: Table, params: TextIndexParams) -> Iterator[None]:
    """Lance refusing or failing a build (a Rust panic included) as INVALID_ARGUMENT FTS_BUILD_FAILED; a
    language model the store lacks as FAILED_PRECONDITION LANGUAGE_MODEL_MISSING (without its path)."""
    try:
        yield
    except (ServiceError, OSError):
        raise
    except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        if "Invalid directory path" in str(exc) and MODEL_TOKENIZER.fullmatch(params.base_tokenizer):
            raise missing_model(params.base_tokenizer) from None
        text = lance_errors.without_location(table.shown(exc))
        raise InvalidArgument(f"Lance cannot build this FTS index ({text[:300]})", reason="FTS_BUILD_FAILED") from None


def missing_model(tokenizer: str) -> FailedPrecondition:
    kind = tokenizer.split("/")[0]
    return FailedPrecondition(
        f"Invalid directory path: the store has no language model {tokenizer!r}. The operator puts it under the "
        f"store's LANCE_LANGUAGE_MODEL_HOME folder ({kind}/<model>; `python -m lance.download {kind}` fetches "
        "Lance's default)", reason="LANGUAGE_MODEL_MISSING", tokenizer=tokenizer)


def create(owner: TableOwner, column: str, params: TextIndexParams, *, name: str = "", replace: bool = False,
           operation: str = "create_fts_index", rebuilds: str | None = None,
           resources: BuildResources = BuildResources()) -> tuple[TextIndexEntry, Manifest]:
    """Builds an FTS index on the latest version and lists it in a new version (replacing the column's FTS
    index, or the index of that name, when `replace`)."""
    snapshot = owner.latest_view().snapshot
    prepared = prepare_create(owner.table, snapshot, column, params, name=name, replace=replace,
                              operation=operation, rebuilds=rebuilds, resources=resources)
    try:
        committed = owner.commit(prepared)
    except CommittedNotDurable:
        raise
    except BaseException:  # refused (INDEX_EXISTS, WRITE_CONFLICT) or failed: the files are no one's
        owner.table.remove_folders([f"{INDICES_DIR}/{prepared.index.uuid}"])
        raise
    made = next(e for e in entries(owner.table.snapshot(committed.version)) if e.uuid == str(prepared.index.uuid))
    return made, committed


def tokenize(params: TextIndexParams, text: str) -> list[tuple[str, int]]:
    """The tokens (text, position) an index with these settings keeps of `text`: Lance's own tokenizer. The
    text is bounded so that the tokens are too: an ngram tokenizer's text by MAX_TOKENS / grams per character."""
    params.check()
    most = MAX_TOKENIZE_BYTES
    if params.base_tokenizer == "ngram":
        most = min(most, MAX_TOKENS // (params.ngram_max_length - params.ngram_min_length + 1))
    if len(text.encode("utf-8", "surrogatepass")) > most:
        raise InvalidArgument(f"a text to tokenize with these settings has at most {most} bytes",
                              reason="TEXT_TOO_LONG", limit=most)
    arguments = params.lance_arguments()
    for build_only in ("with_position", "block_size"):
        arguments.pop(build_only)
    try:
        tokens = lance.tokenize(text, **arguments)
    except BaseException as exc:  # noqa: BLE001 - Lance's refusals, of several kinds; a Rust panic too
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        if "Invalid directory path" in str(exc) and MODEL_TOKENIZER.fullmatch(params.base_tokenizer):
            raise missing_model(params.base_tokenizer) from None
        text = lance_errors.without_location(str(exc))
        raise InvalidArgument(f"Lance cannot tokenize with these settings ({text[:300]})",
                              reason="INVALID_FTS_PARAMS") from None
    if len(tokens) > MAX_TOKENS:
        raise InvalidArgument(f"the text makes {len(tokens)} tokens; one Tokenize answers at most {MAX_TOKENS}",
                              reason="TOO_MANY_TOKENS", limit=MAX_TOKENS)
    return [(str(t.text), int(t.position)) for t in tokens]


def tokenizer_of(snapshot: Snapshot, *, column: str = "", name: str = "") -> TextIndexParams:
    """The settings of the version's FTS index on `column`, or named `name` (exactly one given)."""
    if bool(column) == bool(name):
        raise InvalidArgument("Specify exactly one of column or index_name", reason="INVALID_ARGUMENT")
    found = next((e for e in entries(snapshot) if (e.column == column if column else e.name == name)), None)
    if found is None:
        what = f"column {column!r}" if column else f"index {name!r}"
        raise FailedPrecondition(f"{what} does not have a full text search index", reason="NO_FTS_INDEX",
                                 **({"column": column} if column else {"index": name}))
    try:
        return params_from_lance(parameters(snapshot, found.name))
    except LookupError:
        raise FailedPrecondition(f"Lance reports no tokenizer settings for FTS index {found.name!r}",
                                 reason="FTS_SETTINGS_UNKNOWN", index=found.name) from None


def drop(owner: TableOwner, name: str) -> Manifest:
    return owner.commit(DropTextIndex(name))


def catch_up(owner: TableOwner) -> list[TextIndexEntry]:
    """Each FTS index that does not cover every fragment of the latest version (rows added, a compaction)
    built again over all of them, with its own settings; the indexes rebuilt."""
    snapshot = owner.latest_view().snapshot
    present = {f.fragment_id for f in snapshot.dataset.get_fragments()}
    rebuilt = []
    for entry in entries(snapshot):
        if entry.fragments >= present:
            continue
        try:
            params = params_from_lance(parameters(snapshot, entry.name)).check()
        except (LookupError, ValueError, TypeError, InvalidArgument) as exc:  # settings it cannot rebuild with
            log.warning("table %s: FTS index %s left as it is (its settings cannot be rebuilt here: %s); rows it "
                        "lacks are still searched", owner.name, entry.name, exc)
            continue
        try:
            made, _ = create(owner, entry.column, params, name=entry.name, replace=True,
                             operation="optimize:fts_index", rebuilds=entry.uuid)
        except Moved:  # dropped or replaced meanwhile: the caller's change stands
            continue
        rebuilt.append(made)
        snapshot = owner.latest_view().snapshot
    return rebuilt


def params_from_lance(found: dict[str, Any]) -> TextIndexParams:
    """The settings an index was built with, from Lance's statistics (defaults for what they lack)."""
    defaults = TextIndexParams()
    stop_words = found.get("custom_stop_words")
    return TextIndexParams(
        with_position=bool(found.get("with_position", defaults.with_position)),
        base_tokenizer=str(found.get("base_tokenizer", defaults.base_tokenizer)),
        language=str(found.get("language", defaults.language)),
        max_token_length=(int(found["max_token_length"]) if found["max_token_length"] is not None else None)
        if "max_token_length" in found else defaults.max_token_length,
        lower_case=bool(found.get("lower_case", defaults.lower_case)),
        stem=bool(found.get("stem", defaults.stem)),
        remove_stop_words=bool(found.get("remove_stop_words", defaults.remove_stop_words)),
        ascii_folding=bool(found.get("ascii_folding", defaults.ascii_folding)),
        ngram_min_length=int(found.get("min_ngram_length") or defaults.ngram_min_length),
        ngram_max_length=int(found.get("max_ngram_length") or defaults.ngram_max_length),
        prefix_only=bool(found.get("prefix_only", defaults.prefix_only)),
        block_size=int(found.get("block_size") or defaults.block_size),
        custom_stop_words=tuple(stop_words) if stop_words is not None else None)
