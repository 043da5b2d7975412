import type { Redis } from 'ioredis'
import { INFLIGHT_MAX_AGE_MS, type InflightStore } from '../inflight.ts'
import { hashTag, RedisScript } from './script.ts'

// KEYS: one sorted set per backend (member = request token, score = start). ARGV: now, maxAge.
// Drops entries too old to be live, then counts: one round trip for every member of a pool.
const COUNTS = new RedisScript(`
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
  out[i] = redis.call('ZCARD', key)
end
return out
`)

/**
 * In-flight requests shared by all gateway processes: a sorted set per backend of request tokens scored
 * by start time. Starts and ends are sent without waiting (pipelined by ioredis); a process that dies
 * leaves entries that age out after maxAgeMs. A Redis outage makes `counts` fail, and the strategy falls
 * back to its local view.
 */
export class RedisInflightStore implements InflightStore {
  constructor(private readonly redis: Redis, private readonly prefix: string, private readonly maxAgeMs = INFLIGHT_MAX_AGE_MS) {}

  /** One hash tag for all of them, so a pool's counts are read by one script even on Redis Cluster. */
  private key(backendId: string): string {
    return `${this.prefix}inflight:{inflight}:${hashTag(backendId).slice(1, -1)}`
  }

  start(backendId: string, token: string, now: number): void {
    const key = this.key(backendId)
    this.redis.multi().zadd(key, now, token).pexpire(key, this.maxAgeMs).exec().catch(() => {})
  }

  end(backendId: string, token: string): void {
    this.redis.zrem(this.key(backendId), token).catch(() => {})
  }

  async counts(backendIds: readonly string[], now: number): Promise<Map<string, number>> {
    if (backendIds.length === 0) return new Map()
    const res = (await COUNTS.run(this.redis, backendIds.map((id) => this.key(id)), [now, this.maxAgeMs])) as number[]
    return new Map(backendIds.map((id, i) => [id, Number(res[i] ?? 0)]))
  }
}
