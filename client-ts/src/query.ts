/**
 * LanceDB's query builders: `table.query()` (a plain read) and `table.search(q)` / `table.vectorSearch(v)`
 * (the nearest rows, `_distance` added). Setters return the builder; `toArrow()` is the one call, `toArray()`
 * its rows (Arrow rows, as LanceDB gives them), and a query is an async iterable of record batches.
 */
import type * as arrow from "apache-arrow";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { RowFormat, SearchRequestSchema, StorageService } from "./gen/vectorlane/store/v1/store_service_pb.js";
import { tableFromIpc } from "./arrow.js";
import { metricOf, type DistanceType } from "./index_config.js";
import type { Table } from "./table.js";

export const DEFAULT_LIMIT = 10;

export class Query implements AsyncIterable<arrow.RecordBatch> {
  protected whereClause = "";
  protected columns: string[] = [];
  protected computed: Record<string, string> = {};
  protected limitRows: number | undefined;
  protected offsetRows = 0;
  protected rowId = false;

  constructor(protected readonly table: Table) {}

  /** A SQL filter; called again, the filters combine with AND. */
  where(predicate: string): this {
    this.whereClause = this.whereClause ? `(${this.whereClause}) AND (${predicate})` : predicate;
    return this;
  }

  /** Column names, or LanceDB's {name: SQL expression} computed by the store for each result row. */
  select(columns: string[] | Record<string, string> | Map<string, string>): this {
    if (Array.isArray(columns)) {
      this.columns = [...columns];
      this.computed = {};
    } else {
      this.columns = [];
      this.computed = Object.fromEntries(columns instanceof Map ? columns : Object.entries(columns));
    }
    return this;
  }

  limit(limit: number): this {
    if (!Number.isInteger(limit) || limit < 0) throw new RangeError("limit must be a non-negative integer");
    this.limitRows = limit;
    return this;
  }

  offset(offset: number): this {
    if (!Number.isInteger(offset) || offset < 0) throw new RangeError("offset must be a non-negative integer");
    this.offsetRows = offset;
    return this;
  }

  /** Also return `_rowid`, each row's stable id. */
  withRowId(): this {
    this.rowId = true;
    return this;
  }

  /** A search of the nearest rows to `vector`, this query's filter and columns kept. */
  nearestTo(vector: ArrayLike<number> | ArrayLike<number>[]): VectorQuery {
    const search = new VectorQuery(this.table, vector);
    Object.assign(search, { whereClause: this.whereClause, columns: this.columns, computed: this.computed,
      offsetRows: this.offsetRows, rowId: this.rowId, limitRows: this.limitRows ?? DEFAULT_LIMIT });
    return search;
  }

  protected selected(): string[] {
    if (!this.rowId) return this.columns;
    const names = this.columns.length || Object.keys(this.computed).length ? this.columns : this.table.columnNames();
    return [...names, "_rowid"];
  }

  protected computedColumns(): { name: string; expression: string }[] {
    return Object.entries(this.computed).map(([name, expression]) => ({ name, expression }));
  }

  /** Runs the query. */
  async toArrow(options: { timeout?: number } = {}): Promise<arrow.Table> {
    return this.table.read({ where: this.whereClause, select: this.selected(), limit: this.limitRows ?? 0,
      offset: this.offsetRows, computed: this.computedColumns(), timeout: options.timeout });
  }

  /** The rows, as Arrow rows (a row's vector is an Arrow Vector: `.toArray()` gives its numbers). */
  async toArray(options: { timeout?: number } = {}): Promise<arrow.StructRowProxy[]> {
    return (await this.toArrow(options)).toArray();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<arrow.RecordBatch> {
    yield* (await this.toArrow()).batches;
  }
}

export class VectorQuery extends Query {
  private vectorColumn = "";
  private metric = "";
  private probes = 0;
  private refine = 0;
  private ef = 0;
  private post = false;
  private exact = false;

  constructor(table: Table, private readonly queryValue: unknown, vectorColumn?: string) {
    super(table);
    this.vectorColumn = vectorColumn ?? "";
    this.limitRows = DEFAULT_LIMIT;
  }

  /** The vector column to search (needed when the table has several). */
  column(name: string): this {
    this.vectorColumn = name;
    return this;
  }

  distanceType(type: DistanceType | string): this {
    metricOf(type);
    this.metric = type.toLowerCase();
    return this;
  }

  nprobes(nprobes: number): this {
    this.probes = nprobes;
    return this;
  }

  efSearch(ef: number): this {
    this.ef = ef;
    return this;
  }

  refineFactor(factor: number): this {
    this.refine = factor;
    return this;
  }

  /** Filter the nearest rows after the search instead of before it. */
  postfilter(): this {
    this.post = true;
    return this;
  }

  /** Search every row exactly, without the column's index. */
  bypassVectorIndex(): this {
    this.exact = true;
    return this;
  }

  override limit(limit: number): this {
    if (!Number.isInteger(limit) || limit <= 0) throw new RangeError("a vector search needs a positive limit");
    this.limitRows = limit;
    return this;
  }

  /** The SearchRequest this query sends (what grpcurl would send for it, less the query itself). */
  request(): MessageInitShape<typeof SearchRequestSchema> {
    return { table: this.table.name, vectorColumn: this.vectorColumn, where: this.whereClause, postfilter: this.post,
      select: this.selected(), limit: this.limitRows ?? DEFAULT_LIMIT, offset: this.offsetRows,
      metric: this.metric ? metricOf(this.metric) : undefined, nprobes: this.probes, ef: this.ef,
      refineFactor: this.refine, version: this.table.checkedOut, format: RowFormat.ARROW,
      computedColumns: this.computedColumns(), bypassVectorIndex: this.exact };
  }

  override async toArrow(options: { timeout?: number } = {}): Promise<arrow.Table> {
    const request = create(SearchRequestSchema, this.request());
    request.query = await this.table.queryOf(this.queryValue, this.vectorColumn);
    const reply = await this.table.transport.unary(StorageService.method.search, request, options.timeout);
    return tableFromIpc(reply.rows?.format.case === "arrowIpc" ? reply.rows.format.value : new Uint8Array());
  }
}
