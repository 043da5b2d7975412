import { Counter, Gauge, type Registry } from 'prom-client'

/** Why a session ended (the `reason` label: a fixed set, so clients cannot create series). */
export type SessionEnd = 'client_closed' | 'upstream_closed' | 'limit' | 'idle_timeout' | 'max_duration' | 'message_too_large' | 'shutdown' | 'error'

/**
 * Session-level Realtime metrics on the gateway's registry: `sluice_realtime_sessions_active` and
 * `sluice_realtime_sessions_total{model,reason}`. Tokens are not here: each response is recorded like a
 * request (`sluice_requests_total`, `sluice_tokens_total`…), see governance.ts. Model names are configured
 * ones (an unknown model is refused before a session exists).
 */
export class RealtimeMetrics {
  private readonly active: Gauge<string> | null
  private readonly ended: Counter<string> | null

  constructor(registry: Registry | null) {
    if (!registry) {
      this.active = null
      this.ended = null
      return
    }
    for (const n of ['sluice_realtime_sessions_active', 'sluice_realtime_sessions_total']) if (registry.getSingleMetric(n)) registry.removeSingleMetric(n)
    this.active = new Gauge({ name: 'sluice_realtime_sessions_active', help: 'Realtime WebSocket sessions open now.', registers: [registry] })
    this.ended = new Counter({ name: 'sluice_realtime_sessions_total', help: 'Realtime sessions ended, by model and why they ended.', labelNames: ['model', 'reason'], registers: [registry] })
  }

  opened(): void {
    this.active?.inc()
  }

  closed(model: string, reason: SessionEnd): void {
    this.active?.dec()
    this.ended?.inc({ model: model.slice(0, 256), reason })
  }
}
