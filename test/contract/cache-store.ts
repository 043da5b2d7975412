/**
 * The shared contract every CacheStore (exact response cache) passes: memory here, Redis in the
 * distributed store's tests. Call `cacheStoreContract('redis', () => makeStore())` from a test file; each
 * case gets a fresh store from the factory and closes it.
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { CacheStore } from '../../src/cache/types.ts'

export function cacheStoreContract(name: string, factory: () => Promise<CacheStore>): void {
  const T0 = Date.parse('2026-01-01T00:00:00Z')
  const withStore = (fn: (s: CacheStore) => Promise<void>) => async () => {
    const s = await factory()
    try { await fn(s) } finally { await s.close() }
  }

  describe(`CacheStore contract: ${name}`, () => {
    it('returns null for an unknown key', withStore(async (s) => {
      assert.equal(await s.get('nope', T0), null)
    }))

    it('returns what was set, byte for byte (unicode, JSON)', withStore(async (s) => {
      const v = JSON.stringify({ text: 'héllo 🌍 "quoted"\nline', n: 1 })
      await s.set('k1', v, 60_000, T0)
      assert.equal(await s.get('k1', T0 + 1), v)
    }))

    it('overwrites a key', withStore(async (s) => {
      await s.set('k', 'a', 60_000, T0)
      await s.set('k', 'b', 60_000, T0)
      assert.equal(await s.get('k', T0), 'b')
    }))

    it('expires an entry at its TTL, by the clock it is given', withStore(async (s) => {
      await s.set('k', 'v', 1_000, T0)
      assert.equal(await s.get('k', T0 + 999), 'v')
      assert.equal(await s.get('k', T0 + 1_000), null)
      assert.equal(await s.get('k', T0 + 5_000), null)
    }))

    it('keeps keys apart', withStore(async (s) => {
      await s.set('a', '1', 60_000, T0)
      await s.set('b', '2', 60_000, T0)
      assert.equal(await s.get('a', T0), '1')
      assert.equal(await s.get('b', T0), '2')
    }))

    it('stores a large value (256 KiB)', withStore(async (s) => {
      const v = 'x'.repeat(256 * 1024)
      await s.set('big', v, 60_000, T0)
      assert.equal(await s.get('big', T0), v)
    }))
  })
}
