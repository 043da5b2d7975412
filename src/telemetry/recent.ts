import type { RequestFacts } from './metrics.ts'
import { clip } from './series.ts'

/** Key under which names past a bucket's per-dimension cap are summed. */
export const OTHER = '__other__'

interface Bucket {
  /** Start of the minute (epoch ms). */
  t: number
  requests: number
  errors: number
  promptTokens: number
  completionTokens: number
  cacheHits: number
  cacheMisses: number
  latencySumMs: number
  byConsumer: Map<string, number>
  byModel: Map<string, number>
}

export interface RecentBucket {
  readonly t: string
  readonly requests: number
  readonly errors: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly totalTokens: number
  readonly cacheHits: number
  readonly cacheMisses: number
  readonly avgLatencyMs: number | null
  readonly byConsumer: Record<string, number>
  readonly byModel: Record<string, number>
}

export interface RecentOptions {
  /** Bucket width; one minute by default. */
  readonly bucketMs?: number
  /** How many buckets are kept (a ring): two hours of minutes by default. */
  readonly buckets?: number
  /** Distinct consumers / models kept per bucket before the rest is summed under `__other__`. */
  readonly maxKeys?: number
}

/**
 * This instance's recent traffic in fixed time buckets, for the live dashboard: requests, errors, tokens
 * by consumer and by model, cache hits. A ring of a fixed number of buckets, each with capped maps, so
 * its memory is bounded whatever the traffic. Long-range and multi-instance reports come from the ledger.
 */
export class RecentActivity {
  private readonly bucketMs: number
  private readonly ring: Array<Bucket | null>
  private readonly maxKeys: number

  constructor(private readonly now: () => number, opts: RecentOptions = {}) {
    this.bucketMs = opts.bucketMs ?? 60_000
    this.ring = new Array(opts.buckets ?? 120).fill(null)
    this.maxKeys = opts.maxKeys ?? 50
  }

  record(f: RequestFacts, at: number): void {
    const b = this.bucket(at)
    b.requests++
    if (f.status >= 400) b.errors++
    b.promptTokens += f.promptTokens
    b.completionTokens += f.completionTokens
    b.latencySumMs += f.durationSeconds * 1000
    const tokens = f.promptTokens + f.completionTokens
    if (tokens > 0) {
      this.add(b.byConsumer, f.consumer, tokens)
      this.add(b.byModel, f.model, tokens)
    }
  }

  cacheLookup(result: 'hit' | 'miss' | 'bypass'): void {
    if (result === 'bypass') return
    const b = this.bucket(this.now())
    if (result === 'hit') b.cacheHits++
    else b.cacheMisses++
  }

  /** The buckets of the last `minutes` (oldest first), empty ones included so charts have a steady axis. */
  snapshot(windowMs: number): { bucketSeconds: number; buckets: RecentBucket[] } {
    const size = this.ring.length
    const span = Math.min(size, Math.max(1, Math.ceil(windowMs / this.bucketMs)))
    const current = Math.floor(this.now() / this.bucketMs)
    const out: RecentBucket[] = []
    for (let i = current - span + 1; i <= current; i++) {
      const b = this.ring[((i % size) + size) % size]
      const t = i * this.bucketMs
      const live = b && b.t === t ? b : null
      out.push({
        t: new Date(t).toISOString(),
        requests: live?.requests ?? 0,
        errors: live?.errors ?? 0,
        promptTokens: live?.promptTokens ?? 0,
        completionTokens: live?.completionTokens ?? 0,
        totalTokens: (live?.promptTokens ?? 0) + (live?.completionTokens ?? 0),
        cacheHits: live?.cacheHits ?? 0,
        cacheMisses: live?.cacheMisses ?? 0,
        avgLatencyMs: live && live.requests ? Math.round(live.latencySumMs / live.requests) : null,
        byConsumer: live ? Object.fromEntries(live.byConsumer) : {},
        byModel: live ? Object.fromEntries(live.byModel) : {},
      })
    }
    return { bucketSeconds: this.bucketMs / 1000, buckets: out }
  }

  private bucket(at: number): Bucket {
    const i = Math.floor(at / this.bucketMs)
    const t = i * this.bucketMs
    const slot = ((i % this.ring.length) + this.ring.length) % this.ring.length
    let b = this.ring[slot]
    if (b && b.t > t) return this.scratch(t) // older than the ring reaches: nowhere to show it
    if (!b || b.t !== t) {
      b = this.scratch(t)
      this.ring[slot] = b
    }
    return b
  }

  private scratch(t: number): Bucket {
    return { t, requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, cacheHits: 0, cacheMisses: 0, latencySumMs: 0, byConsumer: new Map(), byModel: new Map() }
  }

  private add(m: Map<string, number>, name: string, n: number): void {
    const key = clip(name)
    const prev = m.get(key)
    if (prev !== undefined) m.set(key, prev + n)
    else if (m.size < this.maxKeys) m.set(key, n)
    else m.set(OTHER, (m.get(OTHER) ?? 0) + n)
  }
}
