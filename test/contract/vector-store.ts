/**
 * The shared contract every VectorStore passes: memory here, PostgreSQL (pgvector) in the distributed
 * store's tests. Call `vectorStoreContract('postgres', () => makeStore())`; each case gets a fresh, empty
 * store from the factory and closes it. Vectors are 8-dimensional, not normalised (stores must normalise or
 * compute true cosine distance).
 */
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { VectorEntry, VectorStore } from '../../src/cache/types.ts'

const T0 = Date.parse('2026-01-01T00:00:00Z')
const DIMS = 8

/** A vector along axis `i` (scaled, to check normalisation), optionally tilted towards axis `j`. */
export function axis(i: number, scale = 1, j = -1, tilt = 0): Float32Array {
  const v = new Float32Array(DIMS)
  v[i] = scale
  if (j >= 0) v[j] = tilt * scale
  return v
}

export function entry(id: string, partition: string, vector: Float32Array, expiresAt = T0 + 3_600_000): VectorEntry {
  return { id, partition, vector, prompt: `prompt of ${id}`, payload: JSON.stringify({ answer: id }), expiresAt }
}

export function vectorStoreContract(name: string, factory: () => Promise<VectorStore>): void {
  const withStore = (fn: (s: VectorStore) => Promise<void>) => async () => {
    const s = await factory()
    try { await fn(s) } finally { await s.close() }
  }
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-3

  describe(`VectorStore contract: ${name}`, () => {
    it('finds nothing in an empty or unknown partition', withStore(async (s) => {
      assert.deepEqual(await s.nearest('p', axis(0), 3, T0), [])
      await s.upsert(entry('a', 'p', axis(0)))
      assert.deepEqual(await s.nearest('other', axis(0), 3, T0), [])
    }))

    it('returns the entry as stored and cosine distances (0 same, 1 orthogonal, 2 opposite), closest first', withStore(async (s) => {
      await s.upsert(entry('same', 'p', axis(0, 5)))
      await s.upsert(entry('orth', 'p', axis(1)))
      await s.upsert(entry('opp', 'p', axis(0, -2)))
      await s.upsert(entry('near', 'p', axis(0, 1, 1, 0.1)))
      const m = await s.nearest('p', axis(0, 0.5), 4, T0)
      assert.deepEqual(m.map((x) => x.entry.id), ['same', 'near', 'orth', 'opp'])
      assert.ok(close(m[0]!.distance, 0), `same: ${m[0]!.distance}`)
      assert.ok(m[1]!.distance > 0 && m[1]!.distance < 0.01, `near: ${m[1]!.distance}`)
      assert.ok(close(m[2]!.distance, 1), `orth: ${m[2]!.distance}`)
      assert.ok(close(m[3]!.distance, 2), `opp: ${m[3]!.distance}`)
      const e = m[0]!.entry
      assert.equal(e.partition, 'p')
      assert.equal(e.prompt, 'prompt of same')
      assert.equal(e.payload, JSON.stringify({ answer: 'same' }))
      assert.equal(e.expiresAt, T0 + 3_600_000)
      assert.equal(e.vector.length, DIMS)
    }))

    it('returns at most k matches', withStore(async (s) => {
      for (let i = 0; i < 6; i++) await s.upsert(entry(`e${i}`, 'p', axis(i)))
      assert.equal((await s.nearest('p', axis(0), 2, T0)).length, 2)
      assert.equal((await s.nearest('p', axis(0), 1, T0))[0]!.entry.id, 'e0')
    }))

    it('never returns entries of another partition, even identical vectors', withStore(async (s) => {
      await s.upsert(entry('tenant-a', 'product:a', axis(2)))
      await s.upsert(entry('tenant-b', 'product:b', axis(3)))
      const m = await s.nearest('product:b', axis(2), 5, T0)
      assert.deepEqual(m.map((x) => x.entry.id), ['tenant-b'])
    }))

    it('skips expired entries, by the clock it is given', withStore(async (s) => {
      await s.upsert(entry('old', 'p', axis(0), T0 + 1_000))
      await s.upsert(entry('new', 'p', axis(0, 1, 1, 0.5), T0 + 10_000))
      assert.deepEqual((await s.nearest('p', axis(0), 2, T0 + 999)).map((x) => x.entry.id), ['old', 'new'])
      assert.deepEqual((await s.nearest('p', axis(0), 2, T0 + 1_000)).map((x) => x.entry.id), ['new'])
      assert.deepEqual(await s.nearest('p', axis(0), 2, T0 + 10_000), [])
    }))

    it('replaces an entry upserted again under the same id', withStore(async (s) => {
      await s.upsert(entry('x', 'p', axis(0)))
      await s.upsert({ ...entry('x', 'p', axis(1)), payload: 'v2' })
      const m = await s.nearest('p', axis(1), 5, T0)
      assert.equal(m.length, 1)
      assert.equal(m[0]!.entry.payload, 'v2')
      assert.ok(close(m[0]!.distance, 0))
      assert.equal(await s.size(), 1)
    }))

    it('deletes by id and counts entries', withStore(async (s) => {
      await s.upsert(entry('a', 'p', axis(0)))
      await s.upsert(entry('b', 'q', axis(1)))
      assert.equal(await s.size(), 2)
      await s.delete('a')
      await s.delete('unknown')
      assert.equal(await s.size(), 1)
      assert.deepEqual(await s.nearest('p', axis(0), 3, T0), [])
      assert.equal((await s.nearest('q', axis(1), 3, T0))[0]!.entry.id, 'b')
    }))

    it('keeps prompts and payloads with unicode and quotes intact', withStore(async (s) => {
      const payload = JSON.stringify({ t: 'naïve "quote" 🌍\n' })
      await s.upsert({ ...entry('u', 'p', axis(4)), prompt: "l'été \"x\" — ok", payload })
      const m = await s.nearest('p', axis(4), 1, T0)
      assert.equal(m[0]!.entry.prompt, "l'été \"x\" — ok")
      assert.equal(m[0]!.entry.payload, payload)
    }))
  })
}
