import { CLOSED_RECORD, type BreakerRecord, type BreakerStore, type FailureInput } from '../breaker.ts'

interface Entry {
  record: BreakerRecord
  /** Timestamps of the failures in the current window, oldest first (at most `threshold` kept). */
  times: number[]
}

/** The embedded breaker store: one per process (not per config snapshot), so reloads keep breaker state. */
export class MemoryBreakerStore implements BreakerStore {
  private readonly entries = new Map<string, Entry>()

  async read(ids: readonly string[]): Promise<Map<string, BreakerRecord>> {
    const out = new Map<string, BreakerRecord>()
    for (const id of ids) {
      const e = this.entries.get(id)
      if (e) out.set(id, e.record)
    }
    return out
  }

  async recordFailure(id: string, f: FailureInput): Promise<BreakerRecord> {
    const e = this.entry(id)
    const r = e.record
    const base = { ...r, lastFailureAt: f.now, lastReason: f.reason }
    if (r.openUntil > 0) {
      const halfOpen = r.openUntil <= f.now
      e.record = { ...base, openUntil: Math.max(r.openUntil, f.now + f.tripMs), trialUntil: 0, trips: r.trips + (halfOpen ? 1 : 0) }
      return e.record
    }
    const from = f.now - f.windowMs
    e.times = e.times.filter((t) => t > from)
    e.times.push(f.now)
    if (e.times.length > f.threshold) e.times.splice(0, e.times.length - f.threshold)
    if (e.times.length >= f.threshold) {
      e.times = []
      e.record = { ...base, openUntil: f.now + f.tripMs, trialUntil: 0, failures: 0, trips: r.trips + 1 }
    } else {
      e.record = { ...base, failures: e.times.length }
    }
    return e.record
  }

  async claimTrial(id: string, now: number, leaseMs: number): Promise<boolean> {
    const e = this.entries.get(id)
    if (!e) return false
    const r = e.record
    if (r.openUntil === 0 || r.openUntil > now || r.trialUntil > now) return false
    e.record = { ...r, trialUntil: now + leaseMs }
    return true
  }

  async close(id: string, now: number): Promise<BreakerRecord> {
    const e = this.entries.get(id)
    if (!e) return CLOSED_RECORD
    if (e.record.openUntil > now) return e.record
    e.times = []
    e.record = { ...e.record, openUntil: 0, trialUntil: 0, failures: 0 }
    return e.record
  }

  private entry(id: string): Entry {
    let e = this.entries.get(id)
    if (!e) {
      e = { record: CLOSED_RECORD, times: [] }
      this.entries.set(id, e)
    }
    return e
  }
}
