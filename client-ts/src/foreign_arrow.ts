/**
 * Arrow objects made by another copy of apache-arrow (its CommonJS build beside the ES module one, or another
 * version the application depends on) taken as this client's own: a copy's classes fail `instanceof` and its
 * types do not serialize through this copy's IPC writer. Types are rebuilt from their Arrow type ids and
 * parameters (stable across versions); column data is rewrapped without copying its buffers. (apache-arrow
 * 21 makes `instanceof Schema`, `Field` and `Table` true across copies, but not `instanceof DataType`, so the
 * checks here follow the real prototype chain.)
 */
import * as arrow from "apache-arrow";

/* eslint-disable @typescript-eslint/no-explicit-any */
type Foreign = any;

const isA = (value: unknown, kind: Foreign): boolean => Function.prototype[Symbol.hasInstance].call(kind, value);

/** Whether every type in `schema` is this copy's. */
function isOwnSchema(schema: Foreign): boolean {
  const ownTypes = (fields: Foreign[]): boolean =>
    fields.every((f) => isA(f, arrow.Field) && isA(f.type, arrow.DataType) && ownTypes(f.type.children ?? []));
  return isA(schema, arrow.Schema) && ownTypes(schema.fields);
}

/** A Schema of any copy of apache-arrow as one of this copy (the same object when it already is). */
export function ownSchema(schema: Foreign): arrow.Schema {
  if (isOwnSchema(schema)) return schema;
  if (!isSchemaLike(schema)) throw new TypeError("schema must be an apache-arrow Schema");
  return new arrow.Schema(schema.fields.map(ownField), new Map(schema.metadata ?? []));
}

/** A Table of any copy of apache-arrow as one of this copy (the same object when it already is). */
export function ownTable(table: Foreign): arrow.Table {
  if (isA(table, arrow.Table) && isOwnSchema(table.schema)) return table;
  if (!isTableLike(table)) throw new TypeError("rows must be an array of objects or an apache-arrow Table");
  const schema = ownSchema(table.schema);
  const batches = table.batches.map((batch: Foreign) =>
    new arrow.RecordBatch(schema, ownData(batch.data, new arrow.Struct(schema.fields)) as arrow.Data<arrow.Struct>));
  return new arrow.Table(schema, batches);
}

/** Whether `value` is a Table from some copy of apache-arrow. */
export function isTableLike(value: unknown): boolean {
  const v = value as Foreign;
  return v instanceof arrow.Table || (v !== null && typeof v === "object" && Array.isArray(v.batches) && isSchemaLike(v.schema));
}

function isSchemaLike(value: unknown): boolean {
  const v = value as Foreign;
  return v !== null && typeof v === "object" && Array.isArray(v.fields) &&
    v.fields.every((f: Foreign) => f && typeof f.name === "string" && f.type && typeof f.type.typeId === "number");
}

function ownField(field: Foreign): arrow.Field {
  return new arrow.Field(field.name, ownType(field.type), field.nullable, new Map(field.metadata ?? []));
}

function ownData(data: Foreign, type: arrow.DataType): arrow.Data {
  const children: arrow.Data[] = (data.children ?? []).map((child: Foreign, i: number) => ownData(child, type.children[i].type));
  const dictionary = data.dictionary ? new arrow.Vector(data.dictionary.data.map((d: Foreign) => ownData(d, (type as arrow.Dictionary).dictionary))) : undefined;
  return new arrow.Data(type, data.offset, data.length, data.nullCount, data.buffers, children, dictionary, data.variadicBuffers);
}

function ownType(type: Foreign): arrow.DataType {
  const T = arrow.Type;
  const children = (): arrow.Field[] => (type.children ?? []).map(ownField);
  switch (type.typeId) {
    case T.Null: return new arrow.Null();
    case T.Int: return new arrow.Int(type.isSigned, type.bitWidth);
    case T.Float: return new arrow.Float(type.precision);
    case T.Binary: return new arrow.Binary();
    case T.Utf8: return new arrow.Utf8();
    case T.LargeBinary: return new arrow.LargeBinary();
    case T.LargeUtf8: return new arrow.LargeUtf8();
    case T.BinaryView: return new arrow.BinaryView();
    case T.Utf8View: return new arrow.Utf8View();
    case T.Bool: return new arrow.Bool();
    case T.Decimal: return new arrow.Decimal(type.scale, type.precision, type.bitWidth);
    case T.Date: return new arrow.Date_(type.unit);
    case T.Time: return new arrow.Time(type.unit, type.bitWidth);
    case T.Timestamp: return new arrow.Timestamp(type.unit, type.timezone);
    case T.Interval: return new arrow.Interval(type.unit);
    case T.Duration: return new arrow.Duration(type.unit);
    case T.List: return new arrow.List(children()[0]);
    case T.LargeList: return new arrow.LargeList(children()[0]);
    case T.Struct: return new arrow.Struct(children());
    case T.Union: return new arrow.Union(type.mode, Array.from(type.typeIds), children());
    case T.FixedSizeBinary: return new arrow.FixedSizeBinary(type.byteWidth);
    case T.FixedSizeList: return new arrow.FixedSizeList(type.listSize, children()[0]);
    case T.Map: return new arrow.Map_(children()[0] as arrow.Field<arrow.Struct>, type.keysSorted);
    case T.Dictionary:
      return new arrow.Dictionary(ownType(type.dictionary), ownType(type.indices) as Foreign, type.id, type.isOrdered);
    default: throw new TypeError(`Arrow type ${String(type)} (type id ${type.typeId}) is not supported`);
  }
}
