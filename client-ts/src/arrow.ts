/**
 * Rows in and out of the client, as Arrow: what `add` and `createTable` take (arrays of plain objects, or an
 * Arrow Table) as Arrow IPC stream bytes in the table's types, and what the store returns (Arrow IPC) as an
 * Arrow Table. A vector column's values that are not all vectors of its length travel as a variable-length
 * list, so the store applies the add's `onBadVectors` to the wrong ones (a fixed-size list builder would
 * pad or cut them silently).
 */
import * as arrow from "apache-arrow";
import { isTableLike, ownTable } from "./foreign_arrow.js";

export type Row = Record<string, unknown>;
export type Data = Row[] | arrow.Table;

const EOS = new Uint8Array([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);

/** A serialized Arrow schema (what the store sends: a schema message) as a Schema. */
export function schemaFromIpc(bytes: Uint8Array): arrow.Schema {
  const stream = new Uint8Array(bytes.length + EOS.length);
  stream.set(bytes);
  stream.set(EOS, bytes.length);
  return arrow.tableFromIPC(stream).schema;
}

/** A Schema as the store reads it (an IPC stream holding the schema alone). */
export function schemaToIpc(schema: arrow.Schema): Uint8Array {
  return arrow.tableToIPC(new arrow.Table(schema), "stream");
}

export function tableFromIpc(bytes: Uint8Array): arrow.Table {
  return arrow.tableFromIPC(bytes);
}

export function tableToIpc(table: arrow.Table): Uint8Array {
  return arrow.tableToIPC(table, "stream");
}

function isVector(type: arrow.DataType): type is arrow.FixedSizeList {
  return arrow.DataType.isFixedSizeList(type) && arrow.DataType.isFloat(type.children[0].type);
}

function toBigInt(value: unknown): unknown {
  return typeof value === "number" && Number.isInteger(value) ? BigInt(value) : value;
}

function isInt64(type: arrow.DataType): boolean {
  return arrow.DataType.isInt(type) && type.bitWidth === 64;
}

/** One column of `rows` in `field`'s type. */
function column(rows: Row[], field: arrow.Field): arrow.Vector {
  let values = rows.map((row) => (row[field.name] === undefined ? null : row[field.name]));
  let type: arrow.DataType = field.type;
  if (isVector(type)) {
    const size = type.listSize;
    const fits = values.every((v) => v === null || (ArrayLike(v) && v.length === size && allFinite(v)));
    if (!fits) type = new arrow.List(new arrow.Field("item", type.children[0].type, true));
    values = values.map((v) => (v === null ? null : Array.from(v as ArrayLike<number>)));
  } else if (isInt64(type)) {
    values = values.map(toBigInt);
  }
  return arrow.vectorFromArray(values, type);
}

function ArrayLike(value: unknown): value is ArrayLike<number> {
  return Array.isArray(value) || ArrayBuffer.isView(value);
}

function allFinite(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (typeof values[i] !== "number" || !Number.isFinite(values[i])) return false;
  return true;
}

/** The type a column of plain values gets when there is no schema yet: the store then infers a vector
 * column from a list of numbers named like one, as LanceDB does. */
function inferred(values: unknown[]): arrow.DataType {
  const present = values.filter((v) => v !== null && v !== undefined);
  const first = present[0];
  if (typeof first === "string") return new arrow.Utf8();
  if (typeof first === "boolean") return new arrow.Bool();
  if (typeof first === "bigint") return new arrow.Int64();
  if (typeof first === "number") {
    return present.every((v) => Number.isInteger(v)) ? new arrow.Int64() : new arrow.Float64();
  }
  if (first instanceof Date) return new arrow.TimestampMicrosecond("UTC");
  if (ArrayLike(first)) return new arrow.List(new arrow.Field("item", new arrow.Float64(), true));
  if (first instanceof Uint8Array) return new arrow.Binary();
  throw new TypeError(`cannot infer an Arrow type for values like ${JSON.stringify(first)}: give a schema`);
}

/** `data` as an Arrow table: in `schema`'s types when given (only the columns the rows have: vectors the
 * store computes stay absent), else with types inferred from the values. */
export function toArrowTable(data: Data, schema?: arrow.Schema): arrow.Table {
  if (isTableLike(data)) return ownTable(data);
  if (!Array.isArray(data)) throw new TypeError("rows must be an array of objects or an Arrow Table");
  const names = [...new Set(data.flatMap((row) => Object.keys(row)))];
  const columns: Record<string, arrow.Vector> = {};
  for (const name of names) {
    const field = schema?.fields.find((f) => f.name === name);
    if (schema && !field) {
      throw new TypeError(`column ${JSON.stringify(name)} is not in the table's schema (${schema.fields.map((f) => f.name).join(", ")})`);
    }
    columns[name] = column(data, field ?? new arrow.Field(name, inferred(data.map((row) => row[name])), true));
  }
  return new arrow.Table(columns);
}
