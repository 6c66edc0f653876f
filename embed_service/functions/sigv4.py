"""AWS Signature Version 4 for one HTTP request (what bedrock-text sends), by AWS's published algorithm.

A canonical request (method, the path encoded once more, the sorted query, the signed headers and the body's
SHA-256) is hashed into a string to sign, which a key derived from the secret, the date, the region and the
service signs (HMAC-SHA256 chain). The tests check it against botocore's signer. Only the headers signed here
(`host`, `x-amz-date`, and `x-amz-security-token` for temporary credentials) need to reach AWS unchanged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import urllib.parse
from dataclasses import dataclass

ALGORITHM = "AWS4-HMAC-SHA256"
DEFAULT_PORTS = {"https": 443, "http": 80}


@dataclass(frozen=True)
class Credentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def host_header(url: str) -> str:
    """The Host header a client sends for `url`: the host, and the port when it is not the scheme's own."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    return host if port is None or port == DEFAULT_PORTS.get(parts.scheme) else f"{host}:{port}"


def signed_headers(method: str, url: str, body: bytes, credentials: Credentials, region: str, service: str,
                   now: dt.datetime | None = None) -> dict[str, str]:
    """The headers that sign a request: Authorization, X-Amz-Date, Host (and X-Amz-Security-Token)."""
    moment = (now or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    amz_date, day = moment.strftime("%Y%m%dT%H%M%SZ"), moment.strftime("%Y%m%d")
    parts = urllib.parse.urlsplit(url)
    headers = {"host": host_header(url), "x-amz-date": amz_date}
    if credentials.session_token:
        headers["x-amz-security-token"] = credentials.session_token
    names = sorted(headers)
    query = sorted(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
    canonical = "\n".join([
        method.upper(),
        urllib.parse.quote(parts.path or "/", safe="/~"),  # the path, already encoded once, encoded again
        "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}" for k, v in query),
        "".join(f"{name}:{' '.join(headers[name].split())}\n" for name in names),
        ";".join(names),
        hashlib.sha256(body).hexdigest(),
    ])
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(_hmac(_hmac(_hmac(f"AWS4{credentials.secret_access_key}".encode(), day), region), service),
                "aws4_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    out = {"Authorization": f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
                            f"SignedHeaders={';'.join(names)}, Signature={signature}",
           "X-Amz-Date": amz_date, "Host": headers["host"]}
    if credentials.session_token:
        out["X-Amz-Security-Token"] = credentials.session_token
    return out
