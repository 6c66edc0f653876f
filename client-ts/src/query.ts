/**
 * LanceDB's query builders: `table.query()` (a plain read) and `table.search(q)` / `table.vectorSearch(v)`
 * (the nearest rows, `_distance` added). Setters return the builder; `toArrow()` is the one call, `toArray()`
 * its rows (Arrow rows, as LanceDB gives them), and a query is an async iterable of record batches.
 */
import type * as arrow from "apache-arrow";
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FusionSchema, RowFormat, SearchRequestSchema } from "./gen/vectorlane/store/v1/store_service_pb.js";
import { fullTextMessage, type FullTextQuery } from "./full_text.js";
import { metricOf, type DistanceType } from "./index_config.js";
import { RRFReranker, type Reranker } from "./rerankers.js";
import type { Table } from "./table.js";

/** A full-text search's query: a string (its words, in `columns` or every FTS-indexed column) or an object. */
interface TextSearch {
  query: string | FullTextQuery;
  columns: string[];
}

export const DEFAULT_LIMIT = 10;

/** One column of `orderBy`: ascending unless said, nulls last unless said (LanceDB's ColumnOrdering). */
export interface ColumnOrdering {
  columnName: string;
  ascending?: boolean;
  nullsFirst?: boolean;
}

export class Query implements AsyncIterable<arrow.RecordBatch> {
  protected whereClause = "";
  protected columns: string[] = [];
  protected computed: Record<string, string> = {};
  protected limitRows: number | undefined;
  protected offsetRows = 0;
  protected rowId = false;
  protected text: TextSearch | undefined;
  protected onlyIndexed = false;
  protected ordering: ColumnOrdering[] = [];

  constructor(protected readonly table: Table) {}

  /** Sort the results by these columns instead of relevance: a search sorts its `limit + offset` best rows
   * (then skips `offset`); a plain read sorts every matching row. */
  orderBy(ordering: ColumnOrdering[] | undefined): this {
    this.ordering = [...(ordering ?? [])];
    return this;
  }

  protected orderings(): { column: string; descending: boolean; nullsFirst: boolean }[] {
    return this.ordering.map((o) => ({ column: o.columnName, descending: o.ascending === false,
      nullsFirst: o.nullsFirst === true }));
  }

  /** A full-text (BM25) search over the table's FTS indexes: rows with `_score`, highest first. Followed by
   * `nearestTo(v)`, a hybrid search of both. */
  fullTextSearch(query: string | FullTextQuery, options: { columns?: string | string[] } = {}): this {
    const columns = options.columns === undefined ? [] : typeof options.columns === "string" ? [options.columns]
      : [...options.columns];
    this.text = { query, columns };
    if (this.limitRows === undefined) this.limitRows = DEFAULT_LIMIT;
    return this;
  }

  /** A full-text search of only the rows its index covers (rows added since are missed until optimize). */
  fastSearch(): this {
    this.onlyIndexed = true;
    return this;
  }

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
      offsetRows: this.offsetRows, rowId: this.rowId, limitRows: this.limitRows ?? DEFAULT_LIMIT, text: this.text,
      onlyIndexed: this.onlyIndexed, ordering: this.ordering });
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
    if (this.text) {
      const request = create(SearchRequestSchema, { table: this.table.name, where: this.whereClause,
        select: this.selected(), limit: this.limitRows ?? DEFAULT_LIMIT, offset: this.offsetRows,
        version: this.table.checkedOut, format: RowFormat.ARROW, computedColumns: this.computedColumns(),
        fastSearch: this.onlyIndexed, orderBy: this.orderings() });
      request.fullText = fullTextMessage(this.text.query, this.text.columns);
      return this.table.searchRows(request, options.timeout);
    }
    return this.table.read({ where: this.whereClause, select: this.selected(), limit: this.limitRows ?? 0,
      offset: this.offsetRows, computed: this.computedColumns(), orderBy: this.orderings(), timeout: options.timeout });
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
  private reranker: Reranker | undefined;
  private normalize: "score" | "rank" = "score";

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

  /** How a hybrid search (`fullTextSearch` with `nearestTo`) fuses its two lists: RRFReranker by default;
   * `normalize` ("score" or "rank") makes their scores comparable first, as LanceDB does. */
  rerank(reranker: Reranker, normalize: "score" | "rank" = "score"): this {
    this.reranker = reranker;
    this.normalize = normalize;
    return this;
  }

  /** The SearchRequest this query sends (what grpcurl would send for it, less the query itself). */
  request(): MessageInitShape<typeof SearchRequestSchema> {
    return { table: this.table.name, vectorColumn: this.vectorColumn, where: this.whereClause, postfilter: this.post,
      select: this.selected(), limit: this.limitRows ?? DEFAULT_LIMIT, offset: this.offsetRows,
      metric: this.metric ? metricOf(this.metric) : undefined, nprobes: this.probes, ef: this.ef,
      refineFactor: this.refine, version: this.table.checkedOut, format: RowFormat.ARROW,
      computedColumns: this.computedColumns(), bypassVectorIndex: this.exact, orderBy: this.orderings() };
  }

  override async toArrow(options: { timeout?: number } = {}): Promise<arrow.Table> {
    const request = create(SearchRequestSchema, this.request());
    request.query = await this.table.queryOf(this.queryValue, this.vectorColumn);
    if (this.text) { // a hybrid search: both halves in the store, fused there
      request.fullText = fullTextMessage(this.text.query, this.text.columns);
      request.fastSearch = this.onlyIndexed;
      request.fusion = create(FusionSchema, (this.reranker ?? new RRFReranker()).fusion(this.normalize));
    } else if (this.reranker) {
      throw new TypeError("rerank fuses a hybrid search: add fullTextSearch(...) to this vector search");
    }
    return this.table.searchRows(request, options.timeout);
  }
}
