import type { CacheStore, VectorStore } from './types.ts'

/**
 * A store whose engine client (ioredis, pg) is imported on first use, not when the policy module loads:
 * the policy registry imports every policy, and a gateway that never uses these stores should not carry
 * their clients in memory. Errors from loading surface as the first call's error (treated as a miss).
 */
export function lazyCacheStore(load: () => Promise<CacheStore>): CacheStore {
  let store: Promise<CacheStore> | null = null
  const get = () => (store ??= load())
  return {
    get: async (key, now) => (await get()).get(key, now),
    set: async (key, value, ttlMs, now) => (await get()).set(key, value, ttlMs, now),
    close: async () => { if (store) await (await store).close() },
  }
}

export function lazyVectorStore(load: () => Promise<VectorStore>): VectorStore {
  let store: Promise<VectorStore> | null = null
  const get = () => (store ??= load())
  return {
    upsert: async (entry) => (await get()).upsert(entry),
    nearest: async (partition, vector, k, now) => (await get()).nearest(partition, vector, k, now),
    delete: async (id) => (await get()).delete(id),
    size: async () => (await get()).size(),
    close: async () => { if (store) await (await store).close() },
  }
}
