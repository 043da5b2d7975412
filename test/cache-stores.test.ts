import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { MemoryCacheStore } from '../src/stores/memory/cache.ts'
import { MemoryVectorStore } from '../src/stores/memory/vector.ts'
import { cacheStoreContract } from './contract/cache-store.ts'
import { axis, entry, vectorStoreContract } from './contract/vector-store.ts'

cacheStoreContract('memory', async () => new MemoryCacheStore())
vectorStoreContract('memory (brute force)', async () => new MemoryVectorStore())
// Same contract with the usearch index engaged from the first entry.
vectorStoreContract('memory (usearch index)', async () => new MemoryVectorStore({ indexAbove: 0 }))

const T0 = Date.parse('2026-01-01T00:00:00Z')

describe('MemoryCacheStore bounds', () => {
  it('evicts the least recently used entry past maxEntries', async () => {
    const s = new MemoryCacheStore({ maxEntries: 2 })
    await s.set('a', '1', 60_000, T0)
    await s.set('b', '2', 60_000, T0)
    assert.equal(await s.get('b', T0), '2', 'b is stored before it is evicted')
    assert.equal(await s.get('a', T0), '1') // a is now the most recent
    await s.set('c', '3', 60_000, T0)
    assert.equal(await s.get('b', T0), null)
    assert.equal(await s.get('a', T0), '1')
    assert.equal(await s.get('c', T0), '3')
  })

  it('evicts past maxBytes and refuses a value bigger than the budget', async () => {
    const s = new MemoryCacheStore({ maxBytes: 100 })
    await s.set('a', 'x'.repeat(20), 60_000, T0) // 42 bytes
    await s.set('b', 'y'.repeat(20), 60_000, T0) // 84 total
    assert.equal(await s.get('a', T0), 'x'.repeat(20), 'a is stored before it is evicted')
    assert.equal(await s.get('b', T0), 'y'.repeat(20)) // b is now the most recent
    await s.set('c', 'z'.repeat(20), 60_000, T0) // a goes
    assert.equal(await s.get('a', T0), null)
    assert.equal(await s.get('c', T0), 'z'.repeat(20))
    await s.set('huge', 'h'.repeat(100), 60_000, T0)
    assert.equal(await s.get('huge', T0), null)
    assert.equal(await s.get('c', T0), 'z'.repeat(20))
  })
})

describe('MemoryVectorStore bounds', () => {
  it('keeps at most maxEntriesPerPartition per partition, oldest evicted', async () => {
    const s = new MemoryVectorStore({ maxEntriesPerPartition: 2 })
    await s.upsert(entry('a', 'p', axis(0)))
    await s.upsert(entry('b', 'p', axis(1)))
    await s.upsert(entry('c', 'p', axis(2)))
    await s.upsert(entry('z', 'q', axis(0)))
    assert.equal(await s.size(), 3)
    assert.deepEqual((await s.nearest('p', axis(0), 5, T0)).map((m) => m.entry.id).sort(), ['b', 'c'])
  })

  it('keeps at most maxEntries overall', async () => {
    const s = new MemoryVectorStore({ maxEntries: 2 })
    await s.upsert(entry('a', 'p', axis(0)))
    await s.upsert(entry('b', 'q', axis(1)))
    await s.upsert(entry('c', 'r', axis(2)))
    assert.equal(await s.size(), 2)
    assert.deepEqual(await s.nearest('p', axis(0), 5, T0), [])
  })

  it('switches to the usearch index past indexAbove and still finds the nearest', async () => {
    const s = new MemoryVectorStore({ indexAbove: 16 })
    const rnd = (seed: number) => { const v = new Float32Array(32); for (let i = 0; i < 32; i++) v[i] = Math.sin(seed * 7.3 + i * 1.7); return v }
    for (let i = 0; i < 200; i++) await s.upsert({ ...entry(`e${i}`, 'p', rnd(i)) })
    const m = await s.nearest('p', rnd(123), 1, T0)
    assert.equal(m[0]!.entry.id, 'e123')
    assert.ok(m[0]!.distance < 1e-3)
  })

  it('resets a partition whose vectors change dimension (embedding model changed)', async () => {
    const s = new MemoryVectorStore()
    await s.upsert(entry('a', 'p', axis(0)))
    await s.upsert(entry('b', 'p', new Float32Array([1, 0, 0])))
    assert.equal(await s.size(), 1)
    assert.equal((await s.nearest('p', new Float32Array([1, 0, 0]), 2, T0))[0]!.entry.id, 'b')
  })
})
