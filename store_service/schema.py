"""Table schemas and the embedding-function metadata they carry, in LanceDB's layout.

The Arrow schema's metadata key `embedding_functions` holds a JSON list, one entry per vector column:
`{"name": ..., "model": {...}, "source_column": ..., "vector_column": ...}`, plus `"source_type": "text"` or
`"image"` when the table says what its source holds instead of leaving it inferred. Secrets never go in: a
setting that looks like a secret (api_key, token, password, secret...) or that the embed service reports as
secret must be a `$var:name` reference (LanceDB's `$var:name:default` is refused: the default is a literal
key), and no setting may be a URL carrying credentials (`https://user:key@host`, `?api_key=...`).
"""

from __future__ import annotations


import json
import re
import threading
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from rpc_common.json_depth import too_deep
from vectorlane_contract import references
from store_service.errors import InvalidArgument

METADATA_KEY = b"embedding_functions"
TEXT, IMAGE = "text", "image"  # what a source column holds (FunctionConfig.source_type)
_SECRET_NAME = re.compile(r"(api_?key|secret|token|password|credential)", re.IGNORECASE)
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://", re.ASCII)


@dataclass(frozen=True)
class FunctionConfig:
    name: str
    model: dict[str, Any] = field(default_factory=dict)
    source_column: str = ""
    vector_column: str = ""
    source_type: str = ""  # TEXT, IMAGE, or "" to infer it from the column and the function

    def to_json(self) -> dict[str, Any]:
        entry = {"name": self.name, "model": self.model, "source_column": self.source_column,
                 "vector_column": self.vector_column}
        return {**entry, "source_type": self.source_type} if self.source_type else entry


RESERVED_COLUMNS = frozenset({"_rowid", "_rowaddr", "_distance", "_score", "_relevance_score"})
MAX_COLUMNS = 1024
MAX_NESTING = 8
MAX_NAME_LENGTH = 256


def check_table_schema(schema: pa.Schema) -> None:
    """Refuses a schema the store cannot serve end to end: reserved, repeated or unprintable column names,
    and column types outside those it reads, filters and converts (see `supported_type`)."""
    if len(schema) > MAX_COLUMNS:
        raise InvalidArgument(f"the schema has {len(schema)} columns; at most {MAX_COLUMNS}", reason="INVALID_SCHEMA")
    if len(set(schema.names)) != len(schema.names):
        raise InvalidArgument("column names repeat", reason="INVALID_SCHEMA")
    for field_ in schema:
        name = field_.name
        if name in RESERVED_COLUMNS:
            raise InvalidArgument(f"column name {name!r} is reserved (search results and row ids use it)",
                                  reason="RESERVED_COLUMN", column=name)
        if not name or len(name) > MAX_NAME_LENGTH or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
            raise InvalidArgument(f"column name {name[:MAX_NAME_LENGTH]!r} is empty, longer than "
                                  f"{MAX_NAME_LENGTH} characters or holds control characters",
                                  reason="INVALID_SCHEMA", column=name[:MAX_NAME_LENGTH])
        quoted = backquoted_name(field_)
        if quoted is not None:
            raise InvalidArgument(f"column name {quoted[:MAX_NAME_LENGTH]!r} holds a backquote, which Lance reads as "
                                  "the quote of a field path (reads of such a table never answered)",
                                  reason="INVALID_SCHEMA", column=quoted[:MAX_NAME_LENGTH])
        problem = unsupported_type(field_.type) or unsupported_encoding(field_)
        if problem is not None:
            raise InvalidArgument(f"column {name!r} is {field_.type}: {problem}", reason="UNSUPPORTED_TYPE",
                                  column=name, type=str(field_.type))


def backquoted_name(field_: pa.Field) -> str | None:
    """The name, at any depth of `field_`, that holds a backquote: found by the hostile pass, a column named
    ``a`b`` made Lance panic on a background thread at every full read, which then never answered."""
    todo = [field_]
    while todo:
        current = todo.pop()
        if "`" in current.name:
            return current.name
        kind = current.type
        if pa.types.is_struct(kind):
            todo.extend(kind.field(i) for i in range(kind.num_fields))
        elif pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
            todo.append(kind.value_field)
        elif pa.types.is_map(kind):
            todo.extend((kind.key_field, kind.item_field))
    return None


