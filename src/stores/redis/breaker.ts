import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { BreakerRecord, BreakerStore, FailureInput } from '../breaker.ts'
import { RedisScript } from './script.ts'

/** Fields of a breaker hash, in the order every script returns them. */
const FIELDS = ['ou', 'tu', 'n', 'tr', 'lf', 'lr'] as const

/** How long a record outlives its trip: long enough that a half-open circuit still needs its trial. */
const KEEP_MS = 3_600_000

const RETURN = `return redis.call('HMGET', KEYS[1], 'ou', 'tu', 'n', 'tr', 'lf', 'lr')`

// KEYS: hash, failure log (sorted set of timestamps). ARGV: now, threshold, windowMs, tripMs, reason, unique member.
const RECORD_FAILURE = new RedisScript(`
local now = tonumber(ARGV[1])
local threshold = tonumber(ARGV[2])
local win = tonumber(ARGV[3])
local trip = tonumber(ARGV[4])
local ou = tonumber(redis.call('HGET', KEYS[1], 'ou') or '0')
local tr = tonumber(redis.call('HGET', KEYS[1], 'tr') or '0')
if ou > 0 then
  if ou <= now then tr = tr + 1 end
  if now + trip > ou then ou = now + trip end
  redis.call('HSET', KEYS[1], 'ou', ou, 'tu', 0, 'tr', tr, 'lf', now, 'lr', ARGV[5])
else
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - win)
  redis.call('ZADD', KEYS[2], now, ARGV[6])
  local n = redis.call('ZCARD', KEYS[2])
  if n >= threshold then
    redis.call('DEL', KEYS[2])
    ou = now + trip
    redis.call('HSET', KEYS[1], 'ou', ou, 'tu', 0, 'n', 0, 'tr', tr + 1, 'lf', now, 'lr', ARGV[5])
  else
    redis.call('HSET', KEYS[1], 'ou', 0, 'tu', 0, 'n', n, 'tr', tr, 'lf', now, 'lr', ARGV[5])
    redis.call('PEXPIRE', KEYS[2], win + 1000)
  end
end
local keep = ${KEEP_MS}
if ou > now then keep = keep + (ou - now) end
redis.call('PEXPIRE', KEYS[1], keep)
${RETURN}`)

// KEYS: hash. ARGV: now, leaseMs.
const CLAIM_TRIAL = new RedisScript(`
local now = tonumber(ARGV[1])
local ou = tonumber(redis.call('HGET', KEYS[1], 'ou') or '0')
local tu = tonumber(redis.call('HGET', KEYS[1], 'tu') or '0')
if ou == 0 or ou > now or tu > now then return 0 end
redis.call('HSET', KEYS[1], 'tu', now + tonumber(ARGV[2]))
return 1`)

// KEYS: hash, failure log. ARGV: now.
const CLOSE = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local ou = tonumber(redis.call('HGET', KEYS[1], 'ou') or '0')
if ou <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'ou', 0, 'tu', 0, 'n', 0)
  redis.call('DEL', KEYS[2])
end
${RETURN}`)

/**
 * Breaker state shared by every gateway process: each change is one atomic Lua call, and routing reads the
 * records of a pool's members fresh with one pipelined round trip per request, so a trip recorded by one
 * process is honoured by the next request anywhere (no polling interval, no local cache to go stale).
 * Keys are `<prefix>breaker:{<backend id>}` (a hash) and `…:f` (the failure log), hash-tagged so both sit
 * in one Redis Cluster slot. Errors propagate; the router treats an unreadable store as "all closed".
 */
export class RedisBreakerStore implements BreakerStore {
  constructor(private readonly client: Redis, private readonly prefix: string) {}

  async read(ids: readonly string[]): Promise<Map<string, BreakerRecord>> {
    const out = new Map<string, BreakerRecord>()
    if (ids.length === 0) return out
    const pipe = this.client.pipeline()
    for (const id of ids) pipe.hmget(this.key(id), ...FIELDS)
    const replies = (await pipe.exec()) ?? []
    ids.forEach((id, i) => {
      const [err, values] = replies[i] ?? [new Error('no reply'), null]
      if (err) throw err
      const rec = decode(values as (string | null)[])
      if (rec) out.set(id, rec)
    })
    return out
  }

  async recordFailure(id: string, f: FailureInput): Promise<BreakerRecord> {
    const member = `${f.now}:${randomBytes(6).toString('hex')}`
    const reply = await RECORD_FAILURE.run(this.client, [this.key(id), `${this.key(id)}:f`], [f.now, f.threshold, f.windowMs, f.tripMs, f.reason, member])
    return decode(reply as (string | null)[])!
  }

  async claimTrial(id: string, now: number, leaseMs: number): Promise<boolean> {
    return (await CLAIM_TRIAL.run(this.client, [this.key(id)], [now, leaseMs])) === 1
  }

  async close(id: string, now: number): Promise<BreakerRecord> {
    const reply = await CLOSE.run(this.client, [this.key(id), `${this.key(id)}:f`], [now])
    return decode(reply as (string | null)[] | null) ?? { openUntil: 0, trialUntil: 0, failures: 0, trips: 0, lastFailureAt: 0, lastReason: null }
  }

  /** The hash key of a backend's record (exposed for tests). */
  key(id: string): string {
    return `${this.prefix}breaker:{${id}}`
  }
}

function decode(values: readonly (string | null)[] | null): BreakerRecord | null {
  if (!values || values.every((v) => v === null)) return null
  const num = (i: number) => Number(values[i] ?? 0) || 0
  return { openUntil: num(0), trialUntil: num(1), failures: num(2), trips: num(3), lastFailureAt: num(4), lastReason: values[5] ?? null }
}
