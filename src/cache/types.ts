/**
 * Interfaces shared by the response caches (issue 6). Fixed contract between the
 * policies (src/policies/cache, src/policies/semantic-cache) and the stores /
 * embedders (memory, redis, postgres, local USE-Lite): change only by adding.
 */

/** Turns texts into vectors. `dims` is null until the model is known (e.g. a backend's first answer). */
export interface Embedder {
  readonly id: string;
  readonly dims: number | null;
  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]>;
  close(): Promise<void>;
}

export interface VectorEntry {
  readonly id: string;
  /** varyBy partition: entries of different partitions never match each other */
  readonly partition: string;
  readonly vector: Float32Array;
  /** the normalized prompt text, kept so the guard can compare it with the new prompt */
  readonly prompt: string;
  /** serialized cached answer */
  readonly payload: string;
  /** epoch ms after which the entry must not be returned */
  readonly expiresAt: number;
}

export interface VectorMatch {
  readonly entry: VectorEntry;
  /** cosine distance 0..2, lower = closer (as Azure's score-threshold) */
  readonly distance: number;
}

export interface VectorStore {
  upsert(entry: VectorEntry): Promise<void>;
  /** up to k unexpired entries of `partition`, closest first */
  nearest(partition: string, vector: Float32Array, k: number, now: number): Promise<VectorMatch[]>;
  delete(id: string): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** Exact-match cache: opaque string values under opaque keys, with a TTL. */
export interface CacheStore {
  get(key: string, now: number): Promise<string | null>;
  set(key: string, value: string, ttlMs: number, now: number): Promise<void>;
  close(): Promise<void>;
}