_SCALAR_CHECKS = (pa.types.is_boolean, pa.types.is_integer, pa.types.is_floating, pa.types.is_decimal,
                  pa.types.is_string, pa.types.is_large_string, pa.types.is_binary, pa.types.is_large_binary,
                  pa.types.is_fixed_size_binary, pa.types.is_date, pa.types.is_time, pa.types.is_timestamp,
                  pa.types.is_duration)


def is_json(type_: pa.DataType) -> bool:
    """Arrow's canonical JSON type (`pa.json_()`, text underneath): Lance stores it and its SQL reads it with
    `json_extract`; values come back as Lance writes them (compact)."""
    return isinstance(type_, pa.JsonType) and pa.types.is_string(type_.storage_type)


BLOB_ENCODING = b"lance-encoding:blob"


def unsupported_encoding(field_: pa.Field) -> str | None:
    """Lance stores a column marked as a blob out of line and reads it back as descriptors of a different
    type (a struct of positions), so the store could neither filter nor return it as the caller wrote it."""
    metadata = field_.metadata or {}
    if metadata.get(BLOB_ENCODING, b"").lower() in (b"true", b"1", b"yes"):
        return "blob-encoded columns (lance-encoding:blob) are not served; store the bytes as plain binary"
    return None


def unsupported_type(type_: pa.DataType, depth: int = 0) -> str | None:
    """Why the store cannot serve `type_` (None when it can): scalars it filters and converts to JSON, and
    lists, fixed-size lists, structs and maps of them, nested at most MAX_NESTING deep."""
    if depth > MAX_NESTING:
        return f"nested deeper than {MAX_NESTING} levels"
    if pa.types.is_timestamp(type_) and type_.tz is not None and not _readable_zone(type_.tz):
        return f"time zone {type_.tz[:64]!r} is not one Arrow can read (found by the hostile pass: every JSON read " \
               "of the table failed)"
    if any(check(type_) for check in _SCALAR_CHECKS) or is_json(type_):
        return None
    if pa.types.is_list(type_) or pa.types.is_large_list(type_) or pa.types.is_fixed_size_list(type_):
        if pa.types.is_fixed_size_list(type_) and not 0 < type_.list_size <= 1 << 16:
            return "fixed-size lists hold 1 to 65536 values"
        return unsupported_type(type_.value_type, depth + 1)
    if pa.types.is_struct(type_):
        names = [type_.field(i).name for i in range(type_.num_fields)]
        if len(set(names)) != len(names):
            return "a struct with two fields of one name (it cannot be read back as a row)"
        for i in range(type_.num_fields):
            problem = unsupported_type(type_.field(i).type, depth + 1)
            if problem is not None:
                return problem
        return None
    if pa.types.is_map(type_):
        return unsupported_type(type_.key_type, depth + 1) or unsupported_type(type_.item_type, depth + 1)
    if pa.types.is_dictionary(type_) and (pa.types.is_string(type_.value_type)
                                          or pa.types.is_large_string(type_.value_type)):
        return None  # dictionary-encoded strings: LanceDB's type for a pydantic str enum
    return ("this store serves booleans, numbers (decimals and float16 included), strings (dictionary-encoded "
            "too), JSON, binary, dates, times, timestamps, durations, and lists, structs and maps of them")


def _readable_zone(zone: str) -> bool:
    """Whether Arrow reads `zone` (a name of the tz database, or an offset of at most ±23:59)."""
    try:
        pa.array([0], pa.timestamp("s", tz=zone)).cast(pa.string())
        return True
    except (pa.ArrowException, ValueError):
        return False


def is_vector(field_: pa.Field) -> bool:
    t = field_.type
    return pa.types.is_fixed_size_list(t) and (pa.types.is_floating(t.value_type))


