/**
 * LanceDB's full-text query objects (`MatchQuery`, `PhraseQuery`, `BoostQuery`, `MultiMatchQuery`,
 * `BooleanQuery`), as the store takes them: `table.query().fullTextSearch(new MatchQuery("puppy", "text"))`.
 * A plain string searches its words in the given columns (or every FTS-indexed one).
 */
import { create, type MessageInitShape } from "@bufbuild/protobuf";
import { FullTextOperator, FullTextQuerySchema, Occur as OccurValue, type FullTextQuery as Message }
  from "./gen/vectorlane/store/v1/store_service_pb.js";

export type Operator = "AND" | "OR";
export enum Occur {
  Should = "SHOULD",
  Must = "MUST",
  MustNot = "MUST_NOT",
}

const OPERATORS: Record<Operator, FullTextOperator> = { OR: FullTextOperator.OR, AND: FullTextOperator.AND };
const OCCURS: Record<Occur, OccurValue> = { [Occur.Should]: OccurValue.SHOULD, [Occur.Must]: OccurValue.MUST,
  [Occur.MustNot]: OccurValue.MUST_NOT };

export interface FullTextQuery {
  /** The query as the contract's message. */
  toMessage(): MessageInitShape<typeof FullTextQuerySchema>;
}

export class MatchQuery implements FullTextQuery {
  constructor(readonly query: string, readonly column: string, readonly options: { boost?: number;
    fuzziness?: number | null; maxExpansions?: number; operator?: Operator; prefixLength?: number } = {}) {}

  toMessage(): MessageInitShape<typeof FullTextQuerySchema> {
    const o = this.options;
    return { query: { case: "match", value: { terms: this.query, column: this.column, boost: o.boost ?? 1.0,
      fuzziness: o.fuzziness === null ? -1 : o.fuzziness ?? 0, maxExpansions: o.maxExpansions ?? 50,
      operator: OPERATORS[o.operator ?? "OR"], prefixLength: o.prefixLength ?? 0 } } };
  }
}

export class PhraseQuery implements FullTextQuery {
  constructor(readonly query: string, readonly column: string, readonly options: { slop?: number } = {}) {}

  toMessage(): MessageInitShape<typeof FullTextQuerySchema> {
    return { query: { case: "phrase", value: { terms: this.query, column: this.column, slop: this.options.slop ?? 0 } } };
  }
}

export class BoostQuery implements FullTextQuery {
  constructor(readonly positive: FullTextQuery, readonly negative: FullTextQuery,
    readonly options: { negativeBoost?: number } = {}) {}

  toMessage(): MessageInitShape<typeof FullTextQuerySchema> {
    return { query: { case: "boost", value: { positive: this.positive.toMessage(), negative: this.negative.toMessage(),
      negativeBoost: this.options.negativeBoost ?? 0.5 } } };
  }
}

export class MultiMatchQuery implements FullTextQuery {
  constructor(readonly query: string, readonly columns: string[],
    readonly options: { boosts?: number[]; operator?: Operator } = {}) {}

  toMessage(): MessageInitShape<typeof FullTextQuerySchema> {
    return { query: { case: "multiMatch", value: { terms: this.query, columns: this.columns,
      boosts: this.options.boosts ?? [], operator: OPERATORS[this.options.operator ?? "OR"] } } };
  }
}

export class BooleanQuery implements FullTextQuery {
  constructor(readonly queries: [Occur, FullTextQuery][]) {}

  toMessage(): MessageInitShape<typeof FullTextQuerySchema> {
    return { query: { case: "boolean", value: { clauses: this.queries.map(([occur, query]) =>
      ({ occur: OCCURS[occur], query: query.toMessage() })) } } };
  }
}

/** A string (searched in `columns`, or every FTS-indexed column) or a query object, as the contract's message. */
export function fullTextMessage(query: string | FullTextQuery, columns: string[] = []): Message {
  if (typeof query === "string") return create(FullTextQuerySchema, { query: { case: "text", value: query }, columns });
  return create(FullTextQuerySchema, query.toMessage());
}
