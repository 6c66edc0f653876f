"""The store's messages and stubs (`vectorlane_contract.store.v1`, generated from protos/), under the client's
name: `from vectorlane.store.v1 import store_service_pb2` is the contract's very module."""

import sys

from vectorlane_contract.store.v1 import store_service_pb2, store_service_pb2_grpc

sys.modules[f"{__name__}.store_service_pb2"] = store_service_pb2
sys.modules[f"{__name__}.store_service_pb2_grpc"] = store_service_pb2_grpc

__all__ = ["store_service_pb2", "store_service_pb2_grpc"]