def vector_dimensions(field_: pa.Field) -> int:
    return int(field_.type.list_size)


def vector_type(dimensions: int) -> pa.DataType:
    return pa.list_(pa.field("item", pa.float32()), dimensions)


def suggests_vector(name: str) -> bool:
    """LanceDB's rule for columns of inferred schemas: a list column whose name says vector or embedding."""
    lowered = name.lower()
    return "vector" in lowered or "embedding" in lowered


def infer_vector_columns(schema: pa.Schema, rows: pa.Table) -> pa.Schema:
    """`schema` (inferred from `rows`) with each list-of-numbers column LanceDB would call a vector made a
    fixed-size float32 vector of the length most of its rows have; the rows' bad vectors (other lengths,
    NaN) are then the add's `on_bad_vectors` to handle."""
    for index, field_ in enumerate(schema):
        kind = field_.type
        if not (pa.types.is_list(kind) or pa.types.is_large_list(kind)) or not suggests_vector(field_.name):
            continue
        if not (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type)):
            continue
        lengths = pc.list_value_length(rows.column(field_.name))
        lengths = pc.filter(lengths, pc.greater(lengths, 0))
        if len(lengths) == 0:
            continue
        dims = int(pc.mode(lengths)[0]["mode"].as_py())
        schema = schema.set(index, pa.field(field_.name, vector_type(dims), nullable=field_.nullable,
                                            metadata=field_.metadata))
    return schema


MAX_FUNCTIONS_JSON_DEPTH = 32


def functions_of(schema: pa.Schema) -> list[FunctionConfig]:
    """The embedding functions a schema's metadata records (LanceDB's `embedding_functions` JSON list)."""
    raw = (schema.metadata or {}).get(METADATA_KEY)
    if not raw:
        return []
    deep = too_deep(raw, MAX_FUNCTIONS_JSON_DEPTH)
    if deep is not None:
        raise InvalidArgument(f"the schema's embedding_functions metadata is {deep}", reason="JSON_TOO_DEEP",
                              limit=MAX_FUNCTIONS_JSON_DEPTH)
    try:
        return [FunctionConfig(e["name"], dict(e.get("model") or {}), e["source_column"], e["vector_column"],
                               e.get("source_type") or "")
                for e in json.loads(raw)]
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InvalidArgument("the schema's embedding_functions metadata is not LanceDB's list of functions "
                              f"({type(exc).__name__}: {str(exc)[:120]})",
                              reason="INVALID_EMBEDDING_FUNCTION") from None


def with_functions(schema: pa.Schema, functions: Iterable[FunctionConfig],
                   secret_settings: Mapping[str, Iterable[str]] | None = None) -> pa.Schema:
    """`schema` carrying `functions` in its metadata, after checking each against the columns and secrets."""
    configs = list(functions)
    seen: set[str] = set()
    for config in configs:
        check_function(schema, config, (secret_settings or {}).get(config.name, ()))
        if config.vector_column in seen:
            raise InvalidArgument(f"vector column {config.vector_column!r} has two embedding functions",
                                  reason="INVALID_EMBEDDING_FUNCTION", column=config.vector_column)
        seen.add(config.vector_column)
    metadata = dict(schema.metadata or {})
    if configs:
        metadata[METADATA_KEY] = json.dumps([c.to_json() for c in configs]).encode()
    else:
        metadata.pop(METADATA_KEY, None)
    return schema.with_metadata(metadata)


