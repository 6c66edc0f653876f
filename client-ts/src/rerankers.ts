/**
 * LanceDB's rerankers for hybrid searches (`rerankers.RRFReranker`): the store fuses the vector and full-text
 * results as LanceDB does. `await RRFReranker.create(k)` as in LanceDB; `LinearCombinationReranker` and
 * `MRRReranker` as in its Python API.
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { FusionMethod, Normalization, type FusionSchema } from "./gen/vectorlane/store/v1/store_service_pb.js";

export type ReturnScore = "relevance" | "all";

export interface Reranker {
  /** The contract's Fusion for a hybrid search (`normalize`: "score" or "rank"). */
  fusion(normalize?: "score" | "rank"): MessageInitShape<typeof FusionSchema>;
}

function base(method: FusionMethod, normalize: "score" | "rank", returnScore: ReturnScore) {
  return { method, normalize: normalize === "rank" ? Normalization.RANK : Normalization.SCORE,
    returnAllScores: returnScore === "all" };
}

/** Reciprocal rank fusion: the sum over both lists of 1 / (k + rank). */
export class RRFReranker implements Reranker {
  constructor(readonly k = 60, readonly returnScore: ReturnScore = "relevance") {
    if (!(k > 0)) throw new RangeError("k must be greater than 0");
  }

  static async create(k = 60): Promise<RRFReranker> {
    return new RRFReranker(k);
  }

  fusion(normalize: "score" | "rank" = "score"): MessageInitShape<typeof FusionSchema> {
    return { ...base(FusionMethod.RRF, normalize, this.returnScore), k: this.k };
  }
}

/** weight x (1 - normalized distance) + (1 - weight) x normalized score. */
export class LinearCombinationReranker implements Reranker {
  constructor(readonly weight = 0.7, readonly fill = 1.0, readonly returnScore: ReturnScore = "relevance") {
    if (weight < 0 || weight > 1) throw new RangeError("weight must be between 0 and 1.");
  }

  fusion(normalize: "score" | "rank" = "score"): MessageInitShape<typeof FusionSchema> {
    return { ...base(FusionMethod.LINEAR, normalize, this.returnScore), weight: this.weight, fill: this.fill };
  }
}

/** Mean reciprocal rank: weightVector / vector rank + weightFts / full-text rank. */
export class MRRReranker implements Reranker {
  constructor(readonly weightVector = 0.5, readonly weightFts = 0.5, readonly returnScore: ReturnScore = "relevance") {
    if (Math.abs(weightVector + weightFts - 1) > 1e-6) throw new RangeError("weight_vector + weight_fts must equal 1.0");
  }

  fusion(normalize: "score" | "rank" = "score"): MessageInitShape<typeof FusionSchema> {
    return { ...base(FusionMethod.MRR, normalize, this.returnScore), weightVector: this.weightVector,
      weightFts: this.weightFts };
  }
}
