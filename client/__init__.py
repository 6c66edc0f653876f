"""vectorlane: LanceDB's embedding functions API over gRPC.

    import vectorlane
    from vectorlane.embeddings import get_registry
    from vectorlane.pydantic import LanceModel, Vector

    db = vectorlane.connect("grpc://localhost:50051")
    func = get_registry().get("sentence-transformers").create()

    class Words(LanceModel):
        text: str = func.SourceField()
        vector: Vector(func.ndims()) = func.VectorField()

    table = db.create_table("words", schema=Words)
    table.add([{"text": "hello world"}, {"text": "goodbye world"}])
    table.search("greetings").limit(1).to_pandas()

`connect_async` gives LanceDB's `AsyncConnection` / `AsyncTable` for asyncio (`await table.version()`).
The generated protobuf stubs of the contract are `vectorlane.store.v1` and `vectorlane.embed.v1`.
"""

from vectorlane.connection import DEFAULT_URI, AsyncConnection, Connection, connect, connect_async
from vectorlane.errors import VectorlaneError
from vectorlane.table import AsyncTable, Table
from vectorlane.tokenizers import tokenize

__version__ = "0.1.0"

__all__ = ["DEFAULT_URI", "AsyncConnection", "AsyncTable", "Connection", "Table", "VectorlaneError", "__version__",
           "connect", "connect_async", "tokenize"]
