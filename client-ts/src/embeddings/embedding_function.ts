/**
 * LanceDB's embedding functions, TypeScript form. A function the embed service hosts (`openai`,
 * `sentence-transformers`, `open-clip`, ...) is a `ServerFunction`: its name and settings only; the store
 * computes its vectors for rows and queries, and `DescribeFunction` tells its dimensions. A class of your own
 * (`@register("name") class X extends EmbeddingFunction<string>`) is a local function: this process computes
 * its vectors and sends them; the table records its name and `toJSON()` settings.
 */
import * as arrow from "apache-arrow";

/** What `sourceField()` / `vectorField()` give `LanceSchema`: a column's type and the function it serves. */
export interface FunctionField {
  readonly type: arrow.DataType;
  readonly role: "source" | "vector";
  readonly function: EmbeddingFunction<unknown>;
}

export interface VectorFieldOptions {
  /** The vector's value type (Float32 unless given). */
  datatype?: arrow.Float;
  /** Its length, when the function cannot say yet. */
  dims?: number;
}

export abstract class EmbeddingFunction<T = string> {
  /** The settings `create()` was given (the registry sets them). */
  createdWith: Record<string, unknown> = {};

  /** The name the function is registered under (what the table records). */
  get functionName(): string {
    return (this.constructor as { registryName?: string }).registryName ?? this.constructor.name;
  }

  /** Whether this process computes the vectors (a registered class) or the store does (a hosted function). */
  get isLocal(): boolean {
    return true;
  }

  /** The settings the table records (what `create()` was given); `$var:` references stay references. */
  toJSON(): Record<string, unknown> {
    return { ...this.createdWith };
  }

  /** The vectors' length; undefined while unknown (a hosted function not described yet). */
  abstract ndims(): number | undefined;

  /** Vectors of source values (rows), in order. */
  abstract computeSourceEmbeddings(data: T[]): Promise<number[][]>;

  /** The vector of a query; by default what the source form gives. */
  async computeQueryEmbeddings(data: T): Promise<number[]> {
    const [vector] = await this.computeSourceEmbeddings([data]);
    return vector;
  }

  sourceField(type: arrow.DataType = new arrow.Utf8()): FunctionField {
    return { type, role: "source", function: this as EmbeddingFunction<unknown> };
  }

  vectorField(options: VectorFieldOptions | arrow.Float = {}): FunctionField {
    const { datatype, dims } = options instanceof arrow.DataType ? { datatype: options, dims: undefined } : options;
    const size = dims ?? this.ndims() ?? 1; // a hosted function's length is asked of the store at create
    const item = new arrow.Field("item", datatype ?? new arrow.Float32(), true);
    return { type: new arrow.FixedSizeList(size, item), role: "vector", function: this as EmbeddingFunction<unknown> };
  }
}

/** A function the embed service hosts, as `getRegistry().get(name).create(settings)` gives it. */
export class ServerFunction extends EmbeddingFunction<unknown> {
  readonly name: string;
  readonly settings: Readonly<Record<string, unknown>>;
  private dims: number | undefined;

  constructor(name: string, settings: Record<string, unknown> = {}) {
    super();
    this.name = name;
    this.settings = serviceSettings(settings);
  }

  override get functionName(): string {
    return this.name;
  }

  override get isLocal(): boolean {
    return false;
  }

  override toJSON(): Record<string, unknown> {
    return { ...this.settings };
  }

  override ndims(): number | undefined {
    return this.dims;
  }

  /** Records what the store said of the function (DescribeFunction). */
  described(dimensions: number): void {
    this.dims = dimensions;
  }

  /** Asks the store (through the most recent connection) for the function's dimensions, so `ndims()` knows
   * them before any table is made (LanceDB's `init`). */
  async init(): Promise<void> {
    this.dims = await hostedFunctions().describe(this);
  }

  /** Vectors of source values, computed by the embed service through the store (ComputeEmbeddings). */
  override computeSourceEmbeddings(data: unknown[]): Promise<number[][]> {
    return hostedFunctions().compute(this, data, false);
  }

  override async computeQueryEmbeddings(data: unknown): Promise<number[]> {
    const [vector] = await hostedFunctions().compute(this, [data], true);
    return vector;
  }
}

/** What hosted functions need of a store: the most recent connection registers itself (the registry is
 * process-wide, as LanceDB's, and `connect()` comes first). */
export interface HostedFunctions {
  describe(func: ServerFunction): Promise<number>;
  compute(func: ServerFunction, data: unknown[], asQueries: boolean): Promise<number[][]>;
}

let latest: HostedFunctions | undefined;

export function setHostedFunctions(store: HostedFunctions): void {
  latest = store;
}

function hostedFunctions(): HostedFunctions {
  if (!latest) throw new Error("a hosted function needs the store: call connect() first");
  return latest;
}

/** LanceDB's TypeScript option names as the embed service's functions name them (those of LanceDB's Python
 * registry): camelCase in snake_case (`apiKey` is `api_key`), and `model` is `name`. */
export function serviceSettings(settings: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(settings)) {
    const snake = key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
    out[snake === "model" ? "name" : snake] = value;
  }
  return out;
}
