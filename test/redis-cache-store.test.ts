// The Redis exact-cache store against the real Redis on 127.0.0.1:6379: the shared CacheStore contract, plus
// what only Redis has (key prefix, server-side TTL, the size bound, errors surfacing for the caller).
import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { cacheStoreContract } from './contract/cache-store.ts'
import { serviceAvailable } from './helpers/gateway.ts'
import { RedisCacheStore } from '../src/stores/redis/cache-store.ts'
import { closeRedis, createRedisClient, waitReady } from '../src/stores/redis/connection.ts'

const up = await serviceAvailable('redis')
const RUN = `sluice-test:cache:${randomUUID()}:`
const logger = pino({ level: 'silent' })

if (up) {
  const client = createRedisClient({ url: 'redis://127.0.0.1:6379', commandTimeout: 2_000, name: 'sluice-test' }, logger)
  assert.ok(await waitReady(client, 5_000), 'redis ready')
  let n = 0
  after(async () => {
    // Every key this run wrote carries a TTL, but remove them now rather than leave them for a minute.
    const keys = await client.keys(`${RUN}*`)
    if (keys.length) await client.del(...keys)
    await closeRedis(client)
  })

  // Each case gets its own prefix, so cases never see each other's keys (the contract expects a fresh store).
  cacheStoreContract('redis', async () => new RedisCacheStore(client, { keyPrefix: `${RUN}${n++}:` }))

  describe('RedisCacheStore specifics', () => {
    it('writes under the prefix with a server-side TTL', async () => {
      const s = new RedisCacheStore(client, { keyPrefix: `${RUN}ttl:` })
      await s.set('abc', 'value', 30_000, Date.now())
      const pttl = await client.pttl(`${RUN}ttl:cache:abc`)
      assert.ok(pttl > 0 && pttl <= 30_000, `pttl ${pttl}`)
      assert.equal(await s.get('abc', Date.now()), 'value')
      await s.close()
      // The store does not own the shared client: it is still usable.
      assert.equal(await client.ping(), 'PONG')
    })

    it('does not store a value over the size bound, nor one with a non-positive TTL', async () => {
      const s = new RedisCacheStore(client, { keyPrefix: `${RUN}bound:`, maxValueBytes: 1024 })
      const now = Date.now()
      await s.set('big', 'é'.repeat(600), 60_000, now) // 1200 UTF-8 bytes
      await s.set('zero', 'v', 0, now)
      await s.set('ok', 'x'.repeat(1024), 60_000, now)
      assert.equal(await s.get('big', now), null)
      assert.equal(await s.get('zero', now), null)
      assert.equal(await s.get('ok', now), 'x'.repeat(1024))
    })

    it('treats a foreign value under its key as a miss', async () => {
      const s = new RedisCacheStore(client, { keyPrefix: `${RUN}foreign:` })
      // First prove the key naming: a value the store writes lands under that very key and reads back.
      await s.set('k', 'ours', 60_000, Date.now())
      assert.ok(await client.exists(`${RUN}foreign:cache:k`), 'the store writes under <prefix>cache:<key>')
      assert.equal(await s.get('k', Date.now()), 'ours')
      await client.set(`${RUN}foreign:cache:k`, 'not-ours', 'PX', 60_000)
      assert.equal(await s.get('k', Date.now()), null)
    })

    it('rejects (for the caller to count a miss) when Redis is unreachable, without hanging', async () => {
      // A port nothing listens on: the client fails fast (no offline queue).
      const dead = createRedisClient({ url: 'redis://127.0.0.1:1', commandTimeout: 200, name: 'sluice-test-dead' }, logger)
      const s = new RedisCacheStore(dead, { keyPrefix: RUN, ownsClient: true })
      await assert.rejects(s.get('k', Date.now()))
      await assert.rejects(s.set('k', 'v', 1_000, Date.now()))
      await s.close()
      // The store owned that client: it is closed and stops reconnecting (this file could not exit otherwise).
      if (dead.status !== 'end') await new Promise((resolve) => dead.once('end', resolve))
      assert.equal(dead.status, 'end')
    })
  })
} else {
  it('redis cache store (skipped: no Redis on 127.0.0.1:6379)', { skip: true }, () => {})
}

