"""Inputs to embed, and turning them into what a function takes (a `str` or a decoded PIL image).

Image URIs are read only where the operator allowed: local paths (plain or file://) under the image
roots, after resolving links and `..`; http(s) URLs only to allowed hosts, with redirects refused (a
redirect could lead anywhere) and a size cap. Every failure names the index of the input.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.parse
import urllib.request
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
    fetch_timeout: float = 10.0


def modality_of(value: EmbedInput) -> Modality:
    return Modality.TEXT if isinstance(value, TextInput) else Modality.IMAGE


def prepare_inputs(inputs: Sequence[EmbedInput | None], function: EmbeddingFunction,
                   policy: ImagePolicy, positions: Sequence[int] | None = None) -> list[Item]:
    """Checks each input against the function's modalities and decodes images; errors name the index (the
    input's place in the request: `positions[i]` when only some of its inputs are given)."""
    items: list[Item] = []
    for at, value in enumerate(inputs):
        index = positions[at] if positions is not None else at
        if value is None:
            raise InvalidInput(f"input {index} is empty: set text, image_bytes or image_uri",
                               reason="MISSING_INPUT", index=index)
        modality = modality_of(value)
        if modality not in function.modalities:
            raise InvalidInput(f"input {index} is {modality.value}, which {function.registry_name!r} does "
                               "not embed", reason="UNSUPPORTED_MODALITY", index=index,
                               function=function.registry_name, modality=modality.value)
        if isinstance(value, TextInput):
            items.append(value.text)
        elif isinstance(value, ImageBytes):
            items.append(decode_image(value.data, index, policy))
        else:
            items.append(decode_image(read_image_uri(value.uri, index, policy), index, policy))
    return items


def decode_image(data: bytes, index: int, policy: ImagePolicy) -> Image.Image:
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
            image.load()
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(f"input {index}: not a decodable image ({type(exc).__name__}: {exc})",
                           reason="INVALID_IMAGE", index=index) from None
    return image


def read_image_uri(uri: str, index: int, policy: ImagePolicy) -> bytes:
    parsed = urllib.parse.urlsplit(uri)
    if parsed.scheme in ("http", "https"):
        return _fetch(uri, parsed, index, policy)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise InvalidInput(f"input {index}: file URIs name no host", reason="INVALID_IMAGE_URI", index=index)
        return _read_local(urllib.parse.unquote(parsed.path), index, policy)
    if parsed.scheme == "" and uri:
        return _read_local(uri, index, policy)
    raise InvalidInput(f"input {index}: unsupported image URI {uri!r} (use a path, file://, http:// or https://)",
                       reason="INVALID_IMAGE_URI", index=index)


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


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, D102
        raise urllib.error.HTTPError(req.full_url, code, "redirects are not followed", headers, fp)


_opener = urllib.request.build_opener(_NoRedirects)


def _fetch(uri: str, parsed: urllib.parse.SplitResult, index: int, policy: ImagePolicy) -> bytes:
    host = (parsed.hostname or "").lower()
    host_port = f"{host}:{parsed.port}" if parsed.port else host
    if "*" not in policy.allowed_hosts and host not in policy.allowed_hosts \
            and host_port not in policy.allowed_hosts:
        raise InvalidInput(f"input {index}: fetching images from {host_port!r} is not allowed on this service",
                           reason="IMAGE_URI_NOT_ALLOWED", index=index, host=host_port)
    try:
        with _opener.open(uri, timeout=policy.fetch_timeout) as response:
            return response.read(policy.max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise InvalidInput(f"input {index}: fetching {uri!r} failed: HTTP {exc.code} {exc.reason}",
                           reason="INVALID_IMAGE_URI", index=index) from None
    except (urllib.error.URLError, OSError) as exc:
        raise InvalidInput(f"input {index}: fetching {uri!r} failed: {exc}", reason="INVALID_IMAGE_URI",
                           index=index) from None
