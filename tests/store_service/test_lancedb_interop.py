"""LanceDB interoperability, both ways, with the real `lancedb` package: its tables and vectorlane's are the same
Lance datasets in the same layout, and the embedding functions travel in the same schema metadata."""

from __future__ import annotations

import json
import zlib

import lancedb
import numpy as np
import pyarrow as pa
import pytest
from lancedb.embeddings import TextEmbeddingFunction, register
from lancedb.embeddings import get_registry as lancedb_registry
from lancedb.pydantic import LanceModel, Vector

from tests.store_service.conftest import add, create_docs, json_rows, rows_of
from vectorlane.store.v1 import store_service_pb2 as pb

DOCS = [{"id": i, "text": f"row {i} words", "category": "odd" if i % 2 else "even"} for i in range(30)]


def table_names(db) -> list[str]:
    return sorted(db.list_tables().tables)


def search_ids(stub, table: str, **query) -> list[int]:
    reply = stub.Search(pb.SearchRequest(table=table, limit=3, **query))
    return [int(r.fields["id"].number_value) for r in reply.rows.json.rows]


def test_lancedb_opens_a_vectorlane_data_directory_with_its_functions_and_versions(start_store, embed):
    store = start_store(embed)
    create_docs(store.stub, rows=DOCS)
    create_docs(store.stub, name="other", rows=DOCS[:5])
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="id < 3"))
    add(store.stub, "docs", json_rows([{"id": 100, "text": "a late row", "category": "late"}]))
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_FLAT))
    served = rows_of(store.stub.ReadRows(pb.ReadRowsRequest(table="docs", format=pb.ROW_FORMAT_ARROW)).rows)
    described = store.stub.GetTable(pb.GetTableRequest(name="docs")).table

    db = lancedb.connect(str(store.data_dir))
    assert table_names(db) == ["docs", "other"]
    table = db.open_table("docs")
    assert table.count_rows() == served.num_rows == 28
    theirs = table.to_arrow().select(served.column_names).sort_by("id")
    assert theirs.equals(served.sort_by("id").cast(theirs.schema))
    functions = json.loads(table.schema.metadata[b"embedding_functions"])
    assert [(f["name"], f["source_column"], f["vector_column"]) for f in functions] == [("word-hash", "text", "vector")]
    assert [f["name"] for f in functions] == [f.name for f in described.embedding_functions]
    versions = store.stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions
    assert [v["version"] for v in table.list_versions()] == [v.version for v in versions]
    probe = served.filter(pa.compute.equal(served.column("id"), 7)).column("vector")[0].as_py()
    lancedb_ids = table.search(probe).metric("l2").limit(3).to_arrow().column("id").to_pylist()
    assert lancedb_ids == search_ids(store.stub, "docs", vector=pb.Vector(values=probe))
    assert lancedb_ids[0] == 7


class _LanceDbWordHash(TextEmbeddingFunction):
    """The same hashed bag of words the test embed service hosts as `word-hash`, as a LanceDB function."""

    dims: int = 32

    def ndims(self) -> int:
        return self.dims

    def generate_embeddings(self, texts):
        out = np.zeros((len(texts), self.dims), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in str(text).lower().split():
                rng = np.random.default_rng(zlib.crc32(word.encode()))
                out[i] += rng.standard_normal(self.dims).astype(np.float32)
            norm = np.linalg.norm(out[i])
            out[i] = out[i] / norm if norm else out[i]
        return out


@pytest.fixture
def lancedb_word_hash():
    register("word-hash")(_LanceDbWordHash)
    return lancedb_registry().get("word-hash").create(dims=32)


def test_the_store_serves_a_directory_lancedb_wrote(start_store, embed, tmp_path, lancedb_word_hash):
    function = lancedb_word_hash

    class Doc(LanceModel):
        id: int
        text: str = function.SourceField()
        vector: Vector(32) = function.VectorField()  # type: ignore[valid-type]

    data_dir = tmp_path / "lancedb"
    db = lancedb.connect(str(data_dir))
    theirs = db.create_table("docs", schema=Doc)
    theirs.add([{"id": i, "text": f"row {i} words"} for i in range(20)])
    theirs.add([{"id": i, "text": f"row {i} words"} for i in range(20, 30)])

    store = start_store(embed, data_dir=data_dir)
    assert store.stub.ListTables(pb.ListTablesRequest()).names == ["docs"]
    info = store.stub.GetTable(pb.GetTableRequest(name="docs")).table
    assert info.num_rows == 30 and info.version == theirs.version
    assert [(f.name, f.source_column, f.vector_column) for f in info.embedding_functions] == \
        [("word-hash", "text", "vector")]
    assert search_ids(store.stub, "docs", text="row 7 words")[0] == 7  # its vectors, our query embedding
    versions = [v.version for v in store.stub.ListVersions(pb.ListVersionsRequest(table="docs")).versions]
    assert versions == [v["version"] for v in theirs.list_versions()]
    assert store.stub.CountRows(pb.CountRowsRequest(table="docs", version=versions[-2])).count == 20

    add(store.stub, "docs", json_rows([{"id": 30, "text": "a row the store embedded"}]))  # no vector sent
    store.stub.CreateIndex(pb.CreateIndexRequest(table="docs", index_type=pb.INDEX_TYPE_IVF_FLAT,
                                                 num_partitions=2))
    assert search_ids(store.stub, "docs", text="a row the store embedded")[0] == 30
    store.stub.DeleteRows(pb.DeleteRowsRequest(table="docs", where="id < 5"))

    again = lancedb.connect(str(data_dir)).open_table("docs")  # and LanceDB sees what the store did
    assert again.count_rows() == 26
    stored = again.to_arrow().filter(pa.compute.equal(again.to_arrow().column("id"), 30))
    expected = function.generate_embeddings(["a row the store embedded"])[0]
    np.testing.assert_allclose(stored.column("vector")[0].as_py(), expected, rtol=1e-5, atol=1e-6)
    assert again.search("row 9 words").limit(1).to_arrow().column("id").to_pylist() == [9]
