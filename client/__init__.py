"""vectorlane: LanceDB's embedding functions API over gRPC.

The client library (connect, get_registry, LanceModel, tables and queries) arrives with the storage
service; today this package carries the generated protobuf stubs of the contract in protos/:
`vectorlane.embed.v1` (EmbeddingService).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
