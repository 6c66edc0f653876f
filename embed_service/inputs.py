"""Inputs to embed, and turning them into what a function takes (a `str` or a decoded PIL image).

Image URIs are read only where the operator allowed: local paths (plain or file://) under the image
roots, after resolving links and `..`; http(s) URLs only to allowed hosts, with redirects refused (a
redirect could lead anywhere), a size cap and one deadline for the whole fetch (connecting and every read:
a host that trickles a byte a second cannot hold a request past it). Decoded pixels are capped per image
and per request, so a handful of small, highly compressed files cannot make the service decode gigabytes.
Every failure names the index of the input.
"""

from __future__ import annotations

import http.client
import io
import socket
import ssl
import time
import urllib.parse
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from embed_service.errors import InvalidInput
from embed_service.functions.base import EmbeddingFunction, Item, Modality


@dataclass(frozen=True)
class TextInput:
    text: str


@dataclass(frozen=True)
class ImageBytes:
    data: bytes


@dataclass(frozen=True)
class ImageUri:
    uri: str


EmbedInput = TextInput | ImageBytes | ImageUri


@dataclass(frozen=True)
class ImagePolicy:
    """Where images may be read from, and how big they may be."""

    roots: tuple[Path, ...] = ()
    allowed_hosts: frozenset[str] = frozenset()  # "*" allows every host
    max_bytes: int = 32 * 1024 * 1024
    max_pixels: int = 64_000_000
    max_pixels_per_request: int = 64_000_000
    fetch_timeout: float = 10.0
    max_text_chars: int = 1_000_000


def modality_of(value: EmbedInput) -> Modality:
    return Modality.TEXT if isinstance(value, TextInput) else Modality.IMAGE


def prepare_inputs(inputs: Sequence[EmbedInput | None], function: EmbeddingFunction,
                   policy: ImagePolicy, positions: Sequence[int] | None = None) -> list[Item]:
    """Checks each input against the function's modalities and decodes images; errors name the index (the
    input's place in the request: `positions[i]` when only some of its inputs are given)."""
    items: list[Item] = []
    budget = _PixelBudget(policy.max_pixels_per_request)
    for at, value in enumerate(inputs):
        index = positions[at] if positions is not None else at
        if value is None:
            raise InvalidInput(f"input {index} is empty: set text, image_bytes or image_uri",
                               reason="MISSING_INPUT", index=index)
        modality = modality_of(value)
        if modality not in function.embeds():
            raise InvalidInput(f"input {index} is {modality.value}, which {function.registry_name!r} does "
                               "not embed", reason="UNSUPPORTED_MODALITY", index=index,
                               function=function.registry_name, modality=modality.value)
        if isinstance(value, TextInput):
            if len(value.text) > policy.max_text_chars:
                raise InvalidInput(f"input {index}: the text has {len(value.text)} characters; at most "
                                   f"{policy.max_text_chars}", reason="TEXT_TOO_LONG", index=index,
                                   limit=policy.max_text_chars)
            items.append(value.text)
        elif isinstance(value, ImageBytes):
            items.append(decode_image(value.data, index, policy, budget))
        else:
            items.append(decode_image(read_image_uri(value.uri, index, policy), index, policy, budget))
    return items


class _PixelBudget:
    def __init__(self, pixels: int) -> None:
        self.left = pixels

    def take(self, pixels: int, index: int) -> None:
        if pixels > self.left:
            raise InvalidInput(f"input {index}: the request's images would decode to more than the "
                               "service's limit of pixels per request; send fewer images per request",
                               reason="IMAGE_TOO_LARGE", index=index)
        self.left -= pixels


def decode_image(data: bytes, index: int, policy: ImagePolicy, budget: _PixelBudget | None = None
                 ) -> Image.Image:
    if len(data) > policy.max_bytes:
        raise InvalidInput(f"input {index}: image is {len(data)} bytes, over the {policy.max_bytes}-byte limit",
                           reason="IMAGE_TOO_LARGE", index=index)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            if image.width * image.height > policy.max_pixels:
                raise InvalidInput(f"input {index}: image is {image.width}x{image.height}, over the "
                                   f"{policy.max_pixels}-pixel limit", reason="IMAGE_TOO_LARGE", index=index)
            if budget is not None:
                budget.take(image.width * image.height, index)
            image.load()
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"input {index}: not a decodable image ({type(exc).__name__}: {exc})",
                           reason="INVALID_IMAGE", index=index) from None
    return image


