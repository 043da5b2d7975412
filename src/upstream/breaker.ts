import type { Logger } from 'pino'
import type { BackendConfig, CircuitBreakerConfig } from '../config/schema.ts'
import type { Clock } from '../core/clock.ts'
import type { BreakerRecord, BreakerStore } from '../stores/breaker.ts'
import type { MetricsSink } from '../telemetry/sink.ts'
import type { UpstreamFailure } from './failure.ts'

export type CircuitState = 'closed' | 'open' | 'half-open'

/** How a circuit looks at a given moment, derived from its stored record. */
export function stateOf(rec: BreakerRecord | undefined, now: number): CircuitState {
  if (!rec || rec.openUntil === 0) return 'closed'
  return rec.openUntil > now ? 'open' : 'half-open'
}

const STATE_METRIC: Record<CircuitState, 0 | 1 | 2> = { closed: 0, 'half-open': 1, open: 2 }

interface CompiledRule {
  readonly config: CircuitBreakerConfig
  readonly ranges: readonly (readonly [number, number])[]
  readonly kinds: ReadonlySet<string>
  /** The trial request's lease: the backend's time to first byte, so a lost trial is released in time. */
  readonly trialLeaseMs: number
}

/** `"429"`, `"500-599"`, `503` → inclusive ranges. Unparseable entries were refused at config load. */
export function parseStatusRanges(codes: readonly (string | number)[]): [number, number][] {
  const out: [number, number][] = []
  for (const c of codes) {
    const m = /^\s*(\d{3})\s*(?:-\s*(\d{3}))?\s*$/.exec(String(c))
    if (m) out.push([Number(m[1]), Number(m[2] ?? m[1])])
  }
  return out
}

/**
 * The circuit breakers of one config snapshot's backends. Their state lives in the BreakerStore (so it
 * survives reloads and, with Redis, is shared by all processes); this class holds the compiled rules and
 * reports state changes as metrics. A backend without `circuitBreaker` has no circuit: it never trips,
 * and failover alone steers around its failures.
 */
export class Breakers {
  private readonly rules = new Map<string, CompiledRule>()
  /** Last state reported per backend, so gauges change only on transitions (seen here or read from the store). */
  private readonly reported = new Map<string, 0 | 1 | 2>()

  constructor(
    backends: Iterable<BackendConfig>,
    private readonly store: BreakerStore,
    private readonly clock: Clock,
    private readonly metrics: MetricsSink,
    private readonly logger: Logger,
  ) {
    for (const b of backends) {
      const c = b.circuitBreaker
      if (!c) continue
      this.rules.set(b.id, { config: c, ranges: parseStatusRanges(c.statusCodes), kinds: new Set(c.errorKinds), trialLeaseMs: b.timeout + b.connectTimeout })
    }
  }

  has(backendId: string): boolean {
    return this.rules.has(backendId)
  }

  get ids(): string[] {
    return [...this.rules.keys()]
  }

  now(): number {
    return this.clock.now()
  }

  /** Fresh records of those of `ids` that have a circuit (one store round trip; none when no id has one). */
  async read(ids: readonly string[]): Promise<Map<string, BreakerRecord>> {
    const wanted = ids.filter((id) => this.rules.has(id))
    if (wanted.length === 0) return new Map()
    let records: Map<string, BreakerRecord>
    try {
      records = await this.store.read(wanted)
    } catch (err) {
      // A store that cannot answer must not take routing down: treat circuits as closed (fail open).
      this.logger.warn({ err: { message: (err as Error).message } }, 'breaker state unavailable; routing as if all circuits were closed')
      this.metrics.storeFailure('breakers', 'fallback')
      return new Map()
    }
    const now = this.clock.now()
    for (const id of wanted) this.report(id, stateOf(records.get(id), now))
    return records
  }

  /** Whether this failure counts against the backend's circuit (its status range or error kind is listed). */
  counts(backendId: string, f: UpstreamFailure): boolean {
    const rule = this.rules.get(backendId)
    if (!rule) return false
    if (f.kind !== 'status') return rule.kinds.has(f.kind)
    const s = f.upstreamStatus
    return s !== null && rule.ranges.some(([lo, hi]) => s >= lo && s <= hi)
  }

  /**
   * Records a failure. The circuit stays open for `tripDuration`, or with `acceptRetryAfter` for exactly
   * the wait the backend asked for when it gave one. Returns the new record, or null when it does not count.
   */
  async failed(backendId: string, f: UpstreamFailure): Promise<BreakerRecord | null> {
    const rule = this.rules.get(backendId)
    if (!rule || !this.counts(backendId, f)) return null
    const c = rule.config
    const tripMs = c.acceptRetryAfter && f.retryAfterMs !== null && f.retryAfterMs > 0 ? f.retryAfterMs : c.tripDuration
    const reason = f.kind === 'status' ? `status ${f.upstreamStatus}` : f.kind
    const now = this.clock.now()
    try {
      const rec = await this.store.recordFailure(backendId, { now, threshold: c.failures, windowMs: c.window, tripMs, reason })
      const state = stateOf(rec, now)
      if (state === 'open' && this.reported.get(backendId) !== 2) {
        this.logger.warn({ backend: backendId, reason, openForMs: rec.openUntil - now }, 'circuit opened')
      }
      this.report(backendId, state)
      return rec
    } catch (err) {
      this.logger.warn({ err: { message: (err as Error).message }, backend: backendId }, 'could not record a backend failure')
      this.metrics.storeFailure('breakers', 'fallback')
      return null
    }
  }

  /** Claims the trial request of a half-open circuit. A store failure refuses (the circuit stays as it is). */
  async claimTrial(backendId: string): Promise<boolean> {
    const rule = this.rules.get(backendId)
    if (!rule) return false
    try {
      return await this.store.claimTrial(backendId, this.clock.now(), rule.trialLeaseMs)
    } catch {
      this.metrics.storeFailure('breakers', 'fallback')
      return false
    }
  }

  /** A trial succeeded: close the circuit. */
  async succeeded(backendId: string): Promise<void> {
    if (!this.rules.has(backendId)) return
    const now = this.clock.now()
    try {
      const rec = await this.store.close(backendId, now)
      const state = stateOf(rec, now)
      if (state === 'closed' && this.reported.get(backendId) !== 0) this.logger.info({ backend: backendId }, 'circuit closed')
      this.report(backendId, state)
    } catch (err) {
      this.logger.warn({ err: { message: (err as Error).message }, backend: backendId }, 'could not close a circuit')
      this.metrics.storeFailure('breakers', 'fallback')
    }
  }

  private report(backendId: string, state: CircuitState): void {
    const v = STATE_METRIC[state]
    if (this.reported.get(backendId) === v) return
    this.reported.set(backendId, v)
    this.metrics.breakerState(backendId, v)
  }
}
