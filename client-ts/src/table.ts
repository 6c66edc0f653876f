/**
 * A table in the store, LanceDB's `Table`: add rows (a hosted function's vectors are computed by the store, a
 * local function's here), search by text, image or vector, filter, update, delete, merge, index, and move
 * between versions. Every method is one or a few calls to the store; nothing is cached but the description.
 */
import * as arrow from "apache-arrow";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { type JsonObject } from "@bufbuild/protobuf";
import {
  AddMode, BadVectorPolicy, IndexType, Metric, RowFormat, StorageService, VectorSchema, VectorsSchema,
  type AddRowsRequestSchema, type SearchRequest, type EmbeddingFunctionConfig as ConfigMessage, type EmbeddingFunctionConfigSchema,
  type MergeInsertRequestSchema,
  type Table as TableMessage,
} from "./gen/vectorlane/store/v1/store_service_pb.js";
import { schemaFromIpc, tableFromIpc, tableToIpc, toArrowTable, type Data } from "./arrow.js";
import { functionsOf, type EmbeddingFunctionConfig } from "./embeddings/schema.js";
import { EmbeddingFunction } from "./embeddings/embedding_function.js";
import { withLocalVectors } from "./embeddings/local.js";
import { Index, type DistanceType } from "./index_config.js";
import { MergeInsertBuilder, type MergeResult } from "./merge.js";
import { Operation } from "./operation.js";
import { Query, VectorQuery } from "./query.js";
import type { FullTextQuery } from "./full_text.js";
import type { Transport } from "./transport.js";
import { everyPage } from "./paging.js";

export type OnBadVectors = "error" | "drop" | "fill" | "null";
const BAD_VECTORS: Record<OnBadVectors, BadVectorPolicy> = { error: BadVectorPolicy.ERROR, drop: BadVectorPolicy.DROP,
  fill: BadVectorPolicy.FILL, null: BadVectorPolicy.NULL };
const ROWS_PER_MESSAGE = 10_000;
const BYTES_PER_MESSAGE = 2 << 20; // the store writes one message while the next arrives

export interface AddOptions {
  /** "append" (default) or "overwrite": replace every row. */
  mode?: "append" | "overwrite";
  /** What happens to rows whose vector is the wrong length, holds NaN, or is missing (LanceDB's policy). */
  onBadVectors?: OnBadVectors;
  fillValue?: number;
  timeout?: number;
}

export interface UpdateOptions {
  where?: string;
  /** Values to set (a column's new value for every matching row). */
  values?: Record<string, unknown> | Map<string, unknown>;
  /** SQL expressions computed from each row's values, e.g. `{ price: "price * 2" }`. */
  valuesSql?: Record<string, string> | Map<string, string>;
}

export interface IndexInfo {
  name: string;
  indexType: string;
  columns: string[];
  distanceType: string;
  /** An FTS index's on-disk format as Lance records it (2; 3 for 256-document blocks). */
  indexVersion?: number;
}

export interface VersionInfo {
  version: number;
  timestamp: Date;
  metadata: Record<string, string>;
}

/** What a merge does with matched, new and vanished rows (MergeInsertRequest's fields). */
export interface MergeRules {
  on: string[];
  whenMatchedUpdateAll: boolean;
  whenMatchedUpdateWhere: string;
  whenNotMatchedInsertAll: boolean;
  whenNotMatchedBySourceDelete: boolean;
  whenNotMatchedBySourceDeleteWhere: string;
}

/** A token an FTS tokenizer keeps: its text and position (counting removed tokens such as stop words). */
export interface FtsToken {
  text: string;
  position: number;
}

export interface ReadOptions {
  where: string;
  select: string[];
  limit: number;
  offset: number;
  computed: { name: string; expression: string }[];
  orderBy?: { column: string; descending: boolean; nullsFirst: boolean }[];
  timeout?: number;
}

const INDEX_NAMES: Record<number, string> = { [IndexType.FLAT]: "FLAT", [IndexType.IVF_FLAT]: "IVF_FLAT",
  [IndexType.IVF_PQ]: "IVF_PQ", [IndexType.HNSW]: "HNSW", [IndexType.FTS]: "FTS" };

