"""Secrets out of everything the embed service says: every error status it answers and every log line.

The one place for every function, so a new provider cannot forget it: `SecretResolver` remembers each secret
it resolves (a caller's `$var:` reference, the service's own `*_API_KEY`), and so does any code that
obtains a credential (an IAM token); the service's error mapping and its log records pass through
`Redactor.redact`, which replaces those values and anything shaped like a credential (a bearer token, a
`key=value` pair, a provider's key prefix, a long random token). Found by the hostile review: an endpoint
that echoed request headers had the resolved key of a caller who sent only `$var:mykey` come back in the
status message.
"""

from __future__ import annotations

import logging
import re
import threading
import urllib.parse
from collections import OrderedDict
from collections.abc import Callable

MIN_SECRET_CHARS = 4  # shorter values would blank ordinary words
MAX_REMEMBERED = 4096
SHOWN = "[redacted]"

_KEY_SHAPED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?i)\b(bearer|basic)(\s+)[A-Za-z0-9._~+/=-]{6,}"), rf"\1\2{SHOWN}"),
    (re.compile(r"(?i)\b(api[_-]?key|apikey|access[_-]?token|auth[_-]?token|secret|password|passwd|authorization"
                r"|x-api-key|token)(\"?\s*[:=]\s*\"?)(?!\$var:)(?!\[redacted\])[^\s\"',;&)}\]]{6,}"), rf"\1\2{SHOWN}"),
    (re.compile(r"\b(?:sk|pk|rk|ak)[-_][A-Za-z0-9_-]{12,}"), SHOWN),
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), SHOWN),
    (re.compile(r"\b(?=[A-Za-z0-9_-]*[0-9])(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{32,}"), SHOWN),
]


class Redactor:
    """The secrets the service has resolved, and the rule that keeps them and their look-alikes out of text.

    Each secret is remembered with the spellings it takes in a URL (percent-encoded), since a provider may
    quote the URL it was called with. At most MAX_REMEMBERED are kept, the least recently resolved forgotten
    first (a rotating IAM token), so the rule never stops taking new ones."""

    def __init__(self) -> None:
        self._known: OrderedDict[str, None] = OrderedDict()
        self._ordered: list[str] = []
        self._lock = threading.Lock()

    def remember(self, secret: str | None) -> None:
        if not secret or len(secret) < MIN_SECRET_CHARS:
            return
        spellings = {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}
        with self._lock:
            if all(s in self._known for s in spellings):
                for spelling in spellings:
                    self._known.move_to_end(spelling)
                return
            for spelling in spellings:
                self._known[spelling] = None
                self._known.move_to_end(spelling)
            while len(self._known) > MAX_REMEMBERED:
                self._known.popitem(last=False)
            self._ordered = sorted(self._known, key=len, reverse=True)  # a longer secret before its prefix

    def redact(self, text: str) -> str:
        if not text:
            return text
        for secret in self._ordered:
            if secret in text:
                text = text.replace(secret, SHOWN)
        for pattern, replacement in _KEY_SHAPED:
            text = pattern.sub(replacement, text)
        return text


def redact_log_records(redact: Callable[[str], str]) -> None:
    """Every log record of this process is written with `redact` applied to its message and traceback."""
    previous = logging.getLogRecordFactory()
    if getattr(previous, "redacts", False):
        return

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), None
        except Exception:  # noqa: BLE001 - a record that cannot be formatted stays as it is
            return record
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return record

    factory.redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)
