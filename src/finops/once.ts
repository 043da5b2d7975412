import type { Redis } from 'ioredis'

/**
 * "Has this happened yet?" shared by every replica: the first caller to claim a key wins, later claims
 * lose until the key expires. Alerts use it so a threshold fires once per period per counter however many
 * processes see the crossing at the same moment.
 */
export interface OnceStore {
  claim(key: string, ttlMs: number, now: number): Promise<boolean>
}

export class MemoryOnceStore implements OnceStore {
  private readonly claimed = new Map<string, number>()

  async claim(key: string, ttlMs: number, now: number): Promise<boolean> {
    const until = this.claimed.get(key)
    if (until !== undefined && until > now) return false
    if (this.claimed.size > 100_000) for (const [k, u] of this.claimed) if (u <= now) this.claimed.delete(k)
    this.claimed.set(key, now + ttlMs)
    return true
  }
}

export class RedisOnceStore implements OnceStore {
  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  async claim(key: string, ttlMs: number): Promise<boolean> {
    const r = await this.redis.set(`${this.prefix}once:${key}`, '1', 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX')
    return r === 'OK'
  }
}
