import { z } from 'zod'
import type { RequestContext } from '../../core/context.ts'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { Policy } from '../../core/pipeline.ts'
import { duration } from '../../config/schema.ts'
import type { CounterWindow } from '../../stores/counter.ts'
import { celExpression, compileRequestKey } from '../expr.ts'
import { HEADER_NAME, writeLimitHeaders, releaseAll, requestLimits, reservationId, retryHeaders, scopeLabel, showLimit, type LimitInspector, type LimitView, boundedKeyPart } from '../limits-common/index.ts'
import type { PolicyDeps, PolicyFactory } from '../types.ts'

const headerName = z.string().regex(HEADER_NAME, 'a header name is letters, digits and - (an HTTP token)')

const schema = z.strictObject({
  counterKey: celExpression.default('consumer.id'),
  /** Requests admitted per `per` (an exact sliding window). */
  requests: z.number().int().positive(),
  per: duration.default(60_000).refine((ms) => ms >= 1000, 'per is at least 1s'),
  retryAfterHeaderName: headerName.optional(),
  remainingCallsHeaderName: headerName.optional(),
  totalCallsHeaderName: headerName.optional(),
})
export type RateLimitConfig = z.infer<typeof schema>

/**
 * `rate-limit`: requests per window, counted when admitted (failed requests count too; a request refused
 * by a later limit is released). 429 `rate_limit_exceeded` with the exact `retry-after`/`retry-after-ms`,
 * and the `x-ratelimit-*-requests` headers.
 */
class RateLimit implements Policy, LimitInspector {
  readonly name = 'rate-limit'
  readonly isLimitInspector = true as const
  private readonly key: (ctx: RequestContext) => string
  private readonly windows: CounterWindow[]

  constructor(private readonly cfg: RateLimitConfig, private readonly deps: PolicyDeps) {
    const counterValue = compileRequestKey(cfg.counterKey)
    this.key = (ctx) => `requests:${boundedKeyPart(counterValue(ctx))}`
    this.windows = [{ kind: 'sliding', name: `rpw-${cfg.per}`, limit: cfg.requests, windowMs: cfg.per }]
  }

  async inbound(ctx: RequestContext): Promise<void> {
    const { clock, stores, logger, metrics } = this.deps
    const now = clock.now()
    const key = this.key(ctx)
    const id = reservationId()
    let result
    try {
      result = await stores.counters.reserve({ key, id, amount: 1, windows: this.windows, now, leaseMs: this.cfg.per })
    } catch (err) {
      await releaseAll(ctx, now, logger)
      throw err
    }
    const w = result.windows[0]!
    if (!result.ok) {
      await releaseAll(ctx, now, logger)
      metrics.limitRejected(this.name, 'rate')
      const headers: Record<string, string> = {}
      writeLimitHeaders(headers, 'requests', w, now)
      Object.assign(headers, retryHeaders(w.retryAfterMs, this.cfg.retryAfterHeaderName))
      if (this.cfg.remainingCallsHeaderName) headers[this.cfg.remainingCallsHeaderName.toLowerCase()] = '0'
      if (this.cfg.totalCallsHeaderName) headers[this.cfg.totalCallsHeaderName.toLowerCase()] = String(w.limit)
      throw new GatewayError(GW_ERR.RATE_LIMIT_EXCEEDED, `Rate limit of ${w.limit} requests per ${this.cfg.per / 1000} seconds reached. Retry after ${(Math.max(1, w.retryAfterMs) / 1000).toFixed(3)} seconds.`, { headers })
    }
    requestLimits(ctx).held.push({ owner: this, store: stores.counters, key, id, amount: 1, windows: this.windows, local: result.local === true, settled: false })
    showLimit(ctx, 'requests', w, now)
    if (this.cfg.remainingCallsHeaderName) ctx.responseHeaders[this.cfg.remainingCallsHeaderName.toLowerCase()] = String(w.remaining)
    if (this.cfg.totalCallsHeaderName) ctx.responseHeaders[this.cfg.totalCallsHeaderName.toLowerCase()] = String(w.limit)
  }

  async inspect(keyValue: string): Promise<LimitView> {
    const now = this.deps.clock.now()
    const counter = `requests:${keyValue}`
    const states = await this.deps.stores.counters.peek(counter, this.windows, now)
    return { policy: this.name, scope: scopeLabel(this.deps.scope), counter, windows: states.map((s) => ({ ...s, kind: 'sliding' as const, resetAtIso: new Date(s.resetAt).toISOString() })) }
  }
}

export const rateLimitPolicy: PolicyFactory<RateLimitConfig> = {
  name: 'rate-limit',
  schema: schema as unknown as z.ZodType<RateLimitConfig>,
  create: (config, deps) => new RateLimit(config, deps),
}
