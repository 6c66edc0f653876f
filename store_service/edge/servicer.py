"""StorageService over gRPC: each method converts the request, calls the core, converts back. Requests that
carry bulk rows arrive decoded by `DECODERS` (`vectorlane.wire.Decoded`: the Arrow IPC bytes left in place).

No error handling here: domain exceptions travel to `rpc_common.error_mapping.ErrorMappingInterceptor`.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator

import grpc
import pyarrow as pa

from rpc_common.admission import still_wanted
from store_service.edge import conversions
from store_service.core import Change, StoreCore
from store_service.embedder import Deadline
from store_service.errors import InvalidArgument
from store_service.ingest.rows import Batch
from store_service.edge.metrics import StoreMetrics
from vectorlane_contract import wire
from vectorlane_contract.store.v1 import store_service_pb2 as pb
from vectorlane_contract.store.v1 import store_service_pb2_grpc as pb_grpc
from vectorlane_contract.wire import Decoded


def _deadline(context: grpc.ServicerContext) -> Deadline:
    return Deadline(context.time_remaining())


def _first(requests: Iterator[Decoded], what: str) -> Decoded:
    first = next(requests, None)
    if first is None or not first.message.table:
        raise InvalidArgument(f"the first {what} message must name the table", reason="MISSING_TABLE")
    return first


DECODERS = {  # requests with bulk rows: the Arrow IPC payload stays in the received bytes (vectorlane.wire)
    "CreateTable": lambda data: wire.decode(data, pb.CreateTableRequest, "rows"),
    "AddRows": lambda data: wire.decode(data, pb.AddRowsRequest, "rows"),
    "MergeInsert": lambda data: wire.decode(data, pb.MergeInsertRequest, "rows"),
}


class StorageServicer(pb_grpc.StorageServiceServicer):
    def __init__(self, core: StoreCore, metrics: StoreMetrics | None = None) -> None:
        self._core = core
        self._metrics = metrics or StoreMetrics()

    def _changed(self, operation: str, change: Change) -> None:
        for kind, count in (("insert", change.inserted), ("update", change.updated), ("delete", change.deleted)):
            if count:
                self._metrics.rows_changed.labels(f"{operation}:{kind}").inc(count)

    # ----- tables -------------------------------------------------------------------------------------
    def CreateTable(self, decoded: Decoded, context: grpc.ServicerContext) -> pb.CreateTableResponse:
        request: pb.CreateTableRequest = decoded.message
        deadline = _deadline(context)
        self._core.check_name(request.name)  # before anything else is looked at
        functions = conversions.function_configs(request.embedding_functions)
        schema = None
        if request.HasField("schema") and (request.schema.fields or request.schema.arrow_schema):
            schema = conversions.schema_from_proto(request.schema, self._core.function_dimensions(functions,
                                                                                                   deadline))
        rows = conversions.request_rows(decoded, schema)
        bad = conversions.bad_vectors(request.on_bad_vectors, request.fill_value)
        info = self._core.create_table(request.name, schema, functions, rows,
                                       mode=conversions.create_mode(request.mode), bad=bad, deadline=deadline)
        return pb.CreateTableResponse(table=conversions.table_to_proto(info))

    def GetTable(self, request: pb.GetTableRequest, context: grpc.ServicerContext) -> pb.GetTableResponse:
        return pb.GetTableResponse(table=conversions.table_to_proto(self._core.describe_table(request.name)))

    def ListTables(self, request: pb.ListTablesRequest, context: grpc.ServicerContext) -> pb.ListTablesResponse:
        names, next_token = self._core.list_tables(request.page_size, request.page_token)
        return pb.ListTablesResponse(names=names, next_page_token=next_token)

    def DropTable(self, request: pb.DropTableRequest, context: grpc.ServicerContext) -> pb.DropTableResponse:
        self._core.drop_table(request.name)
        return pb.DropTableResponse()

    # ----- rows ---------------------------------------------------------------------------------------
    def AddRows(self, request_iterator: Iterator[Decoded], context: grpc.ServicerContext) -> pb.AddRowsResponse:
        decoded = _first(request_iterator, "AddRows")
        first: pb.AddRowsRequest = decoded.message
        schema = self._core.table_schema(first.table)
        batches = (Batch(conversions.request_rows(m, schema), m.message.images)
                   for m in itertools.chain([decoded], request_iterator))
        change = self._core.add(first.table, batches, mode=conversions.add_mode(first.mode),
                                bad=conversions.bad_vectors(first.on_bad_vectors, first.fill_value),
                                deadline=_deadline(context),
                                still_wanted=still_wanted(request_iterator, context))
        self._changed("add", change)
        return pb.AddRowsResponse(version=change.version, rows_added=change.inserted)

    def Search(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> pb.SearchResponse:
        if request.order_by:
            orderings = conversions.orderings(request.order_by)
            wider, limit, extra = conversions.search_for_ordering(request, orderings)
            rows, version = self._found(wider, context)
            rows = self._core.in_order(rows, orderings, offset=request.offset, limit=limit, drop=extra)
        else:
            rows, version = self._found(request, context)
        return pb.SearchResponse(rows=conversions.arrow_to_rows(rows, request.format), version=version)

    def ExplainSearch(self, request: pb.ExplainSearchRequest, context: grpc.ServicerContext
                      ) -> pb.ExplainSearchResponse:
        search = request.search
        kind = conversions.search_kind(search, explained=True)
        has_query, has_text = kind in ("vector", "hybrid"), kind in ("full_text", "hybrid")
        text = None
        if has_text:
            text = (conversions.full_text_query(search.full_text),
                    conversions.hybrid_text_search(search) if has_query else conversions.text_search(search))
        plan = self._core.explain_search(
            search.table, query=conversions.search_query(search) if has_query else None,
            vector=conversions.vector_search(search) if has_query else None, text=text,
            fusion=conversions.fusion(search) if has_query and has_text else None,
            rerank=conversions.reranking(search), version=search.version, verbose=request.verbose,
            analyze=request.analyze, deadline=_deadline(context))
        return pb.ExplainSearchResponse(plan=plan)

    def _found(self, request: pb.SearchRequest, context: grpc.ServicerContext) -> tuple[pa.Table, int]:
        kind = conversions.search_kind(request)
        if kind == "hybrid":
            return self._core.search_hybrid(
                request.table, conversions.search_query(request), conversions.vector_search(request),
                conversions.full_text_query(request.full_text), conversions.hybrid_text_search(request),
                conversions.fusion(request), version=request.version, deadline=_deadline(context),
                rerank=conversions.reranking(request))
        if kind == "full_text":
            return self._core.search_text(request.table, conversions.full_text_query(request.full_text),
                                          conversions.text_search(request), version=request.version,
                                          computed=conversions.computed_columns(request.computed_columns),
                                          rerank=conversions.reranking(request), deadline=_deadline(context))
        return self._core.search(request.table, conversions.search_query(request), conversions.vector_search(request),
                                 version=request.version, deadline=_deadline(context),
                                 computed=conversions.computed_columns(request.computed_columns),
                                 rerank=conversions.reranking(request))

    def ReadRows(self, request: pb.ReadRowsRequest, context: grpc.ServicerContext) -> pb.ReadRowsResponse:
        rows, version, next_offset = self._core.read(
            request.table, where=request.where, select=tuple(request.select), limit=request.limit,
            offset=request.offset, version=request.version, as_json=request.format != pb.ROW_FORMAT_ARROW,
            computed=conversions.computed_columns(request.computed_columns), **conversions.taken_rows(request),
            orderings=conversions.orderings(request.order_by))
        return pb.ReadRowsResponse(rows=conversions.arrow_to_rows(rows, request.format), version=version,
                                   next_offset=next_offset)

    def CountRows(self, request: pb.CountRowsRequest, context: grpc.ServicerContext) -> pb.CountRowsResponse:
        return pb.CountRowsResponse(count=self._core.count(request.table, where=request.where,
                                                           version=request.version))

    def DeleteRows(self, request: pb.DeleteRowsRequest, context: grpc.ServicerContext) -> pb.DeleteRowsResponse:
        change = self._core.delete(request.table, request.where)
        self._changed("delete", change)
        return pb.DeleteRowsResponse(version=change.version, rows_deleted=change.deleted)

    def UpdateRows(self, request: pb.UpdateRowsRequest, context: grpc.ServicerContext) -> pb.UpdateRowsResponse:
        values = conversions.update_values(request, self._core.table_schema(request.table))
        change = self._core.update(request.table, request.where, values, expressions=dict(request.values_sql),
                                   deadline=_deadline(context))
        self._changed("update", change)
        return pb.UpdateRowsResponse(version=change.version, rows_updated=change.updated)

    def MergeInsert(self, request_iterator: Iterator[Decoded], context: grpc.ServicerContext
                    ) -> pb.MergeInsertResponse:
        decoded = _first(request_iterator, "MergeInsert")
        first: pb.MergeInsertRequest = decoded.message
        schema = self._core.table_schema(first.table)
        batches = (Batch(conversions.request_rows(m, schema), m.message.images)
                   for m in itertools.chain([decoded], request_iterator))
        change = self._core.merge_insert(first.table, batches, conversions.merge_rules(first),
                                         bad=conversions.bad_vectors(first.on_bad_vectors, first.fill_value),
                                         deadline=_deadline(context),
                                         still_wanted=still_wanted(request_iterator, context))
        self._changed("merge_insert", change)
        return pb.MergeInsertResponse(version=change.version, rows_inserted=change.inserted,
                                      rows_updated=change.updated, rows_deleted=change.deleted)

    # ----- indexes ------------------------------------------------------------------------------------
    def CreateIndex(self, request: pb.CreateIndexRequest, context: grpc.ServicerContext) -> pb.CreateIndexResponse:
        if conversions.is_text_index(request):
            return self._create_text_index(request)
        params = conversions.index_params(request)
        outcome = "error"
        with self._metrics.index_build_seconds.time():
            try:
                entry, version = self._core.create_index(request.table, params, vector_column=request.vector_column,
                                                         index_name=request.name, replace=request.replace)
                outcome = "ok"
            finally:
                self._metrics.index_builds.labels(params.kind, outcome).inc()
        return pb.CreateIndexResponse(index=conversions.index_to_proto(entry), version=version)

    def _create_text_index(self, request: pb.CreateIndexRequest) -> pb.CreateIndexResponse:
        params = conversions.text_index_params(request)
        resources = conversions.text_index_resources(request)
        outcome = "error"
        with self._metrics.index_build_seconds.time():
            try:
                entry, version = self._core.create_text_index(request.table, request.column, params,
                                                              index_name=request.name, replace=request.replace,
                                                              resources=resources)
                outcome = "ok"
            finally:
                self._metrics.index_builds.labels("FTS", outcome).inc()
        return pb.CreateIndexResponse(index=conversions.text_index_to_proto(entry, dataclasses.asdict(params)),
                                      version=version)

    def ListIndexes(self, request: pb.ListIndexesRequest, context: grpc.ServicerContext) -> pb.ListIndexesResponse:
        return pb.ListIndexesResponse(indexes=[
            conversions.text_index_to_proto(*e) if isinstance(e, tuple) else conversions.index_to_proto(e)
            for e in self._core.list_indexes(request.table)])

    def DropIndex(self, request: pb.DropIndexRequest, context: grpc.ServicerContext) -> pb.DropIndexResponse:
        return pb.DropIndexResponse(version=self._core.drop_index(request.table, request.name))

    def Tokenize(self, request: pb.TokenizeRequest, context: grpc.ServicerContext) -> pb.TokenizeResponse:
        tokens = self._core.tokenize(request.text, table=request.table, column=request.column,
                                     index_name=request.index_name, version=request.version,
                                     params=None if request.table else conversions.tokenizer_params(request.fts))
        return pb.TokenizeResponse(tokens=[pb.Token(text=t, position=p) for t, p in tokens])

    # ----- versions -----------------------------------------------------------------------------------
    def ListVersions(self, request: pb.ListVersionsRequest, context: grpc.ServicerContext
                     ) -> pb.ListVersionsResponse:
        manifests, next_token = self._core.list_versions(request.table, request.page_size, request.page_token)
        return pb.ListVersionsResponse(versions=[conversions.version_to_proto(m) for m in manifests],
                                       next_page_token=next_token)

    def RestoreVersion(self, request: pb.RestoreVersionRequest, context: grpc.ServicerContext
                       ) -> pb.RestoreVersionResponse:
        return pb.RestoreVersionResponse(version=self._core.restore(request.table, request.version))

    # ----- maintenance --------------------------------------------------------------------------------
    def OptimizeTable(self, request: pb.OptimizeTableRequest, context: grpc.ServicerContext
                      ) -> pb.OptimizeTableResponse:
        return conversions.optimized_to_proto(self._core.optimize(
            request.table, cleanup_older_than=conversions.retention(request.cleanup_older_than_seconds)))

    def GetTableStats(self, request: pb.GetTableStatsRequest, context: grpc.ServicerContext
                      ) -> pb.GetTableStatsResponse:
        return conversions.stats_to_proto(self._core.stats(request.table))

    def CreateTag(self, request: pb.CreateTagRequest, context: grpc.ServicerContext) -> pb.CreateTagResponse:
        version = self._core.create_tag(request.table, request.tag, request.version)
        return pb.CreateTagResponse(tag=pb.Tag(name=request.tag, version=version))

    def ListTags(self, request: pb.ListTagsRequest, context: grpc.ServicerContext) -> pb.ListTagsResponse:
        tags = self._core.tags(request.table)
        return pb.ListTagsResponse(tags=[pb.Tag(name=n, version=v) for n, v in sorted(tags.items())])

    def DeleteTag(self, request: pb.DeleteTagRequest, context: grpc.ServicerContext) -> pb.DeleteTagResponse:
        self._core.delete_tag(request.table, request.tag)
        return pb.DeleteTagResponse()

    # ----- schema evolution ---------------------------------------------------------------------------
    def AddColumns(self, request: pb.AddColumnsRequest, context: grpc.ServicerContext) -> pb.AddColumnsResponse:
        version = self._core.add_columns(request.table, expressions=conversions.column_expressions(request.expressions),
                                         null_columns=conversions.null_columns(request.null_columns))
        return pb.AddColumnsResponse(version=version)

    def MergeColumns(self, request: pb.MergeColumnsRequest, context: grpc.ServicerContext
                     ) -> pb.MergeColumnsResponse:
        other = conversions.merged_table(request)
        return pb.MergeColumnsResponse(version=self._core.merge_columns(request.table, other, request.left_on,
                                                                        request.right_on))

    def AlterColumns(self, request: pb.AlterColumnsRequest, context: grpc.ServicerContext
                     ) -> pb.AlterColumnsResponse:
        version = self._core.alter_columns(request.table, conversions.alterations(request.alterations))
        return pb.AlterColumnsResponse(version=version)

    def DropColumns(self, request: pb.DropColumnsRequest, context: grpc.ServicerContext) -> pb.DropColumnsResponse:
        return pb.DropColumnsResponse(version=self._core.drop_columns(request.table, list(request.columns)))

    # ----- functions ----------------------------------------------------------------------------------
    def DescribeFunction(self, request: pb.DescribeFunctionRequest, context: grpc.ServicerContext
                         ) -> pb.DescribeFunctionResponse:
        config = conversions.function_configs([request.function])[0]
        return conversions.function_info_to_proto(self._core.describe_function(config, _deadline(context)))

    def ComputeEmbeddings(self, request: pb.ComputeEmbeddingsRequest, context: grpc.ServicerContext
                          ) -> pb.ComputeEmbeddingsResponse:
        config = conversions.function_configs([request.function])[0]
        vectors = self._core.compute_embeddings(config, conversions.embedding_inputs(request.inputs),
                                                as_queries=request.query, deadline=_deadline(context))
        return conversions.vectors_to_proto(vectors)

    # ----- embedding-function changes (long-running operations) -------------------------------------
    def AlterEmbeddingFunction(self, request: pb.AlterEmbeddingFunctionRequest, context: grpc.ServicerContext
                               ) -> pb.Operation:
        config = conversions.function_configs([request.function])[0]
        return conversions.operation_to_proto(self._core.functions.alter(request.table, config, _deadline(context)))

    def AddEmbeddingFunction(self, request: pb.AddEmbeddingFunctionRequest, context: grpc.ServicerContext
                             ) -> pb.Operation:
        config = conversions.function_configs([request.function])[0]
        return conversions.operation_to_proto(self._core.functions.add(request.table, config, _deadline(context)))

    def DropEmbeddingFunction(self, request: pb.DropEmbeddingFunctionRequest, context: grpc.ServicerContext
                              ) -> pb.Operation:
        return conversions.operation_to_proto(self._core.functions.drop(request.table, request.vector_column))

    def GetOperation(self, request: pb.GetOperationRequest, context: grpc.ServicerContext) -> pb.Operation:
        return conversions.operation_to_proto(self._core.functions.get(request.name))

    def ListOperations(self, request: pb.ListOperationsRequest, context: grpc.ServicerContext
                       ) -> pb.ListOperationsResponse:
        operations, token = self._core.functions.list(request.table, request.page_size, request.page_token)
        return pb.ListOperationsResponse(operations=[conversions.operation_to_proto(o) for o in operations],
                                         next_page_token=token)

    def CancelOperation(self, request: pb.CancelOperationRequest, context: grpc.ServicerContext) -> pb.Operation:
        return conversions.operation_to_proto(self._core.functions.cancel(request.name))

    def ResumeOperation(self, request: pb.ResumeOperationRequest, context: grpc.ServicerContext) -> pb.Operation:
        return conversions.operation_to_proto(self._core.functions.resume(request.name))
