"""The vector stores side by side, behind one small interface: durable ingest of precomputed vectors, exact
search, one approximate index and its search settings. Each is used the way its own documentation shows.

- FAISS in-process: the limit (no durability, no process boundary); ingest is not measured for it.
- vectorlane: the store service in its own process, driven through the `vectorlane` client library.
- LanceDB embedded: `lancedb.connect(dir)`, `table.add`, `table.search`, IVF_PQ with refine.
- Chroma embedded: `chromadb.PersistentClient`, `collection.add` (which builds its HNSW as it goes).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from benchmarks.common import DIMS, K, Service

Search = Callable[[np.ndarray], list[int]]


def arrow_parts(data: np.ndarray, size: int) -> list[pa.Table]:
    parts = []
    for start in range(0, len(data), size):
        chunk = np.ascontiguousarray(data[start:start + size])
        parts.append(pa.table({"id": pa.array(np.arange(start, start + len(chunk))),
                               "vector": pa.FixedSizeListArray.from_arrays(pa.array(chunk.reshape(-1)), DIMS)}))
    return parts


class VectorSystem:
    name = ""
    exact_label: str | None = None      # None: the system offers no exact search
    index_label = ""
    ingests = True

    def ingest(self, table: str, parts: list[pa.Table]) -> None:
        raise NotImplementedError

    def drop(self, table: str) -> None:
        raise NotImplementedError

    def exact(self, table: str) -> Search:
        raise NotImplementedError

    def build_index(self, table: str, rows: int) -> None:
        raise NotImplementedError

    def approximate(self, table: str, rows: int) -> list[tuple[str, Search]]:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """The processes whose memory counts for this system, besides the benchmark's own."""
        return []

    def close(self) -> None:
        pass


class Faiss(VectorSystem):
    name = "FAISS in-process"
    exact_label = "IndexFlatL2"
    index_label = "HNSW M16 efC100, ef 64"
    ingests = False

    def __init__(self, work: Path) -> None:
        import faiss

        self.faiss = faiss
        self.data: np.ndarray | None = None
        self.flat: Any = None
        self.hnsw: Any = None

    def ingest(self, table: str, parts: list[pa.Table]) -> None:
        self.data = np.concatenate([p.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, DIMS)
                                    for p in parts])
        self.flat = self.faiss.IndexFlatL2(DIMS)
        self.flat.add(self.data)

    def exact(self, table: str) -> Search:
        return lambda q: self.flat.search(q.reshape(1, -1), K)[1][0].tolist()

    def build_index(self, table: str, rows: int) -> None:
        self.hnsw = self.faiss.IndexHNSWFlat(DIMS, 16)
        self.hnsw.hnsw.efConstruction = 100
        self.hnsw.add(self.data)
        self.hnsw.hnsw.efSearch = 64

    def approximate(self, table: str, rows: int) -> list[tuple[str, Search]]:
        return [("ef 64", lambda q: self.hnsw.search(q.reshape(1, -1), K)[1][0].tolist())]


class LanceStyle(VectorSystem):
    """A system with LanceDB's API (vectorlane's client has the same): one durable version per `add`."""
    db: Any
    columns = ["id"]  # what a search selects

    def __init__(self) -> None:
        self.tables: dict[str, Any] = {}

    def ingest(self, table: str, parts: list[pa.Table]) -> None:
        handle = self.db.create_table(table, schema=parts[0].schema)
        for part in parts:
            handle.add(part)
        self.tables[table] = handle

    def drop(self, table: str) -> None:
        self.db.drop_table(table)

    def exact(self, table: str) -> Search:
        handle = self.tables[table]
        return lambda q: handle.search(q).limit(K).select(self.columns).to_arrow().column("id").to_pylist()

    def exact_batch(self, table: str) -> Callable[[np.ndarray], list[list[int]]]:
        """Several queries in one call (`search([v1, v2, ...])`): each query's ids, by `query_index`."""
        handle = self.tables[table]

        def search(queries: np.ndarray) -> list[list[int]]:
            found = handle.search(list(queries)).limit(K).select(self.columns).to_arrow()
            ids, which = found.column("id").to_pylist(), found.column("query_index").to_pylist()
            grouped: list[list[int]] = [[] for _ in range(len(queries))]
            for i, q in zip(ids, which):
                grouped[q].append(i)
            return grouped
        return search


