"""The embed service's messages and stubs (`vectorlane_contract.embed.v1`, generated from protos/), under the
client's name: `from vectorlane.embed.v1 import embed_service_pb2` is the contract's very module."""

import sys

from vectorlane_contract.embed.v1 import embed_service_pb2, embed_service_pb2_grpc

sys.modules[f"{__name__}.embed_service_pb2"] = embed_service_pb2
sys.modules[f"{__name__}.embed_service_pb2_grpc"] = embed_service_pb2_grpc

__all__ = ["embed_service_pb2", "embed_service_pb2_grpc"]
