"""Small helpers the tests share: building requests and reading ErrorInfo off an RpcError."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from google.protobuf import json_format, struct_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image

from vectorlane.embed.v1 import embed_service_pb2 as pb

GRPCURL = shutil.which("grpcurl", path=str(Path(sys.executable).parent)) or shutil.which("grpcurl")


def grpcurl(target: str, *args: str, data: dict | None = None, flags: tuple[str, ...] = ()
            ) -> subprocess.CompletedProcess:
    """The real grpcurl binary, plaintext, with `data` as the JSON request and extra `flags` (-H ...)."""
    command = [GRPCURL or "grpcurl", "-plaintext", *flags]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run([*command, target, *args], capture_output=True, text=True, timeout=60)


def spec(function: str, settings: dict[str, Any] | None = None, **more: Any) -> pb.FunctionSpec:
    struct = struct_pb2.Struct()
    struct.update({**(settings or {}), **more})
    return pb.FunctionSpec(name=function, settings=struct)


def texts(*values: str) -> list[pb.EmbedInput]:
    return [pb.EmbedInput(text=v) for v in values]


def vectors(response: pb.EmbedResponse) -> np.ndarray:
    return np.asarray([e.values for e in response.embeddings], dtype=np.float32)


def error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(error)
    assert status is not None, f"no rich status on {error}"
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    raise AssertionError(f"no ErrorInfo in {json_format.MessageToDict(status)}")


def png(color: tuple[int, int, int], size: int = 48, pattern: bool = False) -> bytes:
    image = Image.new("RGB", (size, size), color)
    if pattern:
        for x in range(0, size, 4):
            for y in range(size):
                image.putpixel((x, y), (255 - color[0], 255 - color[1], 255 - color[2]))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