def check_function(schema: pa.Schema, config: FunctionConfig, secret_settings: Iterable[str] = ()) -> None:
    """A function's columns and secrets. As in LanceDB, a function may be recorded that cannot compute here:
    its source column absent, or its vector column a variable-length float list (see `computes`); the
    rows then carry their own vectors."""
    if not config.name:
        raise InvalidArgument("an embedding function has no name", reason="INVALID_EMBEDDING_FUNCTION")
    if schema.get_field_index(config.vector_column) < 0:
        raise InvalidArgument(f"embedding function {config.name!r}: vector column {config.vector_column!r} is not "
                              "in the schema", reason="UNKNOWN_COLUMN", column=config.vector_column,
                              function=config.name)
    if not is_vector(schema.field(config.vector_column)) and not is_float_list(schema.field(config.vector_column)):
        raise InvalidArgument(f"vector column {config.vector_column!r} is not a fixed-size float vector",
                              reason="INVALID_EMBEDDING_FUNCTION", column=config.vector_column)
    check_secrets(config, secret_settings)
    if schema.get_field_index(config.source_column) < 0:
        return
    source = schema.field(config.source_column)
    if not (pa.types.is_string(source.type) or pa.types.is_large_string(source.type) or is_binary(source.type)):
        raise InvalidArgument(f"source column {config.source_column!r} is {source.type}; it must hold text, image "
                              "bytes or image URIs", reason="INVALID_EMBEDDING_FUNCTION", column=config.source_column)
    if config.source_type not in ("", TEXT, IMAGE):
        raise InvalidArgument(f"source type {config.source_type!r} is not text or image",
                              reason="INVALID_EMBEDDING_FUNCTION", column=config.source_column)
    if config.source_type == TEXT and is_binary(source.type):
        raise InvalidArgument(f"source column {config.source_column!r} holds bytes; it cannot be embedded as text",
                              reason="INVALID_EMBEDDING_FUNCTION", column=config.source_column)


def computes(schema: pa.Schema, config: FunctionConfig) -> bool:
    """Whether the store can compute `config`'s vectors: its source column exists and its vector column has
    a fixed length."""
    vector = schema.get_field_index(config.vector_column)
    return schema.get_field_index(config.source_column) >= 0 and vector >= 0 and is_vector(schema.field(vector))


def is_float_list(field_: pa.Field) -> bool:
    t = field_.type
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_floating(t.value_type)


def is_binary(type_: pa.DataType) -> bool:
    return pa.types.is_binary(type_) or pa.types.is_large_binary(type_)


def source_kind(config: FunctionConfig, column_type: pa.DataType, modalities: Iterable[str]) -> str:
    """What `config`'s function embeds its source values as (TEXT or IMAGE): the recorded source type, else
    images for bytes or for a function that embeds images (LanceDB's open-clip), else text. A kind the
    function cannot embed is refused."""
    modalities = frozenset(modalities)
    kind = config.source_type or (IMAGE if is_binary(column_type) or IMAGE in modalities else TEXT)
    if kind == TEXT and is_binary(column_type):
        raise InvalidArgument(f"function {config.name!r} embeds text; source column {config.source_column!r} "
                              "holds bytes", reason="INVALID_EMBEDDING_FUNCTION", column=config.source_column,
                              function=config.name)
    if kind not in modalities:
        raise InvalidArgument(f"function {config.name!r} cannot embed {kind} (it embeds "
                              f"{', '.join(sorted(modalities)) or 'nothing'}); source column "
                              f"{config.source_column!r}", reason="INVALID_EMBEDDING_FUNCTION",
                              column=config.source_column, function=config.name)
    return kind


def check_secrets(config: FunctionConfig, secret_settings: Iterable[str] = ()) -> None:
    """Refuses a secret setting (named so by the embed service, or looking like a key) given as a value or
    with a default, and any setting holding a URL with credentials in it."""
    secret = set(secret_settings)
    for key, value in config.model.items():
        looks_secret = key in secret or bool(_SECRET_NAME.search(key))
        if looks_secret and value is not None and references.secret_name(value) is None:
            raise InvalidArgument(f"embedding function {config.name!r}: setting {key!r} is a secret; store it as "
                                  "a '$var:name' reference (no default), never as a value", reason="LITERAL_SECRET",
                                  setting=key, function=config.name)
        for text in _strings(value):
            if _URL.match(text) and _has_credentials(text):
                raise InvalidArgument(f"embedding function {config.name!r}: setting {key!r} is a URL carrying "
                                      "credentials; give the key as a '$var:name' reference in its own setting",
                                      reason="LITERAL_SECRET", setting=key, function=config.name)


