"""Where the embed service may send a resolved secret (an API key): `--secret-allowed-hosts` entries that pin
the scheme, the host and the port, so an allowed host name does not also admit plain http or another port
on it (where anyone with a local account could listen).

    api.openai.com             https://api.openai.com:443 (https and the scheme's port unless said)
    llm.internal:8443          https on port 8443
    http://127.0.0.1:8000      plain http, that port only: only when an entry says http
    http://127.0.0.1:*         any port ("*" as the port)
    bedrock-runtime.*.amazonaws.com
                               "*" as one whole label: any one label there (a region), never a dot
    *                          any host, over https on port 443

The default admits each hosted provider's own API (`PROVIDER_HOSTS`), as the default admitted OpenAI's.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass

DEFAULT_PORTS = {"https": 443, "http": 80}
_SECRET_QUERY = re.compile(r"(key|token|secret|password|sig|credential|auth)", re.IGNORECASE)
ANY = "*"
_AMBIGUOUS = re.compile(r"[\\\x00-\x20\x7f]")

# Where a function with no key may call by default besides the providers' APIs: an Ollama server on this
# machine (its default host). Any other endpoint (a vLLM, a TEI, an Ollama elsewhere) is one the operator
# names in --endpoint-allowed-hosts, so a caller cannot make the service POST to the cluster's insides.
LOCAL_MODEL_SERVERS = ("http://localhost:11434", "http://127.0.0.1:11434")

# The official endpoints of the providers the service hosts: where their keys go unless the operator says
# otherwise (a function's `base_url` elsewhere needs an entry of its own).
PROVIDER_HOSTS = (
    "api.openai.com", "api.cohere.com", "api.cohere.ai", "api.jina.ai", "api.voyageai.com",
    "generativelanguage.googleapis.com", "bedrock-runtime.*.amazonaws.com", "*.ml.cloud.ibm.com",
    "iam.cloud.ibm.com",
)


@dataclass(frozen=True)
class HostRule:
    scheme: str
    host: str  # lower case, or ANY
    port: int | None  # None: any port

    def allows(self, scheme: str, host: str, port: int) -> bool:
        return (scheme == self.scheme and (self.host in (ANY, host) or _label_match(self.host, host))
                and (self.port is None or self.port == port))


def _label_match(pattern: str, host: str) -> bool:
    """A pattern with "*" labels matches hosts with as many labels, each "*" standing for one whole label."""
    wanted, labels = pattern.split("."), host.split(".")
    return (ANY in wanted and len(wanted) == len(labels)
            and all(w == label or (w == ANY and label) for w, label in zip(wanted, labels)))


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
    """(scheme, host, port) of an http(s) URL, the port defaulted by scheme; None when it is not one. A URL
    that HTTP clients could read differently from this parser (a backslash, which WHATWG parsers take for a
    slash: `https://evil\\@api.openai.com`; whitespace or control characters) is not one either."""
    if _AMBIGUOUS.search(url):
        return None
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS[scheme]


def where(url: str) -> str:
    """`scheme://host:port` of a URL for an error message (never its path or query), or what it is not."""
    target = endpoint(url)
    return "{}://{}:{}".format(*target) if target else "a URL that is not a plain http(s) one"


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
    if host != ANY and any(ANY in label and label != ANY for label in host.split(".")):
        raise ValueError(f"secret host {entry!r}: '*' stands for a whole label (bedrock-runtime.*.amazonaws.com)")
    if port_text == ANY:
        port = None
    elif port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ValueError(f"secret host {entry!r}: {port_text!r} is not a port")
        port = int(port_text)
    else:
        port = DEFAULT_PORTS[scheme]
    return HostRule(scheme, host, port)


def carries_credentials(url: str) -> bool:
    """Whether a URL holds a secret of its own: a user part, or a query parameter named like a key."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is not None or parts.password is not None:
        return True
    return any(_SECRET_QUERY.search(name) for name, _ in urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
