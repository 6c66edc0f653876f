"""The embed service's core, free of gRPC: resolve a function spec to a loaded, cached function, check and
decode inputs, and hand them to that model's batching queue.

Functions are loaded once per (function, settings) and shared by every request, in bounded numbers, and
variants that differ only in how the model is called share one model (`embed_service.loaded`); a load that
fails is not cached, so the next request tries again. Each loaded function gets one BatchQueue per input
purpose.
Inputs the embedding cache holds are answered from it; only the others (each distinct content once) reach
the model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embed_service.batching import BatchQueue, QueueObserver
from embed_service.cache import EmbeddingCache, content_digest
from embed_service.errors import InvalidArgument, InvalidInput, ModelCacheFull
from embed_service.functions.base import EmbeddingFunction, FunctionRuntime, Modality, Purpose
from embed_service.functions.registry import Registry
from embed_service.functions.rerank import RerankFunction
from embed_service.inputs import EmbedInput, ImagePolicy, prepare_inputs
from embed_service.loaded import LoadedFunction, LoadedFunctions, LoadObserver
from rpc_common import paging

MAX_RERANK_QUERY_BYTES = 65_536

log = logging.getLogger(__name__)

IsActive = Callable[[], bool]


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FunctionInfo:
    name: str
    description: str
    modalities: tuple[Modality, ...]
    settings_schema: dict[str, Any]
    secret_settings: tuple[str, ...]


@dataclass(frozen=True)
class FunctionDescription:
    name: str
    dimensions: int
    modalities: tuple[Modality, ...]
    normalized: bool
    secret_settings: tuple[str, ...]
    settings: dict[str, Any]


@dataclass(frozen=True)
class BatchingConfig:
    enabled: bool = True
    max_batch_size: int = 64
    max_wait_s: float = 0.005
    quiet_s: float = 0.001
    max_queued: int = 8192
    max_models: int = 4  # distinct loaded models
    max_functions: int = 32  # distinct (function, settings) variants, each with its queues


@dataclass(frozen=True)
class StreamItem:
    sequence: int
    spec: FunctionSpec | None
    inputs: Sequence[EmbedInput | None]
    purpose: Purpose


class EmbeddingCore:
    def __init__(self, registry: Registry, runtime: FunctionRuntime, *, images: ImagePolicy = ImagePolicy(),
                 batching: BatchingConfig = BatchingConfig(), max_inputs_per_request: int = 4096,
                 max_rerank_documents: int = 1000,
                 queue_observer: QueueObserver | None = None, load_observer: LoadObserver | None = None,
                 stream_window: int = 8, cache: EmbeddingCache | None = None) -> None:
        self._registry = registry
        self.runtime = runtime
        self._cache = cache or EmbeddingCache(0)
        self._images = images
        self._batching = batching
        self._max_inputs = max_inputs_per_request
        self._max_rerank = max_rerank_documents
        self._queue_observer = queue_observer
        self._stream_window = stream_window
        self._loaded = LoadedFunctions(runtime, self._make_queue, max_models=batching.max_models,
                                       max_functions=batching.max_functions, observer=load_observer)
        self._aliases: dict[str, str] = {}  # a spelling of a spec -> the key of its loaded function

    # ----- functions ---------------------------------------------------------------------------------
    def list_functions(self, page_size: int = 0, page_token: str = "") -> tuple[list[FunctionInfo], str]:
        names, next_token = paging.page(self._registry.names(), str, page_size, page_token)
        infos = []
        for name in names:
            cls = self._registry.get(name)
            infos.append(FunctionInfo(name, cls.description, _ordered(cls.modalities), cls.settings_schema(),
                                      cls.secret_settings))
        return infos, next_token

    def describe(self, spec: FunctionSpec) -> FunctionDescription:
        function = self.function(spec)
        return FunctionDescription(spec.name, function.ndims(), _ordered(function.embeds()),
                                   function.normalized, function.secret_settings, function.settings())

    def function(self, spec: FunctionSpec, *, pin: bool = False) -> EmbeddingFunction:
        """The loaded function for `spec`, loading it on first use (`pin`: never evicted)."""
        return self._load(spec, pin).function

    def loaded_counts(self) -> tuple[int, int]:
        """(models, function variants) loaded."""
        return self._loaded.counts()

    def _load(self, spec: FunctionSpec, pin: bool = False) -> LoadedFunction:
        """The loaded function for `spec`. Specs seen before skip validation: two dict look-ups."""
        alias = spec.name + " " + json.dumps(spec.settings, sort_keys=True)
        known = self._aliases.get(alias)
        found = self._loaded.find(known) if known is not None and not pin else None
        if found is not None:
            return found
        key, candidate = self._validate(spec)
        loaded = self._loaded.get(key, spec.name, candidate, pin=pin)
        if len(self._aliases) >= 10_000:  # spellings of settings are the caller's to vary; keep this bounded
            self._aliases.clear()
        self._aliases[alias] = key
        return loaded

    def preload(self, specs: Iterable[FunctionSpec]) -> None:
        for spec in specs:
            self.function(spec, pin=True)

    def _validate(self, spec: FunctionSpec) -> tuple[str, EmbeddingFunction]:
        if not spec.name:
            raise InvalidArgument("the function name is empty", reason="MISSING_FUNCTION")
        cls = self._registry.get(spec.name)
        function = cls.create(spec.settings)
        key = spec.name + " " + json.dumps(function.settings(), sort_keys=True)
        return key, function

    # ----- embedding ---------------------------------------------------------------------------------
    def submit(self, spec: FunctionSpec, inputs: Sequence[EmbedInput | None], purpose: Purpose,
               is_active: IsActive = lambda: True) -> tuple[int, Future]:
        """Validates and queues one request; returns the dimensions and a future of its vectors."""
        if len(inputs) > self._max_inputs:
            raise InvalidInput(f"{len(inputs)} inputs in one request; the limit is {self._max_inputs}",
                               reason="TOO_MANY_INPUTS", limit=self._max_inputs)
        loaded = self._load(spec)
        function = loaded.function
        dims = function.ndims()
        if not self._cache.applies_to(purpose):
            items = prepare_inputs(inputs, function, self._images)
            if not items:
                return dims, _resolved(np.empty((0, dims), dtype=np.float32))
            return dims, self._queue(spec, loaded, purpose).submit(items, is_active)
        return dims, self._submit_cached(spec, loaded, inputs, purpose, is_active)

    # ----- reranking ---------------------------------------------------------------------------------
    def rerank(self, spec: FunctionSpec, query: str, documents: Sequence[str],
               is_active: IsActive = lambda: True) -> np.ndarray:
        """One relevance score per document from a rerank function (`functions/rerank.py`); nothing is
        computed for a caller that went away while it waited for the model."""
        if len(documents) > self._max_rerank:
            raise InvalidInput(f"{len(documents)} documents in one request; the limit is {self._max_rerank}",
                               reason="TOO_MANY_INPUTS", limit=self._max_rerank)
        if len(query.encode("utf-8", "surrogatepass")) > MAX_RERANK_QUERY_BYTES:
            raise InvalidInput(f"the query holds more than {MAX_RERANK_QUERY_BYTES} bytes", reason="QUERY_TOO_LONG",
                               limit=MAX_RERANK_QUERY_BYTES)
        for index, text in enumerate(documents):
            if len(text) > self._images.max_text_chars:
                raise InvalidInput(f"document {index} holds {len(text)} characters; the limit is "
                                   f"{self._images.max_text_chars}", reason="TEXT_TOO_LONG", index=index,
                                   limit=self._images.max_text_chars)
        if spec.name and not issubclass(self._registry.get(spec.name), RerankFunction):  # before any load
            raise InvalidArgument(f"function {spec.name!r} embeds; it does not rerank (rerank functions: "
                                  f"{', '.join(self.rerank_names())})", reason="NOT_A_RERANKER", function=spec.name)
        function = self._load(spec).function
        assert isinstance(function, RerankFunction)
        return function.rerank(query, list(documents), is_active)

    def rerank_names(self) -> list[str]:
        return [n for n in self._registry.names() if issubclass(self._registry.get(n), RerankFunction)]

    def _queue(self, spec: FunctionSpec, loaded: LoadedFunction, purpose: Purpose) -> BatchQueue:
        """The queue of `loaded`, or of the function loaded again for `spec` if it was evicted meanwhile."""
        for _ in range(3):
            queue = self._loaded.queue(loaded, purpose)
            if queue is not None:
                return queue
            loaded = self._load(spec)
        raise ModelCacheFull(f"{spec.name}: evicted again each time it was loaded; the embed service's loaded "
                             "models are all in demand, try again shortly")

    def _submit_cached(self, spec: FunctionSpec, loaded: LoadedFunction, inputs: Sequence[EmbedInput | None],
                       purpose: Purpose, is_active: IsActive) -> Future:
        """Answers cached inputs from the cache and queues the rest, each distinct content once."""
        key, function = loaded.key, loaded.function
        digests = [content_digest(value) for value in inputs]
        found = self._cache.lookup(key, purpose, digests)
        first_of: dict[bytes, int] = {}  # digest -> position among the inputs sent to the model
        sent: list[int] = []  # request positions sent to the model
        source: list[int] = []  # for each input missing from the cache: its row among the model's vectors
        for position, (digest, vector) in enumerate(zip(digests, found)):
            if vector is not None:
                continue
            if digest is not None and digest in first_of:
                source.append(first_of[digest])
                continue
            if digest is not None:
                first_of[digest] = len(sent)
            source.append(len(sent))
            sent.append(position)
        items = prepare_inputs([inputs[i] for i in sent], function, self._images, positions=sent)
        dims = function.ndims()
        result = np.empty((len(inputs), dims), dtype=np.float32)
        hits = [i for i, v in enumerate(found) if v is not None]
        if hits:
            result[hits] = np.stack([v for v in found if v is not None])
        if not items:
            return _resolved(result)
        missing = [i for i, v in enumerate(found) if v is None]
        computed = self._queue(spec, loaded, purpose).submit(items, is_active)
        answer: Future = Future()

        def complete(done: Future) -> None:
            error = done.exception()
            if error is not None:
                metadata = getattr(error, "metadata", None)
                index = metadata.get("index", "") if isinstance(metadata, dict) else ""
                if isinstance(metadata, dict) and index.isdigit() and int(index) < len(sent):
                    metadata["index"] = str(sent[int(index)])  # the input's place in the request
                answer.set_exception(error)
                return
            vectors = done.result()
            self._cache.store(key, purpose, [digests[i] for i in sent], vectors)
            result[missing] = vectors[source]
            answer.set_result(result)

        computed.add_done_callback(complete)
        return answer

    def embed(self, spec: FunctionSpec, inputs: Sequence[EmbedInput | None], purpose: Purpose = Purpose.SOURCE,
              is_active: IsActive = lambda: True) -> np.ndarray:
        _, future = self.submit(spec, inputs, purpose, is_active)
        return future.result()

    def embed_stream(self, requests: Iterable[StreamItem], is_active: IsActive = lambda: True
                     ) -> Iterator[tuple[int, int, np.ndarray]]:
        """Embeds a stream of requests, up to `stream_window` at once, answering in the order received."""
        window: list[tuple[int, int, Future]] = []
        spec: FunctionSpec | None = None
        for item in requests:
            spec = item.spec or spec
            if spec is None:
                raise InvalidArgument(f"stream request {item.sequence} names no function, and none came before",
                                      reason="MISSING_FUNCTION", sequence=item.sequence)
            dims, future = self.submit(spec, item.inputs, item.purpose, is_active)
            window.append((item.sequence, dims, future))
            while len(window) >= self._stream_window or (window and window[0][2].done()):
                sequence, dims, future = window.pop(0)
                yield sequence, dims, future.result()
        for sequence, dims, future in window:
            yield sequence, dims, future.result()

    def _make_queue(self, loaded: LoadedFunction, purpose: Purpose) -> BatchQueue:
        cfg, function = self._batching, loaded.function
        return BatchQueue(f"{loaded.name}/{purpose.value}", lambda items: function.embed(items, purpose),
                          max_batch_size=cfg.max_batch_size, max_wait_s=cfg.max_wait_s, quiet_s=cfg.quiet_s,
                          max_queued=cfg.max_queued, coalesce=cfg.enabled, observer=self._queue_observer)

    def close(self) -> None:
        self._loaded.close()


def _ordered(modalities: Iterable[Modality]) -> tuple[Modality, ...]:
    order = list(Modality)
    return tuple(sorted(modalities, key=order.index))


def _resolved(value: np.ndarray) -> Future:
    done: Future = Future()
    done.set_result(value)
    return done