export interface OptimizeStats {
  version: number;
  compaction: { fragmentsRemoved: number; fragmentsAdded: number };
  prune: { oldVersionsRemoved: number; bytesRemoved: number };
  indexesCaughtUp: number;
}

export interface TableStats {
  totalBytes: number;
  numRows: number;
  numIndices: number;
  fragmentStats: { numFragments: number; numSmallFragments: number };
}

export interface Tags {
  create(tag: string, version: number): Promise<void>;
  list(): Promise<Record<string, { version: number }>>;
  delete(tag: string): Promise<void>;
  getVersion(tag: string): Promise<number>;
}

function isFullTextQuery(value: unknown): value is FullTextQuery {
  return typeof value === "object" && value !== null && typeof (value as FullTextQuery).toMessage === "function";
}
const METRIC_NAMES: Record<number, DistanceType> = { [Metric.L2]: "l2", [Metric.COSINE]: "cosine", [Metric.DOT]: "dot" };

function entries<V>(value: Record<string, V> | Map<string, V> | undefined): [string, V][] {
  return value === undefined ? [] : value instanceof Map ? [...value] : Object.entries(value);
}

/** A plain value as a google.protobuf.Value (JSON). */
function jsonValue(value: unknown): JsonObject[string] {
  if (ArrayBuffer.isView(value)) return Array.from(value as unknown as ArrayLike<number>);
  if (typeof value === "bigint") return Number(value);
  if (value instanceof Date) return value.toISOString();
  return value as JsonObject[string];
}

export class Table {
  /** The version this handle reads, when checked out (0: the latest). */
  checkedOut = 0n;
  private open = true;

  constructor(readonly transport: Transport, private description: TableMessage) {}

  get name(): string {
    return this.description.name;
  }

  isOpen(): boolean {
    return this.open;
  }

  close(): void {
    this.open = false;
  }

  display(): string {
    return `Table(${this.name})`;
  }

  /** The table's Arrow schema (with its functions in the metadata), as of the last call that read it. */
  arrowSchema(): arrow.Schema {
    return schemaFromIpc(this.description.schema?.arrowSchema ?? new Uint8Array());
  }

  columnNames(): string[] {
    return this.arrowSchema().fields.map((f) => f.name);
  }

  async schema(): Promise<arrow.Schema> {
    await this.refresh();
    return this.arrowSchema();
  }

  /** Its embedding functions by vector column (local ones made from this process's registry). */
  embeddingFunctions(): Map<string, EmbeddingFunctionConfig> {
    return new Map(functionsOf(this.arrowSchema()).map((c) => [c.vectorColumn, c]));
  }

  private async refresh(): Promise<void> {
    this.description = (await this.transport.unary(StorageService.method.getTable, { name: this.name })).table!;
  }

  async version(): Promise<number> {
    if (this.checkedOut) return Number(this.checkedOut);
    await this.refresh();
    return Number(this.description.version);
  }

  async countRows(filter?: string): Promise<number> {
    const reply = await this.transport.unary(StorageService.method.countRows,
      { table: this.name, where: filter ?? "", version: this.checkedOut });
    return Number(reply.count);
  }

  // ----- rows -----------------------------------------------------------------------------------------
  private writable(what: string): void {
    if (this.checkedOut) throw new Error(`${what}: the table is checked out at version ${this.checkedOut}; checkoutLatest() first`);
  }

  /** The rows as request messages: `first` carries the options and the first part. */
  private *messages<M extends object>(rows: arrow.Table, first: M): Generator<M> {
    const perRow = rows.numRows ? Math.max(1, tableToIpc(rows.slice(0, Math.min(rows.numRows, 64))).length / Math.min(rows.numRows, 64)) : 1;
    const step = Math.max(1, Math.min(ROWS_PER_MESSAGE, Math.floor(BYTES_PER_MESSAGE / perRow)));
    let head: object = first;
    for (let start = 0; start < Math.max(rows.numRows, 1); start += step) {
      yield { ...head, rows: { format: { case: "arrowIpc", value: tableToIpc(rows.slice(start, start + step)) } } } as M;
      head = {};
    }
  }

