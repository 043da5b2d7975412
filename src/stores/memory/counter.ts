import type { CounterStore, CounterWindow, ReserveRequest, ReserveResult, SettleRequest, WindowState } from '../counter.ts'

/** One entry of a sliding log: a reservation, or (past LOG_CAP) several made in one bucket of the window. */
interface Entry {
  ts: number
  amount: number
  /** Set when it has left the window (a reservation settled later is charged afresh, as for a purged entry). */
  gone: boolean
}

/** A reservation's share of the entry it was counted in (its own, or a bucket's), until it is settled. */
interface Member {
  readonly entry: Entry
  amount: number
}

/** A sliding log: entries in time order, a running total, and the open reservations by id. */
interface SlidingLog {
  entries: Entry[]
  head: number
  total: number
  readonly byId: Map<string, Member>
}

/**
 * The bound on a sliding log whatever the rate. Up to LOG_CAP entries in a window each reservation is its
 * own entry (exact). Past it, a reservation made in the same 1/LOG_BUCKETS of the window as the newest
 * entry joins it, and the entry takes the later timestamp: everything in it leaves the window no earlier
 * than it would alone, so no window ever admits more than its limit; capacity comes back at most
 * windowMs / LOG_BUCKETS later than a per-reservation log would give it. A log then holds at most
 * LOG_CAP + LOG_BUCKETS + 1 entries. The Redis script (stores/redis/counter.lua.ts) keeps the same bound.
 */
export const LOG_CAP = 1024
export const LOG_BUCKETS = 128

interface FixedPeriod {
  committed: number
  pending: number
  readonly end: number
  readonly leases: Map<string, { amount: number; expires: number }>
  /**
   * No lease expires before this (a lower bound: settling a lease leaves it as it is). Leases are looked at
   * only once it has passed, not on every check: each check scanning every open reservation made a request
   * cost O(requests in flight) (thousands with long streams).
   */
  nextExpiry: number
}

const SWEEP_EVERY_MS = 60_000

/**
 * The embedded counter store. Every operation runs synchronously inside one call, so it is atomic in the
 * process; it counts for this process only (use `redis` to share limits between gateway processes).
 * Idle counters are swept lazily, driven by the callers' `now`, so no timer keeps the process alive.
 */
export class MemoryCounterStore implements CounterStore {
  readonly kind = 'memory' as const
  private readonly sliding = new Map<string, SlidingLog>()
  private readonly fixed = new Map<string, FixedPeriod>()
  private lastSweep = -Infinity

  reserve(req: ReserveRequest): Promise<ReserveResult> {
    return Promise.resolve(this.reserveNow(req))
  }

  /** Synchronous form, for callers (the fallback wrapper) that need no promise. */
  reserveNow(req: ReserveRequest): ReserveResult {
    this.maybeSweep(req.now)
    const states = req.windows.map((w) => this.state(req.key, w, req.now, req.amount))
    const ok = states.every((s) => s.fits)
    if (!ok) return { ok, windows: states }
    const after: WindowState[] = []
    for (let i = 0; i < req.windows.length; i++) {
      const w = req.windows[i]!
      if (w.kind === 'sliding') {
        const log = this.log(req.key, w)
        this.addEntry(log, req.id, req.now, req.amount, w.windowMs)
        after.push(admitted(states[i]!, w, req.amount, log.entries[log.entries.length - 1]!.ts, req.now))
      } else {
        after.push(admitted(states[i]!, w, req.amount, 0, req.now))
        const p = this.period(req.key, w)
        const expires = req.now + req.leaseMs
        p.leases.set(req.id, { amount: req.amount, expires })
        if (expires < p.nextExpiry) p.nextExpiry = expires
        p.pending += req.amount
      }
    }
    return { ok, windows: after }
  }

  settle(req: SettleRequest): Promise<void> {
    this.settleNow(req)
    return Promise.resolve()
  }

  settleNow(req: SettleRequest): void {
    for (const w of req.windows) {
      if (w.kind === 'sliding') {
        const log = this.log(req.key, w)
        purge(log, req.now - w.windowMs)
        const m = log.byId.get(req.id)
        if (m) log.byId.delete(req.id) // settled once: the entry keeps the amount, the id is no longer needed
        if (m && !m.entry.gone) {
          log.total += req.actual - m.amount
          m.entry.amount += req.actual - m.amount
        } else if (req.actual > req.reserved) {
          this.addEntry(log, null, req.now, req.actual - req.reserved, w.windowMs)
        }
        if (log.total === 0 && log.byId.size === 0) this.sliding.delete(slidingId(req.key, w))
      } else {
        const id = fixedId(req.key, w)
        let p = this.fixed.get(id)
        if (!p) {
          if (req.now >= w.end || req.actual === 0) continue // the period is over (or nothing to commit)
          p = this.period(req.key, w)
        }
        const lease = p.leases.get(req.id)
        if (lease) {
          p.pending -= lease.amount
          p.leases.delete(req.id)
        }
        p.committed += req.actual
      }
    }
  }

  peek(key: string, windows: readonly CounterWindow[], now: number): Promise<WindowState[]> {
    return Promise.resolve(windows.map((w) => this.state(key, w, now, 0)))
  }

  async close(): Promise<void> {
    this.sliding.clear()
    this.fixed.clear()
  }

