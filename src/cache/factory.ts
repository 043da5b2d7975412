/**
 * One place to build the cache back ends by kind, for the cache policies: exact-cache stores, vector stores
 * and the local embedder. Lifetimes stay with the caller (e.g. cache/store-registry.ts keeps stores across
 * config reloads); every object returned here is closed with its own `close()`.
 */
import type { Redis } from 'ioredis'
import { MemoryCacheStore, type MemoryCacheOptions } from '../stores/memory/cache.ts'
import { MemoryVectorStore, type MemoryVectorOptions } from '../stores/memory/vector.ts'
import { PostgresVectorStore, type PostgresVectorOptions } from '../stores/postgres/vector-store.ts'
import { RedisCacheStore, type RedisCacheOptions } from '../stores/redis/cache-store.ts'
import { acquireLocalEmbedder, type LocalEmbedderOptions } from './local-embedder.ts'
import type { CacheStore, Embedder, VectorStore } from './types.ts'

export type CacheStoreSpec =
  | ({ readonly kind: 'memory' } & MemoryCacheOptions)
  /** `redis` is the gateway's shared client (Stores.redis); the store does not close it unless `ownsClient`. */
  | ({ readonly kind: 'redis'; readonly redis: Redis } & RedisCacheOptions)

export function createCacheStore(spec: CacheStoreSpec): CacheStore {
  if (spec.kind === 'redis') return new RedisCacheStore(spec.redis, spec)
  return new MemoryCacheStore(spec)
}

export type VectorStoreSpec =
  | ({ readonly kind: 'memory' } & MemoryVectorOptions)
  /** `url` is a PostgreSQL connection string to a database with pgvector available (the store runs CREATE EXTENSION). */
  | ({ readonly kind: 'postgres'; readonly url: string; readonly poolSize?: number; readonly queryTimeoutMs?: number } & Omit<PostgresVectorOptions, 'ownsPool'>)

/**
 * Redis has no vector store here: plain Redis 7 lacks vector search (that needs the search module, which
 * this deployment target does not ship), so `memory` and `postgres` are the kinds.
 */
export function createVectorStore(spec: VectorStoreSpec): VectorStore {
  if (spec.kind === 'postgres') return PostgresVectorStore.connect(spec.url, spec)
  return new MemoryVectorStore(spec)
}

/** A handle on the process-wide USE-Lite embedder (loaded on first use, shared, closed per handle). */
export function localEmbedder(opts: LocalEmbedderOptions = {}): Embedder {
  return acquireLocalEmbedder(opts)
}