  /** Adds rows in one new version; a hosted function's missing vectors are computed by the store. */
  async add(data: Data, options: AddOptions = {}): Promise<{ version: number }> {
    this.writable("add");
    const rows = toArrowTable(await withLocalVectors(data, this.embeddingFunctions().values()), this.arrowSchema());
    const first: MessageInitShape<typeof AddRowsRequestSchema> = { table: this.name,
      mode: options.mode === "overwrite" ? AddMode.OVERWRITE : AddMode.APPEND,
      onBadVectors: BAD_VECTORS[options.onBadVectors ?? "error"], fillValue: options.fillValue ?? 0 };
    const reply = await this.transport.upload(StorageService.method.addRows, this.messages(rows, first), options.timeout);
    return { version: Number(reply.version) };
  }

  async delete(predicate: string): Promise<{ version: number; numDeletedRows: number }> {
    this.writable("delete");
    const reply = await this.transport.unary(StorageService.method.deleteRows, { table: this.name, where: predicate });
    return { version: Number(reply.version), numDeletedRows: Number(reply.rowsDeleted) };
  }

  /** LanceDB's forms: `update({ where, values })`, `update({ where, valuesSql })`, or `update(values, { where })`. */
  async update(first: UpdateOptions | Record<string, unknown> | Map<string, unknown>, options: { where?: string } = {}
  ): Promise<{ version: number; rowsUpdated: number }> {
    this.writable("update");
    const given = first instanceof Map || !("values" in first || "valuesSql" in first || "where" in first)
      ? { values: first as Record<string, unknown>, where: options.where } : first as UpdateOptions;
    const values = Object.fromEntries(entries(given.values).map(([k, v]) => [k, jsonValue(v)]));
    const reply = await this.transport.unary(StorageService.method.updateRows, {
      table: this.name, where: given.where ?? "", values: Object.keys(values).length ? values : undefined,
      valuesSql: Object.fromEntries(entries(given.valuesSql)) });
    return { version: Number(reply.version), rowsUpdated: Number(reply.rowsUpdated) };
  }

  mergeInsert(on: string | string[]): MergeInsertBuilder {
    this.writable("mergeInsert");
    return new MergeInsertBuilder(this, Array.isArray(on) ? on : [on]);
  }

  /** What `MergeInsertBuilder.execute` runs. */
  async merge(data: Data, rules: MergeRules, timeout?: number): Promise<MergeResult> {
    const rows = toArrowTable(await withLocalVectors(data, this.embeddingFunctions().values()), this.arrowSchema());
    const reply = await this.transport.upload(StorageService.method.mergeInsert,
      this.messages<MessageInitShape<typeof MergeInsertRequestSchema>>(rows, { table: this.name, ...rules }), timeout);
    return { version: Number(reply.version), numInsertedRows: Number(reply.rowsInserted),
      numUpdatedRows: Number(reply.rowsUpdated), numDeletedRows: Number(reply.rowsDeleted) };
  }

  // ----- queries --------------------------------------------------------------------------------------
  query(): Query {
    return new Query(this);
  }

  /** The nearest rows to a text or image (embedded by the column's function) or a vector; with `queryType`
   * "fts" a full-text search (as "auto" does for a string when the table has no embedding function), with
   * "hybrid" both, fused. */
  search(query: string | FullTextQuery | Uint8Array | ArrayLike<number> | ArrayLike<number>[],
    queryType: "auto" | "vector" | "fts" | "hybrid" = "auto", ftsColumns?: string | string[]): VectorQuery | Query {
    const fullText = typeof query === "string" || isFullTextQuery(query);
    const noFunction = this.embeddingFunctions().size === 0;
    if (queryType === "fts" || isFullTextQuery(query) || (queryType === "auto" && typeof query === "string" && noFunction)) {
      if (!fullText) throw new TypeError("a full-text search takes a string or a query object");
      return new Query(this).fullTextSearch(query as string | FullTextQuery, { columns: ftsColumns });
    }
    if (queryType === "hybrid") {
      if (typeof query !== "string") throw new TypeError("a hybrid search takes the text it embeds and searches");
      return new VectorQuery(this, query).fullTextSearch(query, { columns: ftsColumns });
    }
    return new VectorQuery(this, query as string | Uint8Array | ArrayLike<number> | ArrayLike<number>[]);
  }

