import type { CacheStore } from '../../cache/types.ts'

export interface MemoryCacheOptions {
  /** Most entries kept; the least recently used go first. */
  readonly maxEntries?: number
  /** Most bytes kept (UTF-16 length × 2 of keys and values, a cheap upper bound). */
  readonly maxBytes?: number
}

interface Slot { value: string; expiresAt: number; bytes: number }

/**
 * The embedded exact cache: an LRU bounded by entry count and by bytes, with a TTL per entry. A JS Map keeps
 * insertion order, so re-inserting on read makes its first key the least recently used one.
 */
export class MemoryCacheStore implements CacheStore {
  private readonly map = new Map<string, Slot>()
  private bytes = 0
  private readonly maxEntries: number
  private readonly maxBytes: number

  constructor(opts: MemoryCacheOptions = {}) {
    this.maxEntries = opts.maxEntries ?? 10_000
    this.maxBytes = opts.maxBytes ?? 64 * 1024 * 1024
  }

  async get(key: string, now: number): Promise<string | null> {
    const slot = this.map.get(key)
    if (!slot) return null
    this.map.delete(key)
    if (slot.expiresAt <= now) {
      this.bytes -= slot.bytes
      return null
    }
    this.map.set(key, slot)
    return slot.value
  }

  async set(key: string, value: string, ttlMs: number, now: number): Promise<void> {
    const old = this.map.get(key)
    if (old) {
      this.map.delete(key)
      this.bytes -= old.bytes
    }
    const bytes = (key.length + value.length) * 2
    // An entry bigger than the whole budget is not cached at all rather than emptying the cache for it.
    if (ttlMs <= 0 || bytes > this.maxBytes) return
    this.map.set(key, { value, expiresAt: now + ttlMs, bytes })
    this.bytes += bytes
    for (const [k, s] of this.map) {
      if (this.map.size <= this.maxEntries && this.bytes <= this.maxBytes) break
      this.map.delete(k)
      this.bytes -= s.bytes
    }
  }

  /** Entries held, expired ones included until they are touched or evicted. */
  get size(): number { return this.map.size }

  async close(): Promise<void> {
    this.map.clear()
    this.bytes = 0
  }
}
