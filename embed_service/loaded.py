"""The functions the embed service holds loaded, in bounded numbers.

A *function* here is a registry function with every resolved setting (its key); its *model* is what
`load` builds from the settings that choose the weights (`EmbeddingFunction.model_key`). Callers vary the
other settings freely (`batch_size`, `max_retries`, `normalize`), so those variants share the one loaded
model: measured before this sharing, each distinct `batch_size` loaded MiniLM again (+46 MiB and two threads,
never freed). Both counts are bounded: at most `max_models` models and `max_functions` variants, the least
recently used idle one evicted to make room (its queue threads stop, its model is freed once no variant uses
it). Functions loaded at start are pinned. When every model is busy and a new one is asked for, the request
is refused with MODEL_CACHE_FULL rather than exceeding the bound.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from embed_service.batching import BatchQueue
from embed_service.errors import EmbedError, ModelCacheFull, ModelLoadFailed
from embed_service.functions.base import EmbeddingFunction, FunctionRuntime, Purpose

log = logging.getLogger(__name__)


class LoadObserver(Protocol):
    def model_loaded(self, function: str, seconds: float, ok: bool) -> None:
        """Called after each model load attempt."""


class _Unobserved:
    def model_loaded(self, function: str, seconds: float, ok: bool) -> None:
        pass


@dataclass(eq=False)
class LoadedFunction:
    key: str
    model_key: str
    name: str
    function: EmbeddingFunction
    queues: dict[Purpose, BatchQueue] = field(default_factory=dict)
    pinned: bool = False
    evicted: bool = False

    def idle(self) -> bool:
        return all(queue.idle() for queue in self.queues.values())


QueueFactory = Callable[[LoadedFunction, Purpose], BatchQueue]


class LoadedFunctions:
    def __init__(self, runtime: FunctionRuntime, make_queue: QueueFactory, *, max_models: int = 4,
                 max_functions: int = 32, observer: LoadObserver | None = None) -> None:
        self._runtime = runtime
        self._make_queue = make_queue
        self._max_models = max_models
        self._max_functions = max_functions
        self._observer = observer or _Unobserved()
        self._functions: OrderedDict[str, LoadedFunction] = OrderedDict()  # least recently used first
        # Held while a model loads, so concurrent callers load it once; striped by model key, so a caller
        # inventing model keys cannot grow this.
        self._gates = tuple(threading.Lock() for _ in range(16))
        self._lock = threading.Lock()

    def find(self, key: str) -> LoadedFunction | None:
        with self._lock:
            found = self._functions.get(key)
            if found is not None:
                self._functions.move_to_end(key)
            return found

    def get(self, key: str, name: str, candidate: EmbeddingFunction, *, pin: bool = False) -> LoadedFunction:
        """The loaded function for `key`, made from `candidate` (validated, not loaded) on first use: it takes
        the model of a loaded variant with the same model key, or loads the model (once, however many callers
        ask at the same time)."""
        model_key = candidate.model_key()
        with self._gates[hash(model_key) % len(self._gates)]:
            with self._lock:
                found = self._functions.get(key)
                if found is not None:
                    self._functions.move_to_end(key)
                    found.pinned |= pin
                    return found
                sibling = next((f for f in self._functions.values() if f.model_key == model_key), None)
                evicted = self._make_room(new_model=sibling is None)
                still_loaded = {f.model_key for f in self._functions.values()}
            self._close(evicted, still_loaded)
            if sibling is not None:
                candidate.share_model(sibling.function)
            else:
                self._load(name, candidate)
            loaded = LoadedFunction(key, model_key, name, candidate, pinned=pin)
            with self._lock:
                self._functions[key] = loaded
        return loaded

    def queue(self, loaded: LoadedFunction, purpose: Purpose) -> BatchQueue | None:
        """The function's queue for `purpose`; None when it was evicted meanwhile (get it again)."""
        with self._lock:
            if loaded.evicted:
                return None
            queue = loaded.queues.get(purpose)
            if queue is None:
                queue = loaded.queues[purpose] = self._make_queue(loaded, purpose)
            return queue

    def counts(self) -> tuple[int, int]:
        """(models, functions) loaded."""
        with self._lock:
            return len({f.model_key for f in self._functions.values()}), len(self._functions)

    def close(self) -> None:
        with self._lock:
            everything = list(self._functions.values())
            self._functions.clear()
            for loaded in everything:
                loaded.evicted = True
        self._close(everything, set())

    # ----- internals -----------------------------------------------------------------------------------
    def _load(self, name: str, candidate: EmbeddingFunction) -> None:
        started = time.perf_counter()
        try:
            candidate.load(self._runtime)
        except EmbedError:
            self._observer.model_loaded(name, time.perf_counter() - started, False)
            raise
        except Exception as exc:
            self._observer.model_loaded(name, time.perf_counter() - started, False)
            raise ModelLoadFailed(f"{name}: loading failed: {type(exc).__name__}: {exc}", function=name) from exc
        seconds = time.perf_counter() - started
        self._observer.model_loaded(name, seconds, True)
        log.info("loaded %s in %.2fs (%d dimensions)", name, seconds, candidate.ndims())

    def _make_room(self, *, new_model: bool) -> list[LoadedFunction]:
        """Evicts (under the lock) what must go for one more function, and one more model if `new_model`."""
        evicted: list[LoadedFunction] = []
        while len(self._functions) >= self._max_functions:
            victim = self._idle_victim()
            if victim is None:
                raise ModelCacheFull(f"the embed service holds its limit of {self._max_functions} function "
                                     "variants, all busy; try again shortly", limit=self._max_functions)
            evicted.append(self._functions.pop(victim.key))
            victim.evicted = True
        if new_model:
            while len({f.model_key for f in self._functions.values()}) >= self._max_models:
                victim = self._idle_victim()
                if victim is None:
                    raise ModelCacheFull(f"the embed service holds its limit of {self._max_models} loaded "
                                         "models, all busy; try again shortly", limit=self._max_models)
                for other in [f for f in self._functions.values() if f.model_key == victim.model_key]:
                    evicted.append(self._functions.pop(other.key))
                    other.evicted = True
        return evicted

    def _idle_victim(self) -> LoadedFunction | None:
        """The least recently used unpinned function whose model no busy variant is using."""
        busy_models = {f.model_key for f in self._functions.values() if not f.idle()}
        pinned_models = {f.model_key for f in self._functions.values() if f.pinned}
        for candidate in self._functions.values():
            if candidate.model_key in busy_models or candidate.pinned:
                continue
            if candidate.model_key in pinned_models and len(self._functions) < self._max_functions:
                continue  # a pinned model's variants go only to keep the variant count
            return candidate
        return None

    @staticmethod
    def _close(functions: list[LoadedFunction], still_loaded: set[str]) -> None:
        """Closes the evicted functions' queues; a model no loaded variant uses any more is released."""
        released: set[str] = set()
        for loaded in functions:
            log.info("evicting %s from the loaded functions", loaded.name)
            for queue in loaded.queues.values():
                queue.close()
            if loaded.model_key not in still_loaded and loaded.model_key not in released:
                released.add(loaded.model_key)
                loaded.function.release()
