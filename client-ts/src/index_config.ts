/**
 * LanceDB's `Index` configurations for `table.createIndex(column, { config })`. The store builds FAISS
 * indexes: `Index.ivfFlat` (IVF_FLAT), `Index.ivfPq` (IVF_PQ, 8-bit codes), `Index.hnswFlat` (HNSW over full
 * vectors), `Index.fts` (Lance's full-text inverted index). What it cannot build as asked is refused before
 * any call: quantized HNSW (`hnswPq`, `hnswSq`) and scalar indexes (the store filters without them).
 */
import type { MessageInitShape } from "@bufbuild/protobuf";
import { IndexType, Metric, type FtsParamsSchema } from "./gen/vectorlane/store/v1/store_service_pb.js";

/** LanceDB's FTS index settings (`Index.fts({ withPosition: true })`). */
export interface FtsOptions {
  withPosition?: boolean;
  /** "simple", "whitespace", "raw", "ngram", "icu", "icu/split", or "jieba/<model>" / "lindera/<model>" (a
   * language model in the store's LANCE_LANGUAGE_MODEL_HOME). */
  baseTokenizer?: string;
  language?: string;
  maxTokenLength?: number;
  lowerCase?: boolean;
  stem?: boolean;
  removeStopWords?: boolean;
  asciiFolding?: boolean;
  ngramMinLength?: number;
  ngramMaxLength?: number;
  prefixOnly?: boolean;
  customStopWords?: string[];
  /** Documents per posting block: 128 or 256. */
  blockSize?: number;
  /** This build's memory budget in MiB (not kept with the index). */
  memoryLimit?: number;
  /** This build's workers (not kept with the index). */
  numWorkers?: number;
}

export type DistanceType = "l2" | "cosine" | "dot";

export interface IvfOptions {
  distanceType?: DistanceType;
  numPartitions?: number;
}

export interface IvfPqOptions extends IvfOptions {
  numSubVectors?: number;
  numBits?: number;
}

export interface HnswOptions extends IvfOptions {
  m?: number;
  efConstruction?: number;
}

/** What an index asks the store to build (0: the store picks). */
export interface IndexPlan {
  indexType: IndexType;
  metric: Metric;
  numPartitions: number;
  numSubVectors: number;
  m: number;
  efConstruction: number;
}

export const METRICS: Record<DistanceType, Metric> = { l2: Metric.L2, cosine: Metric.COSINE, dot: Metric.DOT };

export function metricOf(name: string): Metric {
  const metric = METRICS[name.toLowerCase() as DistanceType];
  if (metric === undefined) throw new TypeError(`distance type must be l2, cosine or dot, not ${JSON.stringify(name)}`);
  return metric;
}

export class Index {
  private constructor(readonly plan: IndexPlan, readonly fts?: MessageInitShape<typeof FtsParamsSchema>) {}

  private static make(indexType: IndexType, options: HnswOptions & IvfPqOptions): Index {
    return new Index({ indexType, metric: metricOf(options.distanceType ?? "l2"), numPartitions: options.numPartitions ?? 0,
      numSubVectors: options.numSubVectors ?? 0, m: options.m ?? 0, efConstruction: options.efConstruction ?? 0 });
  }

  static ivfFlat(options: IvfOptions = {}): Index {
    return Index.make(IndexType.IVF_FLAT, options);
  }

  static ivfPq(options: IvfPqOptions = {}): Index {
    if (options.numBits !== undefined && options.numBits !== 8) {
      throw new RangeError(`numBits ${options.numBits}: the store's IVF_PQ codes are 8 bits per sub-vector`);
    }
    return Index.make(IndexType.IVF_PQ, options);
  }

  static hnswFlat(options: HnswOptions = {}): Index {
    return Index.make(IndexType.HNSW, options);
  }

  static hnswPq(): Index {
    throw new RangeError("hnswPq: the store's HNSW keeps full vectors; use Index.hnswFlat, or Index.ivfPq for compressed ones");
  }

  static hnswSq(): Index {
    throw new RangeError("hnswSq: the store's HNSW keeps full vectors; use Index.hnswFlat, or Index.ivfPq for compressed ones");
  }

  static btree(): Index {
    throw new RangeError("btree: the store has no scalar indexes; it evaluates filters without one");
  }

  /** A full-text (BM25) index of a string column: Lance's inverted index, built by the store. */
  static fts(options: FtsOptions = {}): Index {
    return new Index({ indexType: IndexType.FTS, metric: Metric.UNSPECIFIED, numPartitions: 0, numSubVectors: 0, m: 0,
      efConstruction: 0 }, { withPosition: options.withPosition ?? false, baseTokenizer: options.baseTokenizer ?? "simple",
      language: options.language ?? "English", maxTokenLength: options.maxTokenLength ?? 40,
      lowerCase: options.lowerCase ?? true, stem: options.stem ?? true, removeStopWords: options.removeStopWords ?? true,
      asciiFolding: options.asciiFolding ?? true, ngramMinLength: options.ngramMinLength ?? 3,
      ngramMaxLength: options.ngramMaxLength ?? 3, prefixOnly: options.prefixOnly ?? false,
      customStopWords: options.customStopWords ?? [], blockSize: options.blockSize ?? 128,
      memoryLimit: options.memoryLimit, numWorkers: options.numWorkers ?? 0 });
  }
}
