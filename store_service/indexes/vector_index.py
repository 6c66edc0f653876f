"""Vector indexes over FAISS, keyed by the table's stable `_rowid`s.

Kinds: FLAT (exact), IVF_FLAT, IVF_PQ, HNSW; metrics l2 (squared Euclidean), cosine (1 - cos, vectors
normalized and searched by inner product) and dot (-dot product). Smaller `_distance` is always closer.
Deleted rows are excluded at search time with an IDSelector (HNSW cannot remove ids, and one mechanism for
every kind means a deleted row can never come back from any of them). Prefiltering passes the allowed ids
the same way; when they are few, exact search over them is both faster and complete.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from store_service.errors import InvalidArgument

log = logging.getLogger(__name__)

KINDS = ("FLAT", "IVF_FLAT", "IVF_PQ", "HNSW")
METRICS = ("l2", "cosine", "dot")
EXACT_BELOW = 4096  # allowed-id sets smaller than this are searched exactly
RECENT_FOLD_ROWS = 50_000  # rows caught up in the flat side index before it is folded into the index
# Bounds on what a caller may ask of FAISS: it allocates in proportion to each (measured: 2^31-1 for ef,
# refine_factor or an HNSW m asked for 8-80 GiB, then failed).
SEARCH_BOUNDS = {"nprobes": 65_536, "ef": 10_000, "refine_factor": 100}
INDEX_BOUNDS = {"num_partitions": 65_536, "num_sub_vectors": 4_096, "m": 256, "ef_construction": 10_000}


@dataclass(frozen=True)
class IndexParams:
    kind: str = "FLAT"
    metric: str = "l2"
    num_partitions: int = 0
    num_sub_vectors: int = 0
    m: int = 32
    ef_construction: int = 200
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise InvalidArgument(f"unknown index type {self.kind!r}; one of {', '.join(KINDS)}",
                                  reason="INVALID_INDEX", index_type=self.kind)
        if self.metric not in METRICS:
            raise InvalidArgument(f"unknown metric {self.metric!r}; one of {', '.join(METRICS)}",
                                  reason="INVALID_METRIC", metric=self.metric)
        if self.m < 2:  # FAISS's IndexHNSWFlat with M=1 dies with SIGSEGV on its first add (measured)
            raise InvalidArgument(f"m must be at least 2; got {self.m}", reason="INVALID_INDEX_PARAMETERS", field="m")


@dataclass(frozen=True)
class SearchParams:
    nprobes: int = 0
    ef: int = 0
    refine_factor: int = 0


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        vectors = vectors.copy()
        faiss.normalize_L2(vectors)
    return vectors


def to_distance(scores: np.ndarray, metric: str) -> np.ndarray:
    """FAISS scores as vectorlane distances: squared L2 as is, inner products turned so smaller is closer."""
    if metric == "cosine":
        return 1.0 - scores
    if metric == "dot":
        return -scores
    return scores


class ReadWriteLock:
    """Many readers or one writer: searches run side by side (FAISS releases the GIL), an add alone; a writer
    waiting keeps new readers out, so a stream of searches cannot hold an add back."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._readers = 0
        self._writers_waiting = 0
        self._writing = False

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._writing and not self._writers_waiting)
            self._readers += 1
        try:
            yield
        finally:
            with self._changed:
                self._readers -= 1
                if self._readers == 0:
                    self._changed.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._changed:
            self._writers_waiting += 1
            self._changed.wait_for(lambda: not self._writing and self._readers == 0)
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._changed:
                self._writing = False
                self._changed.notify_all()