def _strings(value: Any) -> Iterable[str]:
    """Every string in a setting's value, nested lists and objects included."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)


def _has_credentials(url: str) -> bool:
    try:
        parts = urllib.parse.urlsplit(url)
        named = [name for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)]
        return parts.username is not None or parts.password is not None or any(
            _SECRET_NAME.search(name) or name.lower() in ("key", "sig", "auth") for name in named)
    except ValueError:
        return False


def is_multivector(field_: pa.Field) -> bool:
    """LanceDB's MultiVector: each row a list of fixed-size float vectors (ColBERT-style token vectors)."""
    t = field_.type
    return ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_fixed_size_list(t.value_type)
            and pa.types.is_floating(t.value_type.value_type))


def searchable_dims(field_: pa.Field) -> int:
    """The length of the vectors a search compares in `field_` (a vector column, or a multivector one)."""
    t = field_.type
    return int(t.value_type.list_size if is_multivector(field_) else t.list_size)


def vector_columns(schema: pa.Schema) -> list[str]:
    """The columns a vector search can search: vectors, and lists of vectors (multivectors), top-level or
    inside structs, where they are named by path (`image.embedding`, as LanceDB names them)."""
    found = _VECTOR_COLUMNS.get(id(schema))
    if found is None or found[0] is not schema:
        found = (schema, _vector_columns(schema))
        with _CACHE_LOCK:
            if len(_VECTOR_COLUMNS) >= 256:
                _VECTOR_COLUMNS.clear()
            _VECTOR_COLUMNS[id(schema)] = found
    return list(found[1])


# asked on every search of the few schema objects being served: by identity (hashing a schema costs more
# than walking it); the entry keeps its schema alive, so an id is never another schema's
_VECTOR_COLUMNS: dict[int, tuple[pa.Schema, tuple[str, ...]]] = {}
_CACHE_LOCK = threading.Lock()


def _vector_columns(schema: pa.Schema) -> tuple[str, ...]:
    found: list[str] = []

    def visit(field_: pa.Field, path: str, depth: int) -> None:
        if is_vector(field_) or is_multivector(field_):
            found.append(path)
        elif pa.types.is_struct(field_.type) and depth < MAX_NESTING:
            for i in range(field_.type.num_fields):
                child = field_.type.field(i)
                visit(child, f"{path}.{child.name}", depth + 1)

    for field_ in schema:
        visit(field_, field_.name, 0)
    return tuple(found)


def field_at(schema: pa.Schema, path: str) -> pa.Field:
    """The field a column name or a struct path (`image.embedding`) names; KeyError when none."""
    index = schema.get_field_index(path)
    if index >= 0:
        return schema.field(index)
    head, _, rest = path.partition(".")
    field_ = schema.field(head)
    for name in rest.split(".") if rest else []:
        if not pa.types.is_struct(field_.type):
            raise KeyError(path)
        field_ = field_.type.field(name)
    return field_


def pick_vector_column(schema: pa.Schema, requested: str = "", dims: int | None = None) -> str:
    """The column a search searches: the one named, the table's only vector column, or (LanceDB's rule) the
    only one whose vectors have the query's `dims`."""
    columns = vector_columns(schema)
    if not requested and dims is not None and len(columns) > 1:
        fitting = [c for c in columns if searchable_dims(field_at(schema, c)) == dims]
        if len(fitting) == 1:
            return fitting[0]
    if requested:
        if requested not in columns:
            raise InvalidArgument(f"{requested!r} is not a vector column of this table (vector columns: "
                                  f"{', '.join(columns) or 'none'})", reason="UNKNOWN_COLUMN", column=requested)
        return requested
    if len(columns) == 1:
        return columns[0]
    if not columns:
        raise InvalidArgument("this table has no vector column", reason="NO_VECTOR_COLUMN")
    raise InvalidArgument(f"this table has several vector columns ({', '.join(columns)}); name one with "
                          "vector_column", reason="VECTOR_COLUMN_REQUIRED")
