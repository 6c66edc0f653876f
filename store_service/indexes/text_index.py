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
import threading
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from store_service.errors import InvalidArgument, ServiceError
from store_service.schema import field_at
from store_service.storage import lance_errors
from store_service.storage.manifest import Manifest
from store_service.storage.operations import CommittedNotDurable, CreateTextIndex, DropTextIndex

if TYPE_CHECKING:
    from store_service.storage.table import Snapshot, Table
    from store_service.tables.owner import TableOwner

INDICES_DIR = "_indices"
INVERTED = "Inverted"  # Lance's index type name in list_indices
BASE_TOKENIZERS = ("simple", "whitespace", "raw", "ngram")
LANGUAGES = ("Arabic", "Danish", "Dutch", "English", "Finnish", "French", "German", "Greek", "Hungarian", "Italian",
             "Norwegian", "Portuguese", "Romanian", "Russian", "Spanish", "Swedish", "Tamil", "Turkish")
MAX_TOKEN_LENGTH = 1024
MAX_NGRAM = 64
MAX_STOP_WORDS = 1024
MAX_STOP_WORD_BYTES = 64


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

        if self.base_tokenizer not in BASE_TOKENIZERS:
            raise refuse(f"base_tokenizer must be one of {', '.join(BASE_TOKENIZERS)}; got "
                         f"{self.base_tokenizer[:64]!r}", "base_tokenizer")
        if self.language not in LANGUAGES:
            raise refuse(f"LanceDB does not support the requested language: {self.language[:64]!r}; supported "
                         f"languages: {', '.join(LANGUAGES)}", "language")
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
    """An FTS index's tokenizer settings, as Lance reports them (empty when it cannot)."""
    try:
        found = snapshot.dataset.stats.index_stats(name)
        return dict(found["indices"][0]["params"])
    except Exception:  # noqa: BLE001 - a listing never fails for want of an index's statistics
        return {}


def files_of(index: Any) -> list[str]:
    """A built index's files, relative to the dataset."""
    return [f"{INDICES_DIR}/{index.uuid}/{f.path}" for f in index.files or ()]


def check_column(schema: pa.Schema, column: str) -> None:
    """A string column (or a list of strings), at the top level or in a struct (`nested.text`)."""
    try:
        kind = field_at(schema, column).type
    except KeyError:
        raise InvalidArgument(f"column {column!r} is not in the table", reason="UNKNOWN_COLUMN",
                              column=column) from None
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind) or
            (pa.types.is_list(kind) or pa.types.is_large_list(kind)) and
            (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type))):
        raise InvalidArgument(f"FTS index cannot be created on column {column!r}: it holds {kind}, and an FTS "
                              "index needs a string column (or a list of strings)", reason="INVALID_COLUMN_TYPE",
                              column=column)


def prepare_create(table: Table, snapshot: Snapshot, column: str, params: TextIndexParams, *, name: str = "",
                   replace: bool = False, operation: str = "create_fts_index") -> CreateTextIndex:
    """The index built over `snapshot`'s fragments, its files durable and hashed: the operation that lists it."""
    check_column(snapshot.schema, column)
    params.check()
    dataset = snapshot.dataset
    fragment_ids = [f.fragment_id for f in dataset.get_fragments()]
    name = name or f"{column}_idx"
    segment_uuid = str(uuid.uuid4())
    written: list[str] = [f"{INDICES_DIR}/{segment_uuid}"]
    try:
        with _lance_refusals(table):
            segment = dataset.create_index_uncommitted(column, "INVERTED", name=name, fragment_ids=fragment_ids,
                                                       replace=True, index_uuid=segment_uuid,
                                                       **params.lance_arguments())
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
    return CreateTextIndex(index, column, replace, tuple(files), checksums, snapshot.manifest, name=operation)


@contextlib.contextmanager
def _lance_refusals(table: Table) -> Iterator[None]:
    """Lance refusing or failing a build (a Rust panic included) as INVALID_ARGUMENT FTS_BUILD_FAILED."""
    try:
        yield
    except (ServiceError, OSError):
        raise
    except BaseException as exc:  # noqa: BLE001 - a Rust panic arrives as pyo3's PanicException
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        text = lance_errors.without_location(table.shown(exc))
        raise InvalidArgument(f"Lance cannot build this FTS index ({text[:300]})", reason="FTS_BUILD_FAILED") from None


def create(owner: TableOwner, column: str, params: TextIndexParams, *, name: str = "", replace: bool = False,
           operation: str = "create_fts_index") -> tuple[TextIndexEntry, Manifest]:
    """Builds an FTS index on the latest version and lists it in a new version (replacing the column's FTS
    index, or the index of that name, when `replace`)."""
    snapshot = owner.latest_view().snapshot
    prepared = prepare_create(owner.table, snapshot, column, params, name=name, replace=replace,
                              operation=operation)
    try:
        committed = owner.commit(prepared)
    except CommittedNotDurable:
        raise
    except BaseException:  # refused (INDEX_EXISTS, WRITE_CONFLICT) or failed: the files are no one's
        owner.table.remove_folders([f"{INDICES_DIR}/{prepared.index.uuid}"])
        raise
    made = next(e for e in entries(owner.table.snapshot(committed.version)) if e.uuid == str(prepared.index.uuid))
    return made, committed


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
        params = params_from_lance(parameters(snapshot, entry.name))
        made, _ = create(owner, entry.column, params, name=entry.name, replace=True, operation="optimize:fts_index")
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
        max_token_length=int(found["max_token_length"]) if found.get("max_token_length") else None,
        lower_case=bool(found.get("lower_case", defaults.lower_case)),
        stem=bool(found.get("stem", defaults.stem)),
        remove_stop_words=bool(found.get("remove_stop_words", defaults.remove_stop_words)),
        ascii_folding=bool(found.get("ascii_folding", defaults.ascii_folding)),
        ngram_min_length=int(found.get("min_ngram_length") or defaults.ngram_min_length),
        ngram_max_length=int(found.get("max_ngram_length") or defaults.ngram_max_length),
        prefix_only=bool(found.get("prefix_only", defaults.prefix_only)),
        block_size=int(found.get("block_size") or defaults.block_size),
        custom_stop_words=tuple(stop_words) if stop_words is not None else None)
