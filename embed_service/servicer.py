"""EmbeddingService over gRPC: each method converts the request, calls the core once, converts back.

No error handling here: domain exceptions travel to `rpc_common.error_mapping.ErrorMappingInterceptor`.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from embed_service import conversions
from embed_service.core import EmbeddingCore
from vectorlane_contract.embed.v1 import embed_service_pb2 as pb
from vectorlane_contract.embed.v1 import embed_service_pb2_grpc as pb_grpc


class EmbeddingServicer(pb_grpc.EmbeddingServiceServicer):
    def __init__(self, core: EmbeddingCore) -> None:
        self._core = core

    def ListFunctions(self, request: pb.ListFunctionsRequest, context: grpc.ServicerContext
                      ) -> pb.ListFunctionsResponse:
        infos, next_token = self._core.list_functions(request.page_size, request.page_token)
        return conversions.list_functions_response(infos, next_token)

    def DescribeFunction(self, request: pb.DescribeFunctionRequest, context: grpc.ServicerContext
                         ) -> pb.DescribeFunctionResponse:
        description = self._core.describe(conversions.function_spec(request.function))
        return conversions.describe_response(description)

    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        dims, future = self._core.submit(conversions.function_spec(request.function),
                                         conversions.embed_inputs(request.inputs),
                                         conversions.purpose(request.purpose), context.is_active)
        return conversions.embed_response(dims, future.result())

    def StreamEmbed(self, request_iterator: Iterator[pb.StreamEmbedRequest], context: grpc.ServicerContext
                    ) -> Iterator[pb.StreamEmbedResponse]:
        items = conversions.stream_items(request_iterator)
        for sequence, dims, vectors in self._core.embed_stream(items, context.is_active):
            yield conversions.stream_response(sequence, dims, vectors)

    def Rerank(self, request: pb.RerankRequest, context: grpc.ServicerContext) -> pb.RerankResponse:
        scores = self._core.rerank(conversions.function_spec(request.function), request.query,
                                   list(request.documents), context.is_active)
        return pb.RerankResponse(scores=scores.tolist())