class Vectorlane(LanceStyle):
    name = "vectorlane (gRPC)"
    exact_label = "flat scan"
    index_label = "HNSW M16 efC100, ef 64"

    def __init__(self, work: Path) -> None:
        import vectorlane

        self.data_dir = work / "vectorlane"
        self.service = Service.start("store_service", VECTORLANE_DATA_DIR=str(self.data_dir),
                                     VECTORLANE_EMBED_ADDRESS="")
        self.db = vectorlane.connect(self.service.target, timeout=7200)
        super().__init__()

    def build_index(self, table: str, rows: int) -> None:
        self.tables[table].create_index(index_type="HNSW", m=16, ef_construction=100)

    def approximate(self, table: str, rows: int) -> list[tuple[str, Search]]:
        handle = self.tables[table]
        return [("ef 64", lambda q: handle.search(q).limit(K).ef(64).select(["id"]).to_arrow().column("id")
                 .to_pylist())]

    def pids(self) -> list[int]:
        return [self.service.process.pid]

    def close(self) -> None:
        self.db.close()
        self.service.stop()


class LanceDB(LanceStyle):
    name = "LanceDB embedded"
    exact_label = "brute force"
    index_label = "IVF_PQ sqrt(n) partitions, 48 sub-vectors, refine"
    columns = ["id", "_distance"]  # LanceDB warns on every search that leaves `_distance` out

    def __init__(self, work: Path) -> None:
        import lancedb

        self.path = work / "lancedb"
        self.db = lancedb.connect(str(self.path))
        super().__init__()

    def build_index(self, table: str, rows: int) -> None:
        self.tables[table].create_index(metric="l2", num_partitions=max(1, int(np.sqrt(rows))), num_sub_vectors=48,
                                        vector_column_name="vector")

    def approximate(self, table: str, rows: int) -> list[tuple[str, Search]]:
        handle = self.tables[table]

        def search(nprobes: int, refine: int) -> Search:
            return lambda q: (handle.search(q).limit(K).nprobes(nprobes).refine_factor(refine)
                              .select(self.columns).to_arrow().column("id").to_pylist())

        return [(f"nprobes {n}, refine {r}", search(n, r)) for n, r in ((20, 5), (50, 10))]


class Chroma(VectorSystem):
    name = "Chroma embedded"
    index_label = "HNSW M16 efC100 (built during add), ef 100"
    BATCH = 5000  # under Chroma's max batch size

    def __init__(self, work: Path) -> None:
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.PersistentClient(path=str(work / "chroma"),
                                                settings=Settings(anonymized_telemetry=False))
        self.collections: dict[str, Any] = {}

    def ingest(self, table: str, parts: list[pa.Table]) -> None:
        collection = self.client.create_collection(f"c-{table}", embedding_function=None,
                                                   metadata={"hnsw:space": "l2"})
        for part in parts:
            ids = [str(i) for i in part.column("id").to_pylist()]
            vectors = part.column("vector").combine_chunks().flatten().to_numpy().reshape(-1, DIMS)
            for start in range(0, len(ids), self.BATCH):
                collection.add(ids=ids[start:start + self.BATCH], embeddings=vectors[start:start + self.BATCH])
        self.collections[table] = collection

    def drop(self, table: str) -> None:
        self.client.delete_collection(f"c-{table}")

    def build_index(self, table: str, rows: int) -> None:
        pass  # Chroma indexes while it ingests

    def approximate(self, table: str, rows: int) -> list[tuple[str, Search]]:
        collection = self.collections[table]

        def search(q: np.ndarray) -> list[int]:
            found = collection.query(query_embeddings=q.reshape(1, -1), n_results=K, include=[])
            return [int(i) for i in found["ids"][0]]

        return [("ef 100", search)]


SYSTEMS: dict[str, type[VectorSystem]] = {"faiss": Faiss, "vectorlane": Vectorlane, "lancedb": LanceDB,
                                          "chroma": Chroma}


def available(key: str) -> bool:
    import importlib.util

    module = {"faiss": "faiss", "vectorlane": "vectorlane", "lancedb": "lancedb", "chroma": "chromadb"}[key]
    return importlib.util.find_spec(module) is not None
