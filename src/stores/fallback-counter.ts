import type { Logger } from 'pino'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { MetricsSink } from '../telemetry/sink.ts'
import type { CounterStore, CounterWindow, ReserveRequest, ReserveResult, SettleRequest, WindowState } from './counter.ts'
import { MemoryCounterStore } from './memory/counter.ts'

export type OnFailure = 'open' | 'closed'

/** After a failure, the distributed store is skipped this long (one probe then decides), so a stalled Redis costs one timeout per interval, not one per request. */
const PROBE_EVERY_MS = 1_000
const WARN_EVERY_MS = 10_000

/**
 * Wraps the distributed counter store with the `store.onFailure` rule. When the primary fails (unreachable,
 * timed out): `open` answers from a process-local counter, so the gateway keeps serving with limits
 * enforced per process for the duration (a warning log every 10 s and a `fallback` metric);
 * `closed` refuses with 503 `service_unavailable` (a `refused` metric). Recovery is automatic: the primary
 * is probed again at most once a second and used as soon as it answers. Reservations settle in the store
 * that made them.
 */
export class FallbackCounterStore implements CounterStore {
  readonly kind: CounterStore['kind']
  private readonly local = new MemoryCounterStore()
  private skipUntil = 0
  private lastWarn = 0
  private failing = false

  constructor(
    private readonly primary: CounterStore,
    private readonly mode: OnFailure,
    private readonly logger: Logger,
    private readonly metrics: MetricsSink,
    private readonly storeName = 'redis',
  ) {
    this.kind = primary.kind
  }

  async reserve(req: ReserveRequest): Promise<ReserveResult> {
    if (this.usable()) {
      try {
        const r = await this.primary.reserve(req)
        this.recovered()
        return r
      } catch (err) {
        this.failed(err)
      }
    }
    if (this.mode === 'closed') {
      this.metrics.storeFailure(this.storeName, 'refused')
      throw unavailable()
    }
    this.metrics.storeFailure(this.storeName, 'fallback')
    return { ...this.local.reserveNow(req), local: true }
  }

  async settle(req: SettleRequest): Promise<void> {
    if (req.local) return this.local.settleNow(req)
    // A settle lost to an outage leaves the reservation in place: a sliding entry leaves its window by
    // itself, a quota lease expires; the error is logged by the caller.
    await this.primary.settle(req)
  }

  async peek(key: string, windows: readonly CounterWindow[], now: number): Promise<WindowState[]> {
    if (this.usable()) {
      try {
        const r = await this.primary.peek(key, windows, now)
        this.recovered()
        return r
      } catch (err) {
        this.failed(err)
      }
    }
    if (this.mode === 'closed') throw unavailable()
    return this.local.peek(key, windows, now)
  }

  /** Whether the last call found the primary failing. */
  get degraded(): boolean {
    return this.failing
  }

  async close(): Promise<void> {
    await this.local.close()
    await this.primary.close()
  }

  private usable(): boolean {
    return !this.failing || Date.now() >= this.skipUntil
  }

  private failed(err: unknown): void {
    this.failing = true
    this.skipUntil = Date.now() + PROBE_EVERY_MS
    const now = Date.now()
    if (now - this.lastWarn >= WARN_EVERY_MS) {
      this.lastWarn = now
      this.logger.warn(
        { err: { message: (err as Error)?.message }, onFailure: this.mode },
        this.mode === 'open'
          ? `the ${this.storeName} counter store is unreachable: limits are counted per process until it returns`
          : `the ${this.storeName} counter store is unreachable: limited requests are refused until it returns`,
      )
    }
  }

  private recovered(): void {
    if (!this.failing) return
    this.failing = false
    this.lastWarn = 0
    this.logger.info(`the ${this.storeName} counter store answers again: limits are shared again`)
  }
}

function unavailable(): GatewayError {
  return new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The limit store is unreachable; limited requests are refused until it returns.', { headers: { 'retry-after': '1' } })
}
