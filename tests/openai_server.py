"""A local HTTP server speaking the OpenAI embeddings API (POST /v1/embeddings), for tests and benchmarks.

It answers with deterministic vectors (a hash of each text), and can be told to fail: `fail_next(429, 2)`
makes the next two calls answer 429. It records every request's inputs and Authorization header.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

import numpy as np


def text_vector(text: str, dims: int) -> list[float]:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dims)
    return (vector / np.linalg.norm(vector)).astype(np.float32).tolist()


class LocalHTTPServer:
    """A threaded HTTP server on 127.0.0.1 (an ephemeral port) whose POSTs `answer` handles, with scripted
    failures (`fail_next(status, times)`: the next calls get that status) and a record of every request."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.redirect: str | None = None  # every POST answers 307 to this URL
        self.echo_headers = False  # error answers quote the request's headers
        self.raw_answer: tuple[int, bytes] | None = None  # (status, body) answered to every POST
        self._failures: deque[int] = deque()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, payload = server.answer(self.path, headers, raw)
                if server.redirect is not None:  # what a hostile endpoint does: send the call elsewhere
                    status, payload = 307, {"error": {"message": "moved"}}
                if server.echo_headers and status >= 400:  # an endpoint that quotes what it was sent
                    quoted = " ".join(f"{k.upper()}={v}" for k, v in headers.items())
                    payload = {"error": {"message": f"{quoted} (as a URL: {urllib.parse.quote(quoted, safe='')})"}}
                data = json.dumps(payload).encode()
                if server.raw_answer is not None:  # a hostile endpoint's own bytes
                    status, data = server.raw_answer
                self.send_response(status)
                if status == 307:
                    self.send_header("Location", server.redirect)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._http.daemon_threads = True
        self._thread = threading.Thread(target=self._http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, object]:
        raise NotImplementedError

    def record(self, request: dict) -> int | None:
        """Records a request; the scripted failure status it is to get, if any."""
        with self._lock:
            self.requests.append(request)
            return self._failures.popleft() if self._failures else None

    def fail_next(self, status: int, times: int = 1) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def recover(self) -> None:
        """Drops the scripted failures not answered yet: the next call succeeds."""
        with self._lock:
            self._failures.clear()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._http.shutdown()
        self._http.server_close()


class OpenAICompatibleServer(LocalHTTPServer):
    def __init__(self, dims: int = 16, delay: float = 0.0) -> None:
        super().__init__()
        self.dims = dims
        self.delay = delay
        self.answer_text = ""  # an error answer's message, when set

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, object]:
        body = json.loads(raw or b"{}")
        status = self.record({"body": body, "authorization": headers.get("authorization", "")}) or 200
        if self.delay:
            time.sleep(self.delay)
        if path.rstrip("/") != "/v1/embeddings":
            status = 404
        if status != 200:
            message = self.answer_text or f"scripted failure {status}"
            return status, {"error": {"message": message, "type": "test", "code": None}}
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        dims = body.get("dimensions") or self.dims
        return 200, {"object": "list", "model": body.get("model"),
                     "data": [{"object": "embedding", "index": i, "embedding": text_vector(t, dims)}
                              for i, t in reversed(list(enumerate(inputs)))],
                     "usage": {"prompt_tokens": 1, "total_tokens": 1}}
