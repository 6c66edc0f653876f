/**
 * vectorlane's TypeScript client: LanceDB's TypeScript API (`connect`, tables, queries, embedding functions)
 * over the vectorlane store's gRPC API. Hosted functions are computed by the store; functions registered
 * here (`@register`) are computed in this process.
 */
export { connect, Connection, DEFAULT_URI, type CreateTableOptions, type TableFunction } from "./connection.js";
export { Table, type FtsToken, type AddOptions, type UpdateOptions, type IndexInfo, type VersionInfo, type OnBadVectors, type OptimizeStats,
  type TableStats, type Tags } from "./table.js";
export { MatchQuery, PhraseQuery, BoostQuery, MultiMatchQuery, BooleanQuery, Occur, type FullTextQuery } from "./full_text.js";
export * as rerankers from "./rerankers.js";
export { Query, VectorQuery, DEFAULT_LIMIT, type ColumnOrdering } from "./query.js";
export { MergeInsertBuilder, type MergeResult } from "./merge.js";
export { Index, type DistanceType, type FtsOptions } from "./index_config.js";
export { Operation } from "./operation.js";
export { type ConnectionOptions, type TlsOptions } from "./transport.js";
export * from "./errors.js";
export * as embeddings from "./embeddings/index.js";
