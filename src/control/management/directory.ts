import type { Logger } from 'pino'
import type { ConsumerControl, Suspension } from '../../finops/types.ts'
import type { ChangeBus } from './bus.ts'
import type { AuditEntry, ManagedState, ManagementStore } from './store.ts'

const EMPTY: ManagedState = { consumers: [], products: [], suspensions: [] }

/**
 * The replica's in-memory copy of the management state (run-time consumers, products, suspensions), kept
 * in step with the store: re-read at once when this replica writes or another one says it did (the bus),
 * and every `resyncMs` in any case, so a missed notification heals by itself. `onChange` runs when what was
 * read differs from what was held (the gateway then rebuilds its runtime).
 */
export class ManagementDirectory implements ConsumerControl {
  private state: ManagedState = EMPTY
  private fingerprint = ''
  private suspensions = new Map<string, Suspension>()
  private timer: NodeJS.Timeout | null = null
  private refreshing: Promise<void> | null = null
  private again = false
  private listeners: Array<(s: ManagedState) => void> = []
  private notified: Array<() => void> = []

  constructor(readonly store: ManagementStore, private readonly bus: ChangeBus, private readonly resyncMs: number, private readonly logger: Logger) {}

  async start(): Promise<void> {
    await this.refresh().catch((err: Error) => this.logger.error({ err: { message: err.message } }, 'management: could not read the stored consumers and products at start (retrying at each resync)'))
    await this.bus.subscribe(() => {
      for (const fn of this.notified) fn()
      void this.refresh().catch(() => {})
    })
    this.timer = setInterval(() => void this.refresh().catch((err: Error) => this.logger.warn({ err: { message: err.message } }, 'management: resync failed')), this.resyncMs)
    this.timer.unref()
  }

  /** Runs on every notification from another replica (key changes carry no state here but void key caches). */
  onNotify(fn: () => void): void {
    this.notified.push(fn)
  }

  onChange(fn: (s: ManagedState) => void): void {
    this.listeners.push(fn)
  }

  current(): ManagedState {
    return this.state
  }

  /** Re-reads the store; concurrent calls coalesce into at most one more read after the one running. */
  refresh(): Promise<void> {
    if (this.refreshing) {
      this.again = true
      return this.refreshing
    }
    this.refreshing = (async () => {
      try {
        do {
          this.again = false
          const next = await this.store.load()
          const fp = JSON.stringify(next)
          if (fp !== this.fingerprint) {
            this.fingerprint = fp
            this.state = next
            this.suspensions = new Map(next.suspensions.map((s) => [s.consumerId, s]))
            for (const fn of this.listeners) {
              try { fn(next) } catch (err) { this.logger.error({ err }, 'management: applying a change failed') }
            }
          }
        } while (this.again)
      } finally {
        this.refreshing = null
      }
    })()
    return this.refreshing
  }

  /** After a write through this replica: apply it here now, then tell the others. */
  async changed(): Promise<void> {
    await this.refresh()
    await this.bus.publish()
  }

  suspension(consumerId: string, now: number): Suspension | null {
    const s = this.suspensions.get(consumerId)
    if (s === undefined) return null
    return s.until === null || s.until > now ? s : null
  }

  async suspend(s: Suspension, actor: string): Promise<void> {
    const before = this.suspensions.get(s.consumerId) ?? null
    const audit: AuditEntry = { ts: new Date(s.at).toISOString(), actor, action: 'consumer.suspend', target: `consumer:${s.consumerId}`, before, after: s }
    await this.store.putSuspension(s, audit)
    this.logger.warn({ consumer: s.consumerId, until: s.until === null ? null : new Date(s.until).toISOString(), reason: s.reason, by: s.by }, 'consumer suspended')
    await this.changed()
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    await this.refreshing?.catch(() => {})
    await this.bus.close()
  }
}