  /** One Search call's rows (what the queries run). */
  async searchRows(request: SearchRequest, timeout?: number): Promise<arrow.Table> {
    const reply = await this.transport.unary(StorageService.method.search, request, timeout);
    return tableFromIpc(reply.rows?.format.case === "arrowIpc" ? reply.rows.format.value : new Uint8Array());
  }

  vectorSearch(vector: ArrayLike<number> | ArrayLike<number>[]): VectorQuery {
    return new VectorQuery(this, vector);
  }

  /** The SearchRequest's query for a value: a vector, vectors, bytes of an image, or a text (computed here
   * when the column's function is local). */
  async queryOf(value: unknown, vectorColumn: string): Promise<SearchRequest["query"]> {
    if (typeof value === "string") {
      const configs = [...this.embeddingFunctions().values()];
      const config = vectorColumn ? configs.find((c) => c.vectorColumn === vectorColumn) : configs.length === 1 ? configs[0] : undefined;
      if (config?.function.isLocal) {
        const vector = await (config.function as EmbeddingFunction<unknown>).computeQueryEmbeddings(value);
        return { case: "vector", value: create(VectorSchema, { values: Array.from(vector) }) };
      }
      return { case: "text", value };
    }
    if (value instanceof Uint8Array) return { case: "imageBytes", value };
    if (value === null || value === undefined) throw new TypeError("a vector search needs a query");
    const items = Array.from(value as ArrayLike<unknown>);
    if (items.length && items.every((v) => typeof v === "object" && v !== null)) {
      return { case: "vectors", value: create(VectorsSchema, {
        vectors: items.map((v) => ({ values: Array.from(v as ArrayLike<number>) })) }) };
    }
    return { case: "vector", value: create(VectorSchema, { values: items as number[] }) };
  }

  /** A page-by-page read of the matching rows (what `Query.toArrow` runs). */
  async read(options: ReadOptions): Promise<arrow.Table> {
    const parts: arrow.Table[] = [];
    let offset = options.offset;
    let version = this.checkedOut;
    let got = 0;
    for (;;) {
      const reply = await this.transport.unary(StorageService.method.readRows, {
        table: this.name, where: options.where, select: options.select, limit: options.limit ? options.limit - got : 0,
        offset, version, format: RowFormat.ARROW, computedColumns: options.computed, orderBy: options.orderBy },
        options.timeout);
      const part = tableFromIpc(reply.rows?.format.case === "arrowIpc" ? reply.rows.format.value : new Uint8Array());
      parts.push(part);
      got += part.numRows;
      version = reply.version; // every page after the first reads the version the first one read
      if (!reply.nextOffset || (options.limit && got >= options.limit)) break;
      offset = Number(reply.nextOffset);
    }
    return parts.length === 1 ? parts[0] : parts[0].concat(...parts.slice(1));
  }

  /** The whole table (or the checked-out version). */
  async toArrow(): Promise<arrow.Table> {
    return this.query().toArrow();
  }

  // ----- indexes and versions ---------------------------------------------------------------------------
  async createIndex(column: string, options: { config?: Index; replace?: boolean; name?: string } = {}): Promise<void> {
    this.writable("createIndex");
    const fts = options.config?.fts;
    if (fts) {
      await this.transport.unary(StorageService.method.createIndex, { table: this.name, indexType: IndexType.FTS,
        column, fts, replace: options.replace ?? true, name: options.name ?? "" });
      return;
    }
    const plan = (options.config ?? Index.ivfPq()).plan;
    await this.transport.unary(StorageService.method.createIndex, {
      table: this.name, vectorColumn: column, indexType: plan.indexType, metric: plan.metric,
      numPartitions: plan.numPartitions, numSubVectors: plan.numSubVectors, m: plan.m, efConstruction: plan.efConstruction,
      replace: options.replace ?? true, name: options.name ?? "" });
  }