def read_image_uri(uri: str, index: int, policy: ImagePolicy) -> bytes:
    if len(uri) > 8192:
        raise InvalidInput(f"input {index}: the image URI is {len(uri)} characters long; at most 8192",
                           reason="INVALID_IMAGE_URI", index=index)
    try:
        parsed = urllib.parse.urlsplit(uri)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
    except ValueError as exc:
        raise InvalidInput(f"input {index}: {_shown(uri)} is not a valid URI ({exc})", reason="INVALID_IMAGE_URI",
                           index=index) from None
    if parsed.scheme in ("http", "https"):
        return _fetch(uri, parsed, index, policy)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInput(f"input {index}: file URIs name no host", reason="INVALID_IMAGE_URI", index=index)
        return _read_local(urllib.parse.unquote(parsed.path), index, policy)
    if parsed.scheme == "" and uri:
        return _read_local(uri, index, policy)
    raise InvalidInput(f"input {index}: unsupported image URI {_shown(uri)} (use a path, file://, http:// or "
                       "https://)", reason="INVALID_IMAGE_URI", index=index)


def _shown(uri: str) -> str:
    return repr(uri if len(uri) <= 200 else uri[:200] + "…")


def _read_local(raw: str, index: int, policy: ImagePolicy) -> bytes:
    if not policy.roots:
        raise InvalidInput(f"input {index}: local image paths are not allowed on this service (no image roots "
                           "configured)", reason="IMAGE_URI_NOT_ALLOWED", index=index)
    candidate = Path(raw)
    if not candidate.is_absolute():
        candidate = policy.roots[0] / candidate
    path = candidate.resolve()
    if not any(path.is_relative_to(root.resolve()) for root in policy.roots):
        raise InvalidInput(f"input {index}: {raw!r} is outside the allowed image roots",
                           reason="IMAGE_URI_NOT_ALLOWED", index=index)
    try:
        with path.open("rb") as f:
            data = f.read(policy.max_bytes + 1)
    except OSError as exc:
        raise InvalidInput(f"input {index}: cannot read {raw!r}: {exc.strerror}", reason="INVALID_IMAGE_URI",
                           index=index) from None
    return data


def _fetch(uri: str, parsed: urllib.parse.SplitResult, index: int, policy: ImagePolicy) -> bytes:
    host = (parsed.hostname or "").lower()
    host_port = f"{host}:{parsed.port}" if parsed.port else host
    if not host or ("*" not in policy.allowed_hosts and host not in policy.allowed_hosts
                    and host_port not in policy.allowed_hosts):
        raise InvalidInput(f"input {index}: fetching images from {host_port!r} is not allowed on this service",
                           reason="IMAGE_URI_NOT_ALLOWED", index=index, host=host_port)
    deadline = time.monotonic() + policy.fetch_timeout
    try:
        return _get(parsed, deadline, policy.max_bytes + 1)
    except _FetchFailed as exc:
        raise InvalidInput(f"input {index}: fetching {_shown(uri)} failed: {exc}", reason="INVALID_IMAGE_URI",
                           index=index) from None
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise InvalidInput(f"input {index}: fetching {_shown(uri)} failed: {type(exc).__name__}: {exc}",
                           reason="INVALID_IMAGE_URI", index=index) from None


class _FetchFailed(Exception):
    pass


_TIMED_OUT = "timed out: the whole fetch must finish within the service's image fetch timeout"


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _FetchFailed(_TIMED_OUT)
    return left


def _get(parsed: urllib.parse.SplitResult, deadline: float, limit: int) -> bytes:
    """GET of `parsed` (no redirects), up to `limit` bytes, all of it before `deadline`: the socket's timeout
    is set to the time left before every read, so the total never passes the deadline."""
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    path = (parsed.path or "/") + (f"?{parsed.query}" if parsed.query else "")
    if parsed.scheme == "https":
        connection: http.client.HTTPConnection = http.client.HTTPSConnection(
            parsed.hostname or "", port, timeout=_left(deadline), context=ssl.create_default_context())
    else:
        connection = http.client.HTTPConnection(parsed.hostname or "", port, timeout=_left(deadline))
    try:
        connection.connect()
        sock = connection.sock  # kept: the connection lets go of it once the response says it will close
        sock.settimeout(_left(deadline))
        connection.request("GET", path, headers={"User-Agent": "vectorlane-embed", "Accept": "image/*"})
        sock.settimeout(_left(deadline))
        response = connection.getresponse()
        if response.status != 200:
            raise _FetchFailed(f"HTTP {response.status} {response.reason}"
                               + (" (redirects are not followed)" if 300 <= response.status < 400 else ""))
        parts, size = [], 0
        while size < limit:
            sock.settimeout(_left(deadline))
            try:
                chunk = response.read1(min(65536, limit - size))
            except socket.timeout:
                raise _FetchFailed(_TIMED_OUT) from None
            if not chunk:
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts)
    except socket.timeout:
        raise _FetchFailed(_TIMED_OUT) from None
    finally:
        connection.close()
