"""A servicer's gRPC method handlers built from its service descriptor, with per-method request decoders.

What protoc's `add_XServicer_to_server` does, plus two things it cannot: a method may decode its request
with its own function (the store leaves bulk Arrow IPC payloads in the received bytes instead of copying
them through protobuf; see `vectorlane.wire`), and bytes that do not decode reach the method as an
`Undecodable` instead of failing inside gRPC, which would answer INTERNAL ("Exception deserializing
request!"); `rpc_common.error_mapping` answers INVALID_ARGUMENT / MALFORMED_REQUEST for it. The bytes on
the wire are the contract's either way.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import ServiceDescriptor

_KINDS = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


@dataclass(frozen=True)
class Undecodable:
    """A request message whose bytes did not decode."""
    message_type: str
    error: str


def tolerant(decode: Callable[[bytes], Any], message_type: str) -> Callable[[bytes], Any]:
    def decode_or_mark(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception as exc:  # noqa: BLE001 - any decoder failure means the bytes are not a valid message
            return Undecodable(message_type, str(exc) or type(exc).__name__)

    return decode_or_mark


def add_servicer(server: grpc.Server, service: ServiceDescriptor, servicer: object,
                 decoders: Mapping[str, Callable[[bytes], Any]] | None = None) -> None:
    """Registers every method of `service` on `server`, served by `servicer`'s method of the same name;
    `decoders` replaces the request deserializer of the methods it names."""
    decoders = dict(decoders or {})
    unknown = set(decoders) - {m.name for m in service.methods}
    if unknown:
        raise ValueError(f"{service.full_name} has no methods {sorted(unknown)}")
    handlers = {}
    for method in service.methods:
        request = message_factory.GetMessageClass(method.input_type)
        response = message_factory.GetMessageClass(method.output_type)
        make = _KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = make(getattr(servicer, method.name),
                                     request_deserializer=tolerant(decoders.get(method.name, request.FromString),
                                                                   method.input_type.name),
                                     response_serializer=response.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service.full_name, handlers),))
    server.add_registered_method_handlers(service.full_name, handlers)