  private state(key: string, w: CounterWindow, now: number, amount: number): WindowState {
    if (w.kind === 'sliding') {
      const log = this.sliding.get(slidingId(key, w))
      if (log) purge(log, now - w.windowMs)
      const used = log?.total ?? 0
      const fits = used + amount <= w.limit
      const last = log && log.entries.length > log.head ? log.entries[log.entries.length - 1]! : null
      return {
        name: w.name, limit: w.limit, used, remaining: Math.max(0, w.limit - used),
        resetAt: last && used > 0 ? last.ts + w.windowMs : now,
        fits,
        retryAfterMs: fits ? 0 : amount > w.limit ? -1 : slidingRetry(log!, used + amount - w.limit, w.windowMs, now),
      }
    }
    const p = this.fixed.get(fixedId(key, w))
    if (p) expireLeases(p, now)
    const used = p ? p.committed + p.pending : 0
    const fits = used + amount <= w.limit
    return {
      name: w.name, limit: w.limit, used, remaining: Math.max(0, w.limit - used), resetAt: w.end,
      fits, retryAfterMs: fits ? 0 : amount > w.limit ? -1 : Math.max(0, w.end - now),
    }
  }

  private log(key: string, w: CounterWindow & { kind: 'sliding' }): SlidingLog {
    const id = slidingId(key, w)
    let log = this.sliding.get(id)
    if (!log) this.sliding.set(id, (log = { entries: [], head: 0, total: 0, byId: new Map() }))
    return log
  }

  private period(key: string, w: CounterWindow & { kind: 'fixed' }): FixedPeriod {
    const id = fixedId(key, w)
    let p = this.fixed.get(id)
    if (!p) this.fixed.set(id, (p = { committed: 0, pending: 0, end: w.end, leases: new Map(), nextExpiry: Infinity }))
    return p
  }

  /** Entries in one sliding log (for the bound's tests). */
  logLength(key: string, w: { name: string; windowMs: number }): number {
    const log = this.sliding.get(slidingId(key, w))
    return log ? log.entries.length - log.head : 0
  }

  private addEntry(log: SlidingLog, id: string | null, ts: number, amount: number, windowMs: number): void {
    const list = log.entries
    const tail = list.length > log.head ? list[list.length - 1]! : null
    if (tail && list.length - log.head >= LOG_CAP && ts >= tail.ts) {
      const bucketMs = Math.max(1, Math.floor(windowMs / LOG_BUCKETS))
      if (Math.floor(ts / bucketMs) === Math.floor(tail.ts / bucketMs)) {
        tail.ts = ts
        tail.amount += amount
        log.total += amount
        if (id !== null) log.byId.set(id, { entry: tail, amount })
        return
      }
    }
    const e: Entry = { ts, amount, gone: false }
    if (tail && tail.ts > ts) {
      // A clock that went back: keep the log in time order so purging from the head stays correct.
      let i = list.length
      while (i > log.head && list[i - 1]!.ts > ts) i--
      list.splice(i, 0, e)
    } else list.push(e)
    if (id !== null) log.byId.set(id, { entry: e, amount })
    log.total += amount
  }

  private maybeSweep(now: number): void {
    if (now - this.lastSweep < SWEEP_EVERY_MS && now >= this.lastSweep) return
    this.lastSweep = now
    for (const [id, log] of this.sliding) {
      const windowMs = Number(id.slice(id.lastIndexOf('\u0000') + 1))
      purge(log, now - windowMs)
      if (log.head === log.entries.length && log.byId.size === 0) this.sliding.delete(id)
    }
    for (const [id, p] of this.fixed) if (now >= p.end) this.fixed.delete(id)
  }
}

/**
 * A window's state right after a reservation of `amount` that fitted, from its state just before (what
 * `state` would answer again, without a second lookup): `before` was taken at the same `now`, so nothing
 * more left the window. `newestTs`: a sliding log's newest entry after the reservation was added.
 */
function admitted(before: WindowState, w: CounterWindow, amount: number, newestTs: number, now: number): WindowState {
  const used = before.used + amount
  const resetAt = w.kind === 'sliding' ? (used > 0 ? newestTs + w.windowMs : now) : before.resetAt
  return { name: w.name, limit: w.limit, used, remaining: Math.max(0, w.limit - used), resetAt, fits: used <= w.limit, retryAfterMs: 0 }
}

function slidingId(key: string, w: { name: string; windowMs: number }): string {
  return `${key}\u0000${w.name}\u0000${w.windowMs}`
}

function fixedId(key: string, w: { name: string; start: number }): string {
  return `${key}\u0000${w.name}\u0000${w.start}`
}

/** Drops the entries stamped at or before `cutoff` (they have left the window). */
function purge(log: SlidingLog, cutoff: number): void {
  const list = log.entries
  while (log.head < list.length && list[log.head]!.ts <= cutoff) {
    const e = list[log.head++]!
    log.total -= e.amount
    e.gone = true
  }
  // Reservations whose entry left the window before they were settled: nothing is counted for them now.
  if (log.head === list.length && log.byId.size > 0) {
    for (const [id, m] of log.byId) if (m.entry.gone) log.byId.delete(id)
  }
  if (log.head > 1024 && log.head * 2 > list.length) {
    log.entries = list.slice(log.head)
    log.head = 0
  }
}

/** Milliseconds until enough of the oldest entries have left the window to free `need`. */
function slidingRetry(log: SlidingLog, need: number, windowMs: number, now: number): number {
  let freed = 0
  for (let i = log.head; i < log.entries.length; i++) {
    const e = log.entries[i]!
    freed += e.amount
    if (freed >= need) return Math.max(1, e.ts + windowMs - now) // the entry leaves at exactly ts + windowMs
  }
  return windowMs
}

function expireLeases(p: FixedPeriod, now: number): void {
  if (now < p.nextExpiry) return
  let next = Infinity
  for (const [id, lease] of p.leases) {
    if (lease.expires <= now) {
      p.pending -= lease.amount
      p.leases.delete(id)
    } else if (lease.expires < next) next = lease.expires
  }
  p.nextExpiry = next
}
