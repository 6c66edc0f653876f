"""Values for JSON columns (Arrow's `pa.json_()`), checked before anything is staged: Lance encodes them as it
writes a fragment, and a value it cannot parse failed the write there (it was answered UNAVAILABLE). RFC 8259
JSON only: NaN and Infinity (which Python's parser takes) are refused, and nesting deeper than MAX_DEPTH is
JSON_TOO_DEEP, found before the text is parsed (`rpc_common.json_depth`)."""

from __future__ import annotations

import json
from typing import NoReturn

import pyarrow as pa

from rpc_common.json_depth import too_deep
from store_service.errors import InvalidArgument
from store_service.schema import is_json

MAX_DEPTH = 256


def _constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def check_json_columns(rows: pa.Table, schema: pa.Schema) -> None:
    """Refuses a row whose JSON column holds text that is not JSON (INVALID_JSON, naming the row)."""
    for field_ in schema:
        if not is_json(field_.type) or field_.name not in rows.column_names:
            continue
        column = rows.column(field_.name)
        if isinstance(column.type, pa.JsonType):
            column = pa.chunked_array([c.storage for c in column.chunks], type=column.type.storage_type)
        for row, text in enumerate(column.to_pylist()):
            if text is None:
                continue
            deep = too_deep(text, MAX_DEPTH)
            if deep is not None:
                raise InvalidArgument(f"row {row}: column {field_.name!r} holds JSON {deep}", reason="JSON_TOO_DEEP",
                                      column=field_.name, row=row, limit=MAX_DEPTH)
            try:
                json.loads(text, parse_constant=_constant)
            except (ValueError, RecursionError, TypeError) as exc:
                raise InvalidArgument(f"row {row}: column {field_.name!r} holds text that is not JSON "
                                      f"({str(exc)[:120]})", reason="INVALID_JSON", column=field_.name,
                                      row=row) from None
