"""AIP-158 pagination shared by the services: opaque tokens that name the last item of the previous page."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from rpc_common.errors import InvalidArgument

T = TypeVar("T")
DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page(items: Sequence[T], key: Callable[[T], str | int], page_size: int, page_token: str
         ) -> tuple[list[T], str]:
    """The page of `items` (sorted by `key`) after the token's item, and the token of the next page."""
    if page_size < 0:
        raise InvalidArgument("page_size must not be negative", reason="INVALID_PAGE_SIZE")
    size = min(page_size or DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE)
    after = _decode(page_token)
    rest = [item for item in items if after is None or _after(key(item), after)]
    chunk = list(rest[:size])
    return chunk, (_encode(key(chunk[-1])) if len(rest) > size else "")


def _after(value: str | int, after: str | int) -> bool:
    if type(value) is not type(after):
        raise InvalidArgument("page_token belongs to another listing", reason="INVALID_PAGE_TOKEN")
    return value > after  # type: ignore[operator]


def _encode(after: str | int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def _decode(token: str) -> str | int | None:
    if not token:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except Exception:
        raise InvalidArgument("page_token is not one this service issued", reason="INVALID_PAGE_TOKEN") from None
    if not isinstance(after, (str, int)):
        raise InvalidArgument("page_token is not one this service issued", reason="INVALID_PAGE_TOKEN")
    return after
