"""The embedding cache: vectors already computed, keyed by (function with its resolved settings, purpose, a
SHA-256 of the input's content), least recently used first out, bounded in bytes.

Texts and image bytes are cached; image URIs are not (what a URI names can change). A re-embed that keeps a
function for some column, a retried chunk, or the same text added twice then costs no model call. Two
functions, or one function with other settings, never share an entry: the function key is the loaded
model's key, which holds every resolved setting.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from embed_service.functions.base import Purpose
from embed_service.inputs import EmbedInput, ImageBytes, TextInput

ENTRY_OVERHEAD = 160  # bytes an entry costs besides its vector: key tuple, digest, dict slot (measured ~150)


class CacheObserver(Protocol):
    def cache_lookup(self, function: str, hits: int, misses: int) -> None: ...

    def cache_size(self, entries: int, size_bytes: int) -> None: ...


def content_digest(value: EmbedInput | None) -> bytes | None:
    """What identifies an input's content, or None for inputs that are not cached (URIs, missing)."""
    if isinstance(value, TextInput):
        return hashlib.sha256(b"text\0" + value.text.encode("utf-8", "surrogatepass")).digest()
    if isinstance(value, ImageBytes):
        return hashlib.sha256(b"image\0" + value.data).digest()
    return None


class EmbeddingCache:
    def __init__(self, max_bytes: int, *, cache_queries: bool = False, observer: CacheObserver | None = None
                 ) -> None:
        self.max_bytes = max_bytes
        self.cache_queries = cache_queries
        self._observer = observer
        self._entries: OrderedDict[tuple[str, str, bytes], np.ndarray] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def applies_to(self, purpose: Purpose) -> bool:
        return self.enabled and (purpose is Purpose.SOURCE or self.cache_queries)

    def lookup(self, function: str, purpose: Purpose, digests: Sequence[bytes | None]
               ) -> list[np.ndarray | None]:
        """The cached vector of each digest, or None; found entries become the most recently used."""
        found: list[np.ndarray | None] = []
        with self._lock:
            for digest in digests:
                vector = None
                if digest is not None:
                    key = (function, purpose.value, digest)
                    vector = self._entries.get(key)
                    if vector is not None:
                        self._entries.move_to_end(key)
                found.append(vector)
        if self._observer is not None:
            hits = sum(v is not None for v in found)
            cacheable = sum(d is not None for d in digests)
            self._observer.cache_lookup(function.split(" ", 1)[0], hits, cacheable - hits)
        return found

    def store(self, function: str, purpose: Purpose, digests: Sequence[bytes | None], vectors: np.ndarray) -> None:
        """Caches each vector under its digest (None: not cached), evicting the least recently used."""
        with self._lock:
            for digest, vector in zip(digests, vectors):
                if digest is None:
                    continue
                key = (function, purpose.value, digest)
                if key in self._entries:
                    self._entries.move_to_end(key)
                    continue
                kept = np.array(vector, dtype=np.float32, copy=True)  # not a view that pins the whole batch
                kept.setflags(write=False)
                self._entries[key] = kept
                self._bytes += kept.nbytes + ENTRY_OVERHEAD
            while self._bytes > self.max_bytes and self._entries:
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.nbytes + ENTRY_OVERHEAD
            entries, size = len(self._entries), self._bytes
        if self._observer is not None:
            self._observer.cache_size(entries, size)

    def size(self) -> tuple[int, int]:
        """(entries, bytes)."""
        with self._lock:
            return len(self._entries), self._bytes
