/** The vectors of local functions (registered in this process), computed here for the rows that have a
 * source value and no vector; hosted functions' are left to the store. */
import type { Data, Row } from "../arrow.js";
import { isTableLike, ownTable } from "../foreign_arrow.js";
import type { EmbeddingFunctionConfig } from "./schema.js";

export async function withLocalVectors(data: Data, configs: Iterable<EmbeddingFunctionConfig>): Promise<Data> {
  const local = [...configs].filter((c) => c.function.isLocal);
  if (!local.length) return data;
  const rows: Row[] = isTableLike(data) ? ownTable(data).toArray().map((r) => ({ ...r.toJSON() }))
    : (data as Row[]).map((r) => ({ ...r }));
  for (const config of local) {
    const missing = rows.filter((r) => r[config.sourceColumn] != null && r[config.vectorColumn] == null);
    if (!missing.length) continue;
    const vectors = await config.function.computeSourceEmbeddings(missing.map((r) => r[config.sourceColumn]));
    if (vectors.length !== missing.length) {
      throw new Error(`${config.function.functionName} gave ${vectors.length} vectors for ${missing.length} values`);
    }
    missing.forEach((row, i) => { row[config.vectorColumn] = Array.from(vectors[i]); });
  }
  return rows;
}
