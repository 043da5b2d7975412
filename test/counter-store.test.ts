import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { Redis } from 'ioredis'
import { MemoryCounterStore } from '../src/stores/memory/counter.ts'
import { RedisCounterStore } from '../src/stores/redis/counter.ts'
import { closeRedis, createRedisClient, pingRedis, waitReady } from '../src/stores/redis/connection.ts'
import { RedisScript } from '../src/stores/redis/script.ts'
import { FallbackCounterStore } from '../src/stores/fallback-counter.ts'
import { GatewayError } from '../src/core/errors.ts'
import { noopMetrics, type MetricsSink } from '../src/telemetry/sink.ts'
import { serviceAvailable } from './helpers/gateway.ts'
import { freePort } from './helpers/process.ts'
import { counterStoreContract } from './contract/counter-store.ts'

const silent = pino({ level: 'silent' })
const redisUp = await serviceAvailable('redis')
const prefix = `sluice-test-${randomUUID().slice(0, 8)}:`
let shared: Redis | null = null

counterStoreContract('memory', async () => ({ store: new MemoryCounterStore() }), { logLength: async (s, key, w) => (s as MemoryCounterStore).logLength(key, w) })
counterStoreContract('redis', async () => {
  shared ??= createRedisClient({ url: 'redis://127.0.0.1:6379', commandTimeout: 2000 }, silent)
  await waitReady(shared, 5000)
  return { store: new RedisCounterStore(shared, prefix) }
}, { skip: !redisUp, logLength: async (s, key, w) => shared!.zcard((s as RedisCounterStore).keysOf(key, [w])[0]!) })

after(async () => {
  if (!shared) return
  const keys = await shared.keys(`${prefix}*`)
  if (keys.length) await shared.del(...keys)
  await closeRedis(shared)
})

describe('Redis counter keys and scripts', { skip: !redisUp }, () => {
  it('keeps one counter in one cluster slot, with compact hashed names', () => {
    const s = new RedisCounterStore(null as unknown as Redis, 'p:')
    const keys = s.keysOf('tokens:someone@example.com', [
      { kind: 'sliding', name: 'tpm', limit: 1, windowMs: 60_000 },
      { kind: 'fixed', name: 'quota', limit: 1, start: 0, end: 1 },
    ])
    const tags = new Set(keys.map((k) => /\{([0-9a-f]{16})\}/.exec(k)?.[1]))
    assert.equal(tags.size, 1)
    assert.ok(keys.every((k) => !k.includes('example.com')))
  })

  it('falls back from EVALSHA to EVAL when the server does not know the script', async () => {
    const client = createRedisClient({ url: 'redis://127.0.0.1:6379', commandTimeout: 2000 }, silent)
    try {
      assert.equal(await waitReady(client, 5000), true)
      // A script this server has never seen: the first EVALSHA answers NOSCRIPT.
      const script = new RedisScript(`-- ${randomUUID()}\nreturn tonumber(ARGV[1]) + 1`)
      assert.equal(await script.run(client, [], [41]), 42)
      assert.equal(await client.evalsha(script.sha, 0, 1), 2) // cached by the EVAL
    } finally {
      await closeRedis(client)
    }
  })
})

describe('Redis connection factory', () => {
  it('does not crash or hang when Redis is unreachable, and fails commands fast', async () => {
    const port = await freePort() // nothing listens there
    const client = createRedisClient({ url: `redis://127.0.0.1:${port}`, commandTimeout: 200 }, silent)
    try {
      assert.equal(await waitReady(client, 300), false)
      assert.equal(await pingRedis(client), false)
      await assert.rejects(client.get('x'))
    } finally {
      await closeRedis(client)
    }
  })
})

describe('FallbackCounterStore (store.onFailure)', () => {
  const failing = { kind: 'redis' as const, reserve: async () => { throw new Error('connection refused') }, settle: async () => { throw new Error('connection refused') }, peek: async () => { throw new Error('connection refused') }, close: async () => {} }
  const w = [{ kind: 'sliding' as const, name: 'tpm', limit: 100, windowMs: 60_000 }]
  const events: string[] = []
  const metrics: MetricsSink = { ...noopMetrics, storeFailure: (store, action) => { events.push(`${store}:${action}`) } }

  it('open: answers from a local counter, flags it, and settles there', async () => {
    const s = new FallbackCounterStore(failing, 'open', silent, metrics)
    const r = await s.reserve({ key: 'k', id: 'a', amount: 80, windows: w, now: 0, leaseMs: 1000 })
    assert.equal(r.ok, true)
    assert.equal(r.local, true)
    assert.equal((await s.reserve({ key: 'k', id: 'b', amount: 30, windows: w, now: 1, leaseMs: 1000 })).ok, false)
    await s.settle({ key: 'k', id: 'a', reserved: 80, actual: 10, windows: w, now: 2, local: true })
    assert.equal((await s.reserve({ key: 'k', id: 'c', amount: 30, windows: w, now: 3, leaseMs: 1000 })).ok, true)
    assert.ok(events.includes('redis:fallback'))
    assert.equal(s.degraded, true)
  })

  it('closed: refuses with 503 service_unavailable', async () => {
    const s = new FallbackCounterStore(failing, 'closed', silent, metrics)
    await assert.rejects(s.reserve({ key: 'k', id: 'a', amount: 1, windows: w, now: 0, leaseMs: 1000 }), (err: unknown) => err instanceof GatewayError && err.status === 503 && err.code === 'service_unavailable')
    assert.ok(events.includes('redis:refused'))
  })
})