  async listIndices(): Promise<IndexInfo[]> {
    const reply = await this.transport.unary(StorageService.method.listIndexes, { table: this.name });
    return reply.indexes.map((i) => ({ name: i.name, indexType: INDEX_NAMES[i.indexType] ?? "UNKNOWN",
      columns: i.columns.length ? [...i.columns] : [i.vectorColumn],
      distanceType: i.indexType === IndexType.FTS ? "" : METRIC_NAMES[i.metric] ?? "l2",
      indexVersion: i.indexVersion || undefined }));
  }

  /** `text`'s tokens as the FTS index on `column` (or named `indexName`; exactly one) keeps them (LanceDB's
   * `tokenize`): the store runs the index's own tokenizer. */
  async tokenize(text: string, options: { column?: string; indexName?: string }): Promise<FtsToken[]> {
    if ((options.column === undefined) === (options.indexName === undefined)) {
      throw new TypeError("Specify exactly one of column or indexName");
    }
    const reply = await this.transport.unary(StorageService.method.tokenize, { text, table: this.name,
      column: options.column ?? "", indexName: options.indexName ?? "", version: this.checkedOut });
    return reply.tokens.map((t) => ({ text: t.text, position: t.position }));
  }

  async dropIndex(name: string): Promise<void> {
    this.writable("dropIndex");
    await this.transport.unary(StorageService.method.dropIndex, { table: this.name, name });
  }

  // ----- maintenance and schema evolution ----------------------------------------------------------------
  /** LanceDB's `optimize()`: compaction, indexes caught up (FTS ones rebuilt over new rows), and versions
   * older than `cleanupOlderThan` (default 7 days) removed. */
  async optimize(options: { cleanupOlderThan?: Date } = {}): Promise<OptimizeStats> {
    this.writable("optimize");
    const seconds = options.cleanupOlderThan ? Math.max(1e-9, (Date.now() - options.cleanupOlderThan.getTime()) / 1000) : 0;
    const reply = await this.transport.unary(StorageService.method.optimizeTable, { table: this.name,
      cleanupOlderThanSeconds: seconds });
    return { version: Number(reply.version), compaction: { fragmentsRemoved: Number(reply.fragmentsRemoved),
      fragmentsAdded: Number(reply.fragmentsAdded) }, prune: { oldVersionsRemoved: Number(reply.versionsRemoved),
      bytesRemoved: Number(reply.bytesRemoved) }, indexesCaughtUp: Number(reply.indexesCaughtUp) };
  }

  /** LanceDB's `stats()`. */
  async stats(): Promise<TableStats> {
    const reply = await this.transport.unary(StorageService.method.getTableStats, { table: this.name });
    return { totalBytes: Number(reply.totalBytes), numRows: Number(reply.numRows), numIndices: Number(reply.numIndices),
      fragmentStats: { numFragments: Number(reply.numFragments), numSmallFragments: Number(reply.numSmallFragments) } };
  }

  /** Columns computed from SQL expressions of each row (`[{ name, valueSql }]`). */
  async addColumns(columns: { name: string; valueSql: string }[]): Promise<{ version: number }> {
    this.writable("addColumns");
    const reply = await this.transport.unary(StorageService.method.addColumns, { table: this.name,
      expressions: columns.map((c) => ({ name: c.name, expression: c.valueSql })) });
    await this.refresh();
    return { version: Number(reply.version) };
  }

  /** Renames, nullability or type casts of columns (`[{ path, rename?, nullable?, dataType? }]`). */
  async alterColumns(alterations: { path: string; rename?: string; nullable?: boolean; dataType?: string }[]
  ): Promise<{ version: number }> {
    this.writable("alterColumns");
    const reply = await this.transport.unary(StorageService.method.alterColumns, { table: this.name,
      alterations: alterations.map((a) => ({ path: a.path, rename: a.rename ?? "", nullable: a.nullable,
        dataType: a.dataType ?? "" })) });
    await this.refresh();
    return { version: Number(reply.version) };
  }

  async dropColumns(columns: string[]): Promise<{ version: number }> {
    this.writable("dropColumns");
    const reply = await this.transport.unary(StorageService.method.dropColumns, { table: this.name, columns });
    await this.refresh();
    return { version: Number(reply.version) };
  }

