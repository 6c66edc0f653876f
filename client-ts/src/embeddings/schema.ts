/**
 * `LanceSchema({text: func.sourceField(new Utf8()), vector: func.vectorField()})`: an Arrow schema whose
 * metadata records each function in LanceDB's layout (`embedding_functions`: a JSON list of `{name, model,
 * source_column, vector_column}`), and the reverse: a table's functions from its schema's metadata.
 */
import * as arrow from "apache-arrow";
import { EmbeddingFunction, type FunctionField } from "./embedding_function.js";
import { getRegistry } from "./registry.js";

export const METADATA_KEY = "embedding_functions";

/** A function and the columns it reads and fills (LanceDB's EmbeddingFunctionConfig). */
export interface EmbeddingFunctionConfig {
  function: EmbeddingFunction<unknown>;
  sourceColumn: string;
  vectorColumn: string;
}

function isFunctionField(value: unknown): value is FunctionField {
  return typeof value === "object" && value !== null && "role" in value && "function" in value;
}

/** The columns and their types; a source and a vector field of the same function are paired. */
export function LanceSchema(fields: Record<string, arrow.DataType | FunctionField>): arrow.Schema {
  const columns: arrow.Field[] = [];
  const sources = new Map<EmbeddingFunction<unknown>, string>();
  const vectors = new Map<EmbeddingFunction<unknown>, string>();
  for (const [name, spec] of Object.entries(fields)) {
    if (isFunctionField(spec)) {
      (spec.role === "source" ? sources : vectors).set(spec.function, name);
      columns.push(new arrow.Field(name, spec.type, true));
    } else {
      columns.push(new arrow.Field(name, spec, true));
    }
  }
  const configs: EmbeddingFunctionConfig[] = [];
  for (const [func, vectorColumn] of vectors) {
    const sourceColumn = sources.get(func);
    if (sourceColumn === undefined) throw new TypeError(`vector column ${vectorColumn} has no sourceField of its function`);
    configs.push({ function: func, sourceColumn, vectorColumn });
  }
  return withFunctions(new arrow.Schema(columns), configs);
}

export function metadataOf(configs: EmbeddingFunctionConfig[]): string {
  return JSON.stringify(configs.map((c) => ({ name: c.function.functionName, model: c.function.toJSON(),
    source_column: c.sourceColumn, vector_column: c.vectorColumn })));
}

export function withFunctions(schema: arrow.Schema, configs: EmbeddingFunctionConfig[]): arrow.Schema {
  const metadata = new Map(schema.metadata);
  if (configs.length) metadata.set(METADATA_KEY, metadataOf(configs));
  return new arrow.Schema(schema.fields, metadata);
}

/** The functions a schema's metadata records (local ones made from this process's registry). */
export function functionsOf(schema: arrow.Schema): EmbeddingFunctionConfig[] {
  const raw = schema.metadata.get(METADATA_KEY);
  if (!raw) return [];
  const entries = JSON.parse(raw) as { name: string; model?: Record<string, unknown>; source_column: string;
    vector_column: string }[];
  return entries.map((e) => ({ function: getRegistry().fromConfig(e.name, e.model ?? {}), sourceColumn: e.source_column,
    vectorColumn: e.vector_column }));
}
