"""Retries of a local function's calls, paced as the embed service paces its own: exponential backoff from
1 s, doubling, capped at 60 s, with up to 1 s of jitter; `max_retries` retries after the first attempt (0:
none). A failure that cannot pass by waiting is raised at once: an authentication refusal (401), and the
errors a bug or a bad input raises (TypeError, ValueError, KeyError, AttributeError, NotImplementedError)."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity

INITIAL_DELAY_S = 1.0
MAX_DELAY_S = 60.0
_PERMANENT = (TypeError, ValueError, KeyError, AttributeError, NotImplementedError)

T = TypeVar("T")


def is_transient(exc: BaseException) -> bool:
    if isinstance(exc, _PERMANENT) or type(exc).__name__ == "AuthenticationError":
        return False
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    return status != 401 and isinstance(exc, Exception)


def retry_with_exponential_backoff(func: Callable[..., T], max_retries: int = 7,
                                   initial_delay: float = INITIAL_DELAY_S,
                                   max_delay: float = MAX_DELAY_S) -> Callable[..., T]:
    """`func`, called again after a transient failure up to `max_retries` times."""
    def call(*args: Any, **kwargs: Any) -> T:
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(max(0, int(max_retries)) + 1),
            wait=tenacity.wait_exponential_jitter(initial=initial_delay, max=max_delay, jitter=initial_delay),
            retry=tenacity.retry_if_exception(is_transient), reraise=True)
        return retrying(func, *args, **kwargs)
    return call


def retry(tries: int = 10, delay: float = 1.0, max_delay: float = 30.0, backoff: float = 3.0,
          jitter: float = 1.0) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """LanceDB's `retry` decorator: up to `tries` calls, sleeping `min(delay * backoff**i + jitter,
    max_delay)` after the i-th failure of any kind."""
    def decorate(func: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(func)
        def call(*args: Any, **kwargs: Any) -> T:
            for attempt in range(max(1, int(tries))):
                try:
                    return func(*args, **kwargs)
                except Exception:
                    if attempt + 1 >= tries:
                        raise
                    time.sleep(min(delay * backoff ** attempt + jitter, max_delay))
            raise AssertionError("unreachable")
        return call
    return decorate


__all__ = ["is_transient", "retry", "retry_with_exponential_backoff"]