  /** LanceDB's `tags`: `create(tag, version)`, `list()`, `delete(tag)`, `getVersion(tag)`. */
  get tags(): Tags {
    const table = this;
    return {
      async create(tag: string, version: number): Promise<void> {
        await table.transport.unary(StorageService.method.createTag, { table: table.name, tag, version: BigInt(version) });
      },
      async list(): Promise<Record<string, { version: number }>> {
        const reply = await table.transport.unary(StorageService.method.listTags, { table: table.name });
        return Object.fromEntries(reply.tags.map((t) => [t.name, { version: Number(t.version) }]));
      },
      async delete(tag: string): Promise<void> {
        await table.transport.unary(StorageService.method.deleteTag, { table: table.name, tag });
      },
      async getVersion(tag: string): Promise<number> {
        const found = (await this.list())[tag];
        if (!found) throw new RangeError(`table ${table.name} has no tag ${JSON.stringify(tag)}`);
        return found.version;
      },
    };
  }

  async listVersions(): Promise<VersionInfo[]> {
    return everyPage("ListVersions", async (pageToken) => {
      const reply = await this.transport.unary(StorageService.method.listVersions, { table: this.name, pageSize: 1000, pageToken });
      return { items: reply.versions.map((v): VersionInfo => ({ version: Number(v.version),
        timestamp: new Date(v.timestamp * 1000), metadata: { operation: v.operation, num_rows: String(v.numRows) } })),
        nextPageToken: reply.nextPageToken };
    });
  }

  /** Reads `version` (a number, or a tag's name) from now on, read-only, until `checkoutLatest()`. */
  async checkout(version: number | string): Promise<void> {
    if (typeof version === "string") {
      const tags = await this.transport.unary(StorageService.method.listTags, { table: this.name });
      const tag = tags.tags.find((t) => t.name === version);
      if (!tag) throw new RangeError(`table ${this.name} has no tag ${JSON.stringify(version)}`);
      this.checkedOut = tag.version;
    } else {
      const known = await this.listVersions();
      if (!known.some((v) => v.version === version)) throw new RangeError(`table ${this.name} has no version ${version}`);
      this.checkedOut = BigInt(version);
    }
  }

  async checkoutLatest(): Promise<void> {
    this.checkedOut = 0n;
    await this.refresh();
  }

  /** Makes the checked-out version (or `version`) the latest, as a new version. */
  async restore(version?: number): Promise<void> {
    const target = version ?? Number(this.checkedOut);
    if (!target) throw new Error("restore: check out a version first, or name one");
    await this.transport.unary(StorageService.method.restoreVersion, { table: this.name, version: BigInt(target) });
    await this.checkoutLatest();
  }

  // ----- embedding functions (long-running operations) -------------------------------------------------
  /** Gives `vectorColumn` another function; the store re-embeds every row in the background and switches
   * the table in one version. The Operation can be waited on. */
  async alterEmbeddingFunction(vectorColumn: string, func: EmbeddingFunction<unknown>,
    options: { sourceColumn?: string; wait?: boolean } = {}): Promise<Operation> {
    const current = this.embeddingFunctions().get(vectorColumn);
    const sourceColumn = options.sourceColumn ?? current?.sourceColumn;
    if (!sourceColumn) throw new TypeError(`${vectorColumn} has no function yet: give its sourceColumn`);
    const reply = await this.transport.unary(StorageService.method.alterEmbeddingFunction, { table: this.name,
      function: configMessage({ function: func, sourceColumn, vectorColumn }) });
    const operation = new Operation(this.transport, reply);
    if (options.wait) {
      await operation.wait();
      await this.refresh();
    }
    return operation;
  }
}

export function configMessage(config: EmbeddingFunctionConfig): MessageInitShape<typeof EmbeddingFunctionConfigSchema> {
  return { name: config.function.functionName, model: config.function.toJSON() as JsonObject,
    sourceColumn: config.sourceColumn, vectorColumn: config.vectorColumn };
}

export type { ConfigMessage };
