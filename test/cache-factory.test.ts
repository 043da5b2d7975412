// The cache back-end factory: each kind builds a working store; Redis only when a real one answers.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { createCacheStore, createVectorStore, localEmbedder } from '../src/cache/factory.ts'
import { closeRedis, createRedisClient, waitReady } from '../src/stores/redis/connection.ts'
import { serviceAvailable } from './helpers/gateway.ts'

describe('cache factory', () => {
  it('builds a memory exact-cache store', async () => {
    const s = createCacheStore({ kind: 'memory', maxEntries: 2 })
    await s.set('a', '1', 1_000, 0)
    assert.equal(await s.get('a', 1), '1')
    await s.close()
  })

  it('builds a Redis exact-cache store on a shared client, leaving the client open', async (t) => {
    if (!(await serviceAvailable('redis'))) { t.skip('no Redis'); return }
    const redis = createRedisClient({ url: 'redis://127.0.0.1:6379', commandTimeout: 2_000 }, pino({ level: 'silent' }))
    try {
      assert.ok(await waitReady(redis, 5_000))
      const prefix = `sluice-test:factory:${randomUUID()}:`
      const s = createCacheStore({ kind: 'redis', redis, keyPrefix: prefix })
      await s.set('k', 'v', 5_000, Date.now())
      assert.equal(await s.get('k', Date.now()), 'v')
      await s.close()
      assert.equal(await redis.ping(), 'PONG')
      await redis.del(`${prefix}cache:k`)
    } finally {
      await closeRedis(redis)
    }
  })

  it('builds a memory vector store', async () => {
    const s = createVectorStore({ kind: 'memory' })
    await s.upsert({ id: 'x', partition: 'p', vector: Float32Array.from([1, 0]), prompt: 'q', payload: 'a', expiresAt: 10 })
    const m = await s.nearest('p', Float32Array.from([1, 0]), 1, 0)
    assert.equal(m[0]!.entry.id, 'x')
    await s.close()
  })

  it('hands out local embedder handles without loading the model until used', async () => {
    const e = localEmbedder()
    assert.equal(e.id, 'local:use-lite')
    assert.equal(e.dims, 512)
    await e.close()
  })
})
