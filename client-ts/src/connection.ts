/**
 * `connect(uri, options)`: a connection to the store, LanceDB's `Connection`. Tables are created from rows or
 * a schema (with their embedding functions), opened, listed and dropped.
 */
import * as arrow from "apache-arrow";
import { CreateMode, StorageService, type Table as TableMessage } from "./gen/vectorlane/store/v1/store_service_pb.js";
import { schemaToIpc, tableToIpc, toArrowTable, type Data } from "./arrow.js";
import { ownSchema } from "./foreign_arrow.js";
import { functionsOf, withFunctions, type EmbeddingFunctionConfig } from "./embeddings/schema.js";
import { ServerFunction, setHostedFunctions } from "./embeddings/embedding_function.js";
import type { JsonObject } from "@bufbuild/protobuf";
import { withLocalVectors } from "./embeddings/local.js";
import { NotFoundError } from "./errors.js";
import { configMessage, Table, type OnBadVectors } from "./table.js";
import { Transport, type ConnectionOptions } from "./transport.js";
import { everyPage } from "./paging.js";

export const DEFAULT_URI = "grpc://localhost:50051";

/** LanceDB's EmbeddingFunctionConfig for `createTable`: the vector column defaults to "vector". */
export interface TableFunction {
  function: EmbeddingFunctionConfig["function"];
  sourceColumn: string;
  vectorColumn?: string;
}

export interface CreateTableOptions {
  /** "create" (an existing table is an error unless `existOk`) or "overwrite". */
  mode?: "create" | "overwrite";
  existOk?: boolean;
  /** The function filling a vector column from a source column. */
  embeddingFunction?: TableFunction;
  /** The schema, when the rows should not decide it. */
  schema?: arrow.Schema;
  onBadVectors?: OnBadVectors;
  fillValue?: number;
}

const BAD: Record<OnBadVectors, number> = { error: 1, drop: 2, fill: 3, null: 4 };

export class Connection {
  constructor(readonly uri: string, readonly transport: Transport) {}

  display(): string {
    return `Connection(${this.uri})`;
  }

  async tableNames(options: { startAfter?: string; limit?: number } = {}): Promise<string[]> {
    if (options.limit !== undefined) {
      const reply = await this.transport.unary(StorageService.method.listTables,
        { pageSize: options.limit, pageToken: options.startAfter ?? "" });
      return reply.names;
    }
    return everyPage("ListTables", async (pageToken) => {
      const reply = await this.transport.unary(StorageService.method.listTables, { pageSize: 1000, pageToken });
      return { items: reply.names, nextPageToken: reply.nextPageToken };
    }, options.startAfter ?? "");
  }

  async openTable(name: string): Promise<Table> {
    const reply = await this.transport.unary(StorageService.method.getTable, { name });
    return new Table(this.transport, reply.table!);
  }

  async dropTable(name: string): Promise<void> {
    await this.transport.unary(StorageService.method.dropTable, { name });
  }

  async dropAllTables(): Promise<void> {
    for (const name of await this.tableNames()) {
      try {
        await this.dropTable(name);
      } catch (error) {
        if (!(error instanceof NotFoundError)) throw error;
      }
    }
  }

  /** A table with the columns of `schema` and no rows (LanceDB's createEmptyTable). */
  async createEmptyTable(name: string, schema: arrow.Schema, options: Omit<CreateTableOptions, "schema"> = {}): Promise<Table> {
    return this.create(name, undefined, { ...options, schema });
  }

  /** A table from first rows (their types, or `options.schema`), with an embedding function if given. */
  async createTable(name: string, data: Data, options: CreateTableOptions = {}): Promise<Table> {
    return this.create(name, data, options);
  }

  close(): void {
    this.transport.close();
  }

  private async create(name: string, data: Data | undefined, options: CreateTableOptions): Promise<Table> {
    if (options.schema) options = { ...options, schema: ownSchema(options.schema) };
    const configs: EmbeddingFunctionConfig[] = options.schema ? functionsOf(options.schema) : [];
    if (options.embeddingFunction) {
      const given = options.embeddingFunction;
      configs.push({ function: given.function, sourceColumn: given.sourceColumn, vectorColumn: given.vectorColumn ?? "vector" });
    }
    const schema = options.schema ? await this.withDimensions(withFunctions(options.schema, configs), configs) : undefined;
    const rows = data === undefined ? undefined : toArrowTable(await withLocalVectors(data, configs), schema);
    const mode = options.mode === "overwrite" ? CreateMode.OVERWRITE : options.existOk ? CreateMode.EXIST_OK : CreateMode.CREATE;
    const reply = await this.transport.unary(StorageService.method.createTable, {
      name, mode, embeddingFunctions: configs.map(configMessage),
      schema: schema ? { arrowSchema: schemaToIpc(schema) } : undefined,
      rows: rows ? { format: { case: "arrowIpc", value: tableToIpc(rows) } } : undefined,
      onBadVectors: BAD[options.onBadVectors ?? "error"], fillValue: options.fillValue ?? 0 });
    return new Table(this.transport, reply.table as TableMessage);
  }

  /** `schema` with each hosted function's vector column as long as the store says its vectors are. */
  private async withDimensions(schema: arrow.Schema, configs: EmbeddingFunctionConfig[]): Promise<arrow.Schema> {
    let fields = schema.fields;
    for (const config of configs) {
      if (!(config.function instanceof ServerFunction)) continue;
      const described = await this.transport.unary(StorageService.method.describeFunction, { function: configMessage(config) });
      config.function.described(described.dimensions);
      fields = fields.map((f) => (f.name === config.vectorColumn && arrow.DataType.isFixedSizeList(f.type)
        ? new arrow.Field(f.name, new arrow.FixedSizeList(described.dimensions, f.type.children[0]), f.nullable, f.metadata)
        : f));
    }
    return new arrow.Schema(fields, schema.metadata);
  }
}

const INPUTS_PER_CALL = 256;

/** A connection to the store at `uri` (`grpc://host:port`; `grpcs://` with `options.tls`). It is also what
 * hosted functions use from then on to describe themselves and compute vectors outside a table. */
export async function connect(uri: string = DEFAULT_URI, options: ConnectionOptions = {}): Promise<Connection> {
  const connection = new Connection(uri, new Transport(uri, options));
  const transport = connection.transport;
  setHostedFunctions({
    async describe(func: ServerFunction): Promise<number> {
      const reply = await transport.unary(StorageService.method.describeFunction,
        { function: { name: func.functionName, model: func.toJSON() as JsonObject } });
      return reply.dimensions;
    },
    async compute(func: ServerFunction, data: unknown[], asQueries: boolean): Promise<number[][]> {
      const vectors: number[][] = [];
      for (let start = 0; start < data.length; start += INPUTS_PER_CALL) {
        const inputs = data.slice(start, start + INPUTS_PER_CALL).map((value) => (value instanceof Uint8Array
          ? { value: { case: "imageBytes" as const, value } } : { value: { case: "text" as const, value: String(value) } }));
        const reply = await transport.unary(StorageService.method.computeEmbeddings,
          { function: { name: func.functionName, model: func.toJSON() as JsonObject }, inputs, query: asQueries });
        vectors.push(...reply.vectors.map((v) => v.values));
      }
      return vectors;
    },
  });
  return connection;
}
