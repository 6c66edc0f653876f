"""Where the embed service may send a resolved secret (an API key): `--secret-allowed-hosts` entries that pin
the scheme, the host and the port, so an allowed host name does not also admit plain http or another port
on it (where anyone with a local account could listen).

    api.openai.com             https://api.openai.com:443 (https and the scheme's port unless said)
    llm.internal:8443          https on port 8443
    http://127.0.0.1:8000      plain http, that port only: only when an entry says http
    http://127.0.0.1:*         any port ("*" as the port)
    *                          any host, over https on port 443
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PORTS = {"https": 443, "http": 80}
ANY = "*"


@dataclass(frozen=True)
class HostRule:
    scheme: str
    host: str  # lower case, or ANY
    port: int | None  # None: any port

    def allows(self, scheme: str, host: str, port: int) -> bool:
        return (scheme == self.scheme and self.host in (ANY, host)
                and (self.port is None or self.port == port))


@dataclass(frozen=True)
class SecretHosts:
    rules: tuple[HostRule, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> "SecretHosts":
        """The rules of `entries`; a malformed entry is a ValueError (the service refuses to start)."""
        return cls(tuple(parse_entry(e) for e in entries if e.strip()))

    def allows_url(self, url: str) -> bool:
        """Whether a secret may go with a request to `url` (an http(s) URL; anything else is refused)."""
        target = endpoint(url)
        return target is not None and any(rule.allows(*target) for rule in self.rules)


def endpoint(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an http(s) URL, the port defaulted by scheme; None when it is not one."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def parse_entry(entry: str) -> HostRule:
    text = entry.strip()
    if text == ANY:
        return HostRule("https", ANY, DEFAULT_PORTS["https"])
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "https", text
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"secret host {entry!r}: the scheme must be https or http")
    host, port_text = rest, ""
    if ":" in rest and not rest.endswith("]"):  # a port after the host ([v6 address] keeps its colons)
        host, _, port_text = rest.rpartition(":")
    host = host.strip("[]").lower()
    if not host or "/" in host or "@" in host:
        raise ValueError(f"secret host {entry!r}: give [scheme://]host[:port]")
    if port_text == ANY:
        port = None
    elif port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"secret host {entry!r}: {port_text!r} is not a port")
        port = int(port_text)
    else:
        port = DEFAULT_PORTS[scheme]
    return HostRule(scheme, host, port)