class VectorIndex:
    """A FAISS index over (row id, vector) pairs; `add` catches it up with rows committed after it was built."""

    def __init__(self, params: IndexParams, index: faiss.Index, dims: int) -> None:
        self.params = params
        self.dims = dims
        self._index = index
        self._lock = ReadWriteLock()  # adds mutate; searches run together otherwise
        self._owned: threading.Thread | None = None  # reading a copy FAISS owns of a mapped index
        self._recent: Any = None  # rows caught up since the build or the load (`catch_up`)
        self._mapped = False  # served from its file mapped: FAISS must never add to it
        self._shared_params: dict[tuple[int, int], Any] = {}  # search parameters without a selector, reused

    @property
    def size(self) -> int:
        return int(self._index.ntotal) + self.recent

    @classmethod
    def empty(cls, params: IndexParams, dims: int, rows: int) -> "VectorIndex":
        """An index for about `rows` vectors of `dims` dimensions, to be trained (IVF) and then filled batch by
        batch: building never needs the table's vectors in memory at once."""
        if rows <= 0:
            raise InvalidArgument("an index needs at least one vector to train on", reason="EMPTY_TABLE")
        faiss_metric = faiss.METRIC_L2 if params.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        kind = params.kind
        if kind == "FLAT":
            return cls(params, faiss.IndexIDMap2(faiss.IndexFlat(dims, faiss_metric)), dims)
        if kind == "HNSW":
            graph = faiss.IndexHNSWFlat(dims, params.m or 32, faiss_metric)
            graph.hnsw.efConstruction = params.ef_construction or 200
            return cls(params, faiss.IndexIDMap2(graph), dims)
        nlist = params.num_partitions or max(1, int(math.sqrt(rows)))
        if nlist > rows:
            raise InvalidArgument(f"num_partitions {nlist} exceeds the {rows} rows to train on",
                                  reason="INVALID_INDEX_PARAMETERS")
        quantizer = faiss.IndexFlat(dims, faiss_metric)
        if kind == "IVF_FLAT":
            index = faiss.IndexIVFFlat(quantizer, dims, nlist, faiss_metric)
        else:
            m = params.num_sub_vectors or _default_sub_vectors(dims)
            if dims % m:
                raise InvalidArgument(f"num_sub_vectors {m} must divide the {dims} dimensions",
                                      reason="INVALID_INDEX_PARAMETERS")
            trained_on = min(rows, _training_rows(kind, nlist))
            nbits = max(1, min(8, int(math.log2(max(2, trained_on // 39)))))  # FAISS wants 39 points per code
            index = faiss.IndexIVFPQ(quantizer, dims, nlist, m, nbits, faiss_metric)
        return cls(params, index, dims)  # faiss's wrapper keeps `quantizer` alive as long as `index`

    @property
    def training_rows(self) -> int:
        """How many sample vectors `train` wants (0: none; FAISS would subsample anything larger)."""
        if self._index.is_trained:
            return 0
        return _training_rows(self.params.kind, faiss.extract_index_ivf(self._index).nlist)

    def train(self, sample: np.ndarray) -> None:
        nlist = faiss.extract_index_ivf(self._index).nlist
        if len(sample) < nlist:
            raise InvalidArgument(f"num_partitions {nlist} exceeds the {len(sample)} vectors to train on",
                                  reason="INVALID_INDEX_PARAMETERS")
        self._index.train(prepare(sample, self.params.metric))

    @classmethod
    def build(cls, params: IndexParams, vectors: np.ndarray, row_ids: np.ndarray) -> "VectorIndex":
        """An index over vectors already in memory (a re-embedding's new ones)."""
        if vectors.ndim != 2 or len(vectors) == 0:
            raise InvalidArgument("an index needs at least one vector to train on", reason="EMPTY_TABLE")
        index = cls.empty(params, vectors.shape[1], len(vectors))
        if index.training_rows:
            index.train(vectors)
        index.add(vectors, row_ids)
        return index

    def add(self, vectors: np.ndarray, row_ids: np.ndarray) -> None:
        if len(row_ids):
            self._own()
            with self._lock.writing():
                self._index.add_with_ids(prepare(vectors, self.params.metric),
                                         np.ascontiguousarray(row_ids, dtype=np.int64))

    def catch_up(self, vectors: np.ndarray, row_ids: np.ndarray) -> None:
        """Rows committed after the index was built or loaded. They go to a flat side index searched with it
        (as LanceDB searches its unindexed rows by brute force), because FAISS grows a list it appends to by
        copying it whole: the first 10-row add after a load cost 30-140 ms on a 1M-row IVF_FLAT index (and
        would copy all 1.5 GB of an HNSW or FLAT index's vectors). Past RECENT_FOLD_ROWS (or a tenth of the
        index) the side index is folded in, once."""
        if not len(row_ids):
            return
        with self._lock.writing():
            if self._recent is None:
                metric = faiss.METRIC_L2 if self.params.metric == "l2" else faiss.METRIC_INNER_PRODUCT
                self._recent = faiss.IndexIDMap2(faiss.IndexFlat(self.dims, metric))
            self._recent.add_with_ids(prepare(vectors, self.params.metric),
                                      np.ascontiguousarray(row_ids, dtype=np.int64))
            fold = self._recent.ntotal >= max(RECENT_FOLD_ROWS, self._index.ntotal // 10)
        if fold:
            self.fold()

    @property
    def recent(self) -> int:
        """Rows in the side index (caught up and not folded in yet)."""
        recent = self._recent
        return 0 if recent is None else int(recent.ntotal)

    def fold(self) -> None:
        """Moves the side index's rows into the index itself (before it is written to a file)."""
        self._own()
        with self._lock.writing():
            recent, self._recent = self._recent, None
            if recent is None or recent.ntotal == 0:
                return
            flat = faiss.downcast_index(recent.index)
            self._index.add_with_ids(flat.reconstruct_n(0, recent.ntotal), faiss.vector_to_array(recent.id_map))

    def search(self, query: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
               excluded: np.ndarray | None = None, options: SearchParams = SearchParams()
               ) -> tuple[np.ndarray, np.ndarray]:
        """The `k` closest row ids and their distances, closest first, never an excluded id."""
        ids, distances = self.search_many(query.reshape(1, -1), k, allowed=allowed, excluded=excluded,
                                          options=options)
        keep = ids[0] >= 0
        return ids[0][keep], distances[0][keep]

    def search_many(self, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
                    excluded: np.ndarray | None = None, options: SearchParams = SearchParams()
                    ) -> tuple[np.ndarray, np.ndarray]:
        """Each query's `k` closest row ids and distances, closest first, in one FAISS call for them all:
        (ids, distances), both (queries, k), an id of -1 where fewer than `k` were found."""
        q = prepare(queries, self.params.metric)
        selector = _selector(allowed, excluded)
        params = self._search_params(selector, options)
        with self._lock.reading():  # `k` is all it fetches: a refine's `limit * refine_factor` is the caller's
            scores, ids = self._index.search(q, k, params=params) if params else self._index.search(q, k)
            recent = self._recent
            if recent is not None and recent.ntotal:
                flat = faiss.SearchParameters(sel=selector) if selector else None
                more_scores, more_ids = recent.search(q, k, params=flat) if flat else recent.search(q, k)
                scores, ids = np.hstack([scores, more_scores]), np.hstack([ids, more_ids])
        distances = to_distance(scores, self.params.metric)
        if recent is not None:  # the two results merged: closest first, the missing (-1) last
            ranked = np.where(ids >= 0, distances, np.inf)
            order = np.argsort(ranked, axis=1, kind="stable")[:, :k]
            ids, distances = np.take_along_axis(ids, order, 1), np.take_along_axis(distances, order, 1)
        return ids, distances

    def _search_params(self, selector: Any, options: SearchParams) -> Any:
        if selector is not None:
            return self._make_search_params(selector, options)
        key = (options.nprobes, options.ef)  # without a selector, one (read-only) object serves every search
        found = self._shared_params.get(key)
        if found is None:
            found = self._make_search_params(None, options)
            if len(self._shared_params) < 64:
                self._shared_params[key] = found
        return found

    def _make_search_params(self, selector: Any, options: SearchParams) -> Any:
        kind = self.params.kind
        if kind in ("IVF_FLAT", "IVF_PQ"):
            inner = faiss.extract_index_ivf(self._index)
            nprobe = min(options.nprobes, inner.nlist) if options.nprobes else max(1, min(inner.nlist, 20))
            return faiss.SearchParametersIVF(sel=selector, nprobe=nprobe) if selector else \
                faiss.SearchParametersIVF(nprobe=nprobe)
        if kind == "HNSW":
            ef = options.ef or 64
            return faiss.SearchParametersHNSW(sel=selector, efSearch=ef) if selector else \
                faiss.SearchParametersHNSW(efSearch=ef)
        return faiss.SearchParameters(sel=selector) if selector else None

    def to_bytes(self) -> memoryview:
        """The index serialized, as a view of FAISS's own buffer (an index can be gigabytes: no second copy)."""
        self.fold()
        with self._lock.reading():
            return memoryview(faiss.serialize_index(self._index))

    @classmethod
    def from_bytes(cls, params: IndexParams, data: bytes | bytearray | memoryview, dims: int) -> "VectorIndex":
        """An index read from bytes piece by piece (FAISS's deserialize_index would first copy them all into a
        vector of its own: one more copy of a 1.5 GB index in memory at once, and a third of the load)."""
        view = memoryview(data).cast("B")
        position = 0

        def piece(size: int) -> bytes:
            nonlocal position
            found = view[position:position + size].tobytes()
            position += len(found)
            return found

        try:
            return cls(params, faiss.read_index(faiss.PyCallbackIOReader(piece, 1 << 22)), dims)
        finally:
            view.release()

    @classmethod
    def read(cls, params: IndexParams, path: Path, dims: int) -> "VectorIndex":
        """An index served from its (verified) file mapped into memory, its vectors and codes not copied: a
        1M-row IVF_FLAT index (1.5 GB) is searchable in 0.13 s, where reading it took 1.3 s. FAISS cannot add
        to a mapped index (it aborts the process), so a copy it owns is read beside, on one thread, and takes
        the mapped one's place when ready; an `add` that comes first waits for it."""
        with open(path, "rb") as f:  # the copy reads this open file: a cleanup may unlink the path meanwhile
            mapped = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)
            index = cls(params, mapped, dims)
            index._mapped = True
            source = os.dup(f.fileno())
        index._owned = threading.Thread(target=index._read_owned, args=(source,), name="index-copy", daemon=True)
        index._owned.start()
        return index

    def _read_owned(self, fd: int) -> None:
        try:
            owned = faiss.read_index(f"/proc/self/fd/{fd}")
        except RuntimeError:  # the copy is then made from the mapped index itself, when something adds
            log.exception("an index file mapped for serving could not be read again")
            return
        finally:
            os.close(fd)
        with self._lock.writing():  # nothing was added to the mapped index: `add` waits for this thread
            self._index, self._mapped = owned, False

    def _own(self) -> None:
        """Waits for the owned copy of a mapped index (before anything mutates it); if reading it failed,
        makes it from the mapped index (serialized and read back), never adding to a mapped one."""
        pending = self._owned
        if pending is not None:
            pending.join()
            self._owned = None
        if self._mapped:
            with self._lock.writing():
                if self._mapped:
                    self._index = faiss.deserialize_index(faiss.serialize_index(self._index))
                    self._mapped = False


def exact_search(vectors: np.ndarray, row_ids: np.ndarray, query: np.ndarray, k: int, metric: str
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Brute force over the given rows (FAISS's flat kernels), closest first."""
    if len(row_ids) == 0:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
    data = prepare(vectors, metric)
    q = prepare(query.reshape(1, -1), metric)
    if metric == "l2":
        scores, positions = faiss.knn(q, data, min(k, len(data)))
    else:
        scores, positions = faiss.knn(q, data, min(k, len(data)), metric=faiss.METRIC_INNER_PRODUCT)
    keep = positions[0] >= 0
    return np.asarray(row_ids)[positions[0][keep]], to_distance(scores[0][keep], metric)


BITMAP_FROM = 4096  # allowed sets this large are a bitmap over the row ids (O(1) per test, ~1 ms per 1M ids)


def _selector(allowed: np.ndarray | None, excluded: np.ndarray | None) -> Any:
    if allowed is not None:
        ids = np.ascontiguousarray(allowed, dtype=np.int64)
        if excluded is not None and len(excluded):
            ids = np.setdiff1d(ids, excluded)
        if len(ids) >= BITMAP_FROM:
            bits = np.zeros(int(ids.max()) + 1, dtype=bool)
            bits[ids] = True
            packed = np.packbits(bits, bitorder="little")
            selector = faiss.IDSelectorBitmap(len(packed), faiss.swig_ptr(packed))
            selector.referenced_objects = [packed]  # the bitmap lives as long as the selector
            return selector
        return faiss.IDSelectorBatch(ids)
    if excluded is not None and len(excluded):
        return faiss.IDSelectorNot(faiss.IDSelectorBatch(np.ascontiguousarray(excluded, dtype=np.int64)))
    return None


def _training_rows(kind: str, nlist: int) -> int:
    """FAISS trains IVF centroids on at most 256 points each, and PQ codebooks on at most 256 × 256."""
    return max(256 * nlist, 65_536) if kind == "IVF_PQ" else 256 * nlist


def _default_sub_vectors(dims: int) -> int:
    for m in (dims // 8, dims // 4, dims // 2, dims):
        if m >= 1 and dims % m == 0:
            return m
    return 1
