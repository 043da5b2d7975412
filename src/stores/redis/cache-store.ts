import type { Redis } from 'ioredis'
import type { CacheStore } from '../../cache/types.ts'
import { closeRedis } from './connection.ts'

export interface RedisCacheOptions {
  /** Prepended to every key (the store's `keyPrefix`, e.g. `sluice:`); `cache:` is added after it. */
  readonly keyPrefix?: string
  /** Largest value stored, in UTF-8 bytes (default 1 MiB); bigger answers are simply not cached. */
  readonly maxValueBytes?: number
  /** Close the client on `close()`: true only for a client made for this store alone (default false). */
  readonly ownsClient?: boolean
}

/**
 * The distributed exact cache: one Redis string per entry, `SET … PX ttl`, so Redis itself evicts expired
 * entries (and `maxmemory` policies apply). The entry also carries its expiry time, checked against the
 * caller's clock on read, so every gateway agrees on expiry with the memory store and with its own clock.
 *
 * Errors are not swallowed here: the cache policy treats a failed `get` as a miss and a failed `set` as
 * "not cached", and counts both. The client comes from stores/redis/connection.ts, which fails commands
 * fast while Redis is away instead of queueing them.
 */
export class RedisCacheStore implements CacheStore {
  private readonly prefix: string
  private readonly maxValueBytes: number

  constructor(private readonly redis: Redis, private readonly opts: RedisCacheOptions = {}) {
    this.prefix = `${opts.keyPrefix ?? 'sluice:'}cache:`
    this.maxValueBytes = opts.maxValueBytes ?? 1024 * 1024
  }

  async get(key: string, now: number): Promise<string | null> {
    const raw = await this.redis.get(this.prefix + key)
    if (raw === null) return null
    // Layout: "<expiresAt epoch ms>:<value>". Anything else was not written by this store: a miss.
    const colon = raw.indexOf(':')
    const expiresAt = colon > 0 ? Number(raw.slice(0, colon)) : NaN
    if (!Number.isFinite(expiresAt) || expiresAt <= now) return null
    return raw.slice(colon + 1)
  }

  async set(key: string, value: string, ttlMs: number, now: number): Promise<void> {
    const ttl = Math.floor(ttlMs)
    if (!(ttl > 0)) return
    if (Buffer.byteLength(value, 'utf8') > this.maxValueBytes) return
    await this.redis.set(this.prefix + key, `${now + ttl}:${value}`, 'PX', ttl)
  }

  async close(): Promise<void> {
    if (this.opts.ownsClient) await closeRedis(this.redis)
  }
}
