"""google.protobuf.Struct as plain Python values, for both services' conversion modules.

Unlike `json_format.MessageToDict`, which raises on them, NaN and infinite numbers come through as floats,
so the caller judges them (a bad vector, an invalid setting) instead of failing on the conversion.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2


def struct_to_python(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _python(value) for key, value in struct.fields.items()}


def _python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_python(value.struct_value)
    if kind == "list_value":
        return [_python(v) for v in value.list_value.values]
    return None
