import { createRequire } from 'node:module'
import type { VectorEntry, VectorMatch, VectorStore } from '../../cache/types.ts'

// usearch ships a prebuilt CommonJS binding; load it lazily so a gateway without a semantic cache never does.
const require = createRequire(import.meta.url)
interface UsearchIndex {
  add(key: bigint, vector: Float32Array): void
  search(vector: Float32Array, k: number, threads: number): { keys: BigUint64Array; distances: Float32Array }
  remove(key: bigint): number
  size(): number
}
let IndexCtor: (new (cfg: { dimensions: number; metric: string; connectivity?: number; expansion_add?: number; expansion_search?: number }) => UsearchIndex) | null = null
function newIndex(dimensions: number): UsearchIndex {
  IndexCtor ??= (require('usearch') as { Index: NonNullable<typeof IndexCtor> }).Index
  // Wider search than usearch's default (a search-time setting: inserts cost the same): at 100k entries the
  // default found the true nearest entry for only ~78% of queries. A missed neighbour costs a cache miss,
  // never a wrong answer.
  return new IndexCtor({ dimensions, metric: 'cos', expansion_search: 256 })
}

export interface MemoryVectorOptions {
  /** Most entries per partition (oldest evicted first). */
  readonly maxEntriesPerPartition?: number
  /** Most entries over all partitions (oldest evicted first). */
  readonly maxEntries?: number
  /**
   * Partitions up to this size are searched by brute force; bigger ones get a usearch HNSW index. Measured
   * here at 256 dims: brute force ≈ 0.2 ms per 1k entries, usearch search ≈ 0.4 ms flat but ≈ 0.9 ms per
   * insert, so the index only pays off for large partitions.
   */
  readonly indexAbove?: number
}

interface Item { readonly entry: VectorEntry; readonly unit: Float32Array; readonly key: bigint }

/** One varyBy partition: its entries (insertion order = age) and, once large, an ANN index over them. */
class Partition {
  readonly items = new Map<string, Item>()
  readonly byKey = new Map<bigint, Item>()
  index: UsearchIndex | null = null
  constructor(readonly dims: number) {}
}

/**
 * The embedded vector store: bounded, partitioned by varyBy value so a lookup only ever sees entries of its
 * own partition (no cross-tenant candidates even before filtering). Vectors are stored unit-normalised, so
 * cosine distance is 1 − dot product.
 */
export class MemoryVectorStore implements VectorStore {
  private readonly partitions = new Map<string, Partition>()
  /** Every id, oldest first, for the global bound. */
  private readonly order = new Map<string, string>()
  private nextKey = 1n
  private readonly maxPer: number
  private readonly maxAll: number
  private readonly indexAbove: number

  constructor(opts: MemoryVectorOptions = {}) {
    this.maxPer = opts.maxEntriesPerPartition ?? 10_000
    this.maxAll = opts.maxEntries ?? 100_000
    this.indexAbove = opts.indexAbove ?? 2_048
  }

  async upsert(entry: VectorEntry): Promise<void> {
    this.remove(entry.id)
    let p = this.partitions.get(entry.partition)
    if (p && p.dims !== entry.vector.length) {
      // The embedding model changed under this partition: old vectors are not comparable any more.
      for (const id of [...p.items.keys()]) this.remove(id)
      p = undefined
    }
    if (!p) {
      p = new Partition(entry.vector.length)
      this.partitions.set(entry.partition, p)
    }
    const item: Item = { entry, unit: unit(entry.vector), key: this.nextKey++ }
    p.items.set(entry.id, item)
    p.byKey.set(item.key, item)
    this.order.set(entry.id, entry.partition)
    if (p.index) p.index.add(item.key, item.unit)
    else if (p.items.size > this.indexAbove) {
      p.index = newIndex(p.dims)
      for (const it of p.items.values()) p.index.add(it.key, it.unit)
    }
    while (p.items.size > this.maxPer) this.remove(p.items.keys().next().value as string)
    while (this.order.size > this.maxAll) this.remove(this.order.keys().next().value as string)
  }

  async nearest(partition: string, vector: Float32Array, k: number, now: number): Promise<VectorMatch[]> {
    const p = this.partitions.get(partition)
    if (!p || k <= 0 || p.dims !== vector.length) return []
    const q = unit(vector)
    const out: VectorMatch[] = []
    const expired: string[] = []
    if (p.index) {
      // Ask for a few more than k: expired entries found on the way are dropped (and purged).
      const res = p.index.search(q, Math.min(p.items.size, k + 8), 1)
      for (let i = 0; i < res.keys.length && out.length < k; i++) {
        const it = p.byKey.get(res.keys[i]!)
        if (!it) continue
        if (it.entry.expiresAt <= now) { expired.push(it.entry.id); continue }
        out.push({ entry: it.entry, distance: clampDistance(res.distances[i]!) })
      }
    } else {
      for (const it of p.items.values()) {
        if (it.entry.expiresAt <= now) { expired.push(it.entry.id); continue }
        let dot = 0
        const u = it.unit
        for (let i = 0; i < u.length; i++) dot += u[i]! * q[i]!
        insertSorted(out, { entry: it.entry, distance: clampDistance(1 - dot) }, k)
      }
    }
    for (const id of expired) this.remove(id)
    return out
  }

  async delete(id: string): Promise<void> { this.remove(id) }

  async size(): Promise<number> { return this.order.size }

  async close(): Promise<void> {
    this.partitions.clear()
    this.order.clear()
  }

  private remove(id: string): void {
    const name = this.order.get(id)
    if (name === undefined) return
    this.order.delete(id)
    const p = this.partitions.get(name)!
    const it = p.items.get(id)!
    p.items.delete(id)
    p.byKey.delete(it.key)
    if (p.index) p.index.remove(it.key)
    if (p.items.size === 0) this.partitions.delete(name)
  }
}

function unit(v: Float32Array): Float32Array {
  let n = 0
  for (let i = 0; i < v.length; i++) n += v[i]! * v[i]!
  const out = new Float32Array(v.length)
  if (n === 0) return out
  const inv = 1 / Math.sqrt(n)
  for (let i = 0; i < v.length; i++) out[i] = v[i]! * inv
  return out
}

function clampDistance(d: number): number {
  return d < 0 ? 0 : d > 2 ? 2 : d
}

/** Keeps `out` sorted by distance and at most k long. */
function insertSorted(out: VectorMatch[], m: VectorMatch, k: number): void {
  if (out.length === k && m.distance >= out[k - 1]!.distance) return
  let i = out.length
  while (i > 0 && out[i - 1]!.distance > m.distance) i--
  out.splice(i, 0, m)
  if (out.length > k) out.pop()
}
