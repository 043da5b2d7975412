import type { Logger } from 'pino'
import type { OnceStore } from './once.ts'
import type { WebhookDispatcher } from './webhooks.ts'

/** A threshold crossing: the same shape goes to the log and, as the event's `data`, to the webhook. */
export interface ThresholdAlert {
  /** `budget` or `token-quota`. */
  readonly kind: string
  /** Percent of the limit (80 for 80 %). */
  readonly at: number
  readonly counter: string
  readonly scope: string
  readonly limit: number
  readonly used: number
  readonly unit: 'usd' | 'tokens'
  readonly periodStart: number | null
  readonly periodEnd: number
  readonly consumer: string | null
  readonly webhook: string | null
}

/**
 * Fires threshold alerts once per period per counter (claimed in the shared store, so N replicas crossing
 * together send one), to the log always and to a webhook when one is named. Never awaited on the request path.
 */
export class AlertSink {
  constructor(private readonly once: OnceStore, private readonly webhooks: WebhookDispatcher, private readonly logger: Logger) {}

  hasWebhook(id: string): boolean {
    return this.webhooks.has(id)
  }

  /** Returns whether this call fired it (false: already fired this period). */
  async fire(alert: ThresholdAlert, now: number): Promise<boolean> {
    const period = alert.periodStart ?? alert.periodEnd
    const key = `alert:${alert.kind}:${alert.scope}:${alert.counter}:${period}:${alert.at}`
    const ttl = Math.max(1_000, alert.periodEnd - now + 60_000)
    if (!(await this.once.claim(key, ttl, now))) return false
    const data = {
      kind: alert.kind, thresholdPercent: alert.at, counter: alert.counter, scope: alert.scope, unit: alert.unit,
      limit: alert.limit, used: alert.used, consumer: alert.consumer,
      periodStart: alert.periodStart === null ? null : new Date(alert.periodStart).toISOString(),
      periodEnd: new Date(alert.periodEnd).toISOString(),
    }
    this.logger.warn(data, `${alert.kind} threshold ${alert.at}% reached`)
    if (alert.webhook) this.webhooks.send(alert.webhook, `${alert.kind}.threshold`, data)
    return true
  }
}
