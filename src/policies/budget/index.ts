import { z } from 'zod'
import { cacheHitOf } from '../../cache/hit.ts'
import type { RequestContext } from '../../core/context.ts'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { Outcome, Policy } from '../../core/pipeline.ts'
import { addUsage } from '../../core/usage.ts'
import { duration } from '../../config/schema.ts'
import type { CounterWindow, WindowState } from '../../stores/counter.ts'
import { estimatePromptTokens, preloadTokenizer } from '../../tokens/count.ts'
import { celExpression, compileExpr, exprContext, exprString, type ExprContext } from '../expr.ts'
import { heldBy, releaseAll, requestLimits, reservationId, scopeLabel } from '../limits-common/index.ts'
import { periodBounds, QUOTA_PERIODS, type QuotaPeriod } from '../limits-common/periods.ts'
import { expectedCompletionTokens } from '../token-limit/index.ts'
import type { PolicyDeps, PolicyFactory } from '../types.ts'
import { costMicros, estimateMicros, MICROS_PER_USD, usdText } from './money.ts'
import { type BudgetInspector, type BudgetView } from './view.ts'
import { alertThresholds } from '../../finops/thresholds.ts'

/** A budget above a billion dollars is a typo (and would leave the exact integer range of the stores). */
const MAX_USD = 1e9

const periodSchema = z.union([
  z.preprocess((v) => (typeof v === 'string' ? v.toLowerCase() : v), z.enum(QUOTA_PERIODS)),
  duration.pipe(z.number().int().min(1_000, 'a budget period is at least 1s')),
])

const schema = z.strictObject({
  /** CEL; one budget counter per value (consumer.id, consumer.product, consumer.metadata.team, request.model…). */
  counterKey: celExpression.default('consumer.id'),
  usd: z.number({ message: 'usd is the budget in US dollars, a number' }).positive('a budget is more than 0 USD').max(MAX_USD, `a budget above ${MAX_USD} USD is refused as a likely typo`).finite(),
  /** Only US dollars: prices are in USD and no exchange rate is applied. */
  currency: z.string().default('USD').refine((c) => c.toUpperCase() === 'USD', 'only USD budgets are supported (the price table is in USD)'),
  /**
   * A calendar period in UTC (hourly, daily, weekly from Monday, monthly, yearly), or a duration for fixed
   * windows of that length (`12h`, `10s`), resetting at their end.
   */
  period: periodSchema.optional(),
  /** A rolling window instead of a period: spending of the last `window` (e.g. `30d`). */
  window: duration.pipe(z.number().int().min(1_000, 'a budget window is at least 1s')).optional(),
  alerts: alertThresholds,
  /** `refuse` answers 403 budget_exceeded; `suspend` also suspends the consumer until the period ends. */
  onExceeded: z.enum(['refuse', 'suspend']).default('refuse'),
  /** A model missing from the price table: refused (default), or allowed and logged (charged nothing). */
  unpricedModels: z.enum(['refuse', 'allow']).default('refuse'),
  defaultCompletionTokens: z.number().int().nonnegative().default(256),
  reservationTtl: duration.default(600_000),
}).superRefine((o, ctx) => {
  if ((o.period === undefined) === (o.window === undefined)) ctx.addIssue({ code: 'custom', message: 'a budget takes a period (monthly, daily, 1h…) or a rolling window, exactly one' })
})
export type BudgetConfig = z.infer<typeof schema>

const SHOWN = Symbol('sluice.budget.shown')

/**
 * `budget`: US dollars per period on any counter key, held across replicas with the same reserve/settle
 * counters as the token limits, in integer micro-dollars. Before the call it reserves the worst case
 * (estimated prompt at the input price, the completion allowance at the output price); after it, it
 * settles to the real cost (cached prompt tokens at their price, hedges that lost the race and streams cut
 * mid-way included). N replicas therefore admit at most the budget plus one request's estimate error.
 */
class Budget implements Policy, BudgetInspector {
  readonly name = 'budget'
  readonly isBudgetInspector = true as const
  private readonly key: (e: ExprContext) => string
  private readonly limit: number
  private readonly warned = new Set<string>()

  constructor(private readonly cfg: BudgetConfig, private readonly deps: PolicyDeps) {
    const expr = compileExpr(cfg.counterKey)
    this.key = (e) => exprString(expr, e)
    this.limit = Math.round(cfg.usd * MICROS_PER_USD)
    for (const a of cfg.alerts) if (a.webhook && deps.alerts && !deps.alerts.hasWebhook(a.webhook)) throw new Error(`budget alert names webhook "${a.webhook}", which is not in webhooks`)
    preloadTokenizer(deps.modelNames)
  }

  private windowAt(now: number): CounterWindow {
    if (this.cfg.window !== undefined) return { kind: 'sliding', name: `usd-w${this.cfg.window}`, limit: this.limit, windowMs: this.cfg.window }
    const { start, end } = boundsOf(this.cfg.period!, now)
    return { kind: 'fixed', name: `usd-${typeof this.cfg.period === 'number' ? `p${this.cfg.period}` : this.cfg.period}`, limit: this.limit, start, end }
  }

  async inbound(ctx: RequestContext): Promise<void> {
    const { clock, stores, logger, prices } = this.deps
    const now = clock.now()
    const price = prices?.(ctx.model, null) ?? null
    if (price === null) {
      if (this.cfg.unpricedModels === 'refuse') {
        throw new GatewayError(GW_ERR.MODEL_NOT_ALLOWED, `The model "${ctx.model}" has no price, so the budget cannot account for it; ask an admin to add it under pricing.models.`, { param: 'model' })
      }
      if (!this.warned.has(ctx.model)) {
        this.warned.add(ctx.model)
        logger.warn({ model: ctx.model }, 'budget: this model has no price; its calls are allowed and charged nothing (unpricedModels: allow)')
      }
      return
    }
    const counterValue = this.key(exprContext(ctx))
    const key = `budget:${counterValue}`
    const shared = requestLimits(ctx)
    shared.promptEstimate ??= estimatePromptTokens(ctx.operation, ctx.body, ctx.model)
    const amount = Math.max(1, estimateMicros(price, shared.promptEstimate, expectedCompletionTokens(ctx, this.cfg.defaultCompletionTokens)))
    const window = this.windowAt(now)
    const id = reservationId()
    let result
    try {
      result = await stores.counters.reserve({ key, id, amount, windows: [window], now, leaseMs: this.cfg.reservationTtl })
    } catch (err) {
      await releaseAll(ctx, now, logger)
      throw err
    }
    const state = result.windows[0]!
    if (!result.ok) {
      await releaseAll(ctx, now, logger)
      this.deps.metrics.limitRejected(this.name, 'budget')
      const headers = { 'x-sluice-budget-remaining-usd': usdText(state.remaining), 'x-sluice-budget-reset': new Date(state.resetAt).toISOString() }
      if (state.retryAfterMs < 0) {
        throw new GatewayError(GW_ERR.BUDGET_EXCEEDED, `This request may cost up to ${usdText(amount)} USD, more than the whole budget of ${usdText(this.limit)} USD; lower max_tokens.`, { headers })
      }
      // The budget has no room for this request: the 100 % mark is reached in practice.
      void this.afterCrossing(ctx, counterValue, window, state.used + amount, now, true)
      throw new GatewayError(GW_ERR.BUDGET_EXCEEDED, `The budget of ${usdText(this.limit)} USD ${this.periodText()} is used up (${usdText(state.used)} USD spent or reserved); it renews at ${new Date(state.resetAt).toISOString()}.`, { headers })
    }
    shared.held.push({ owner: this, store: stores.counters, key, id, amount, windows: [window], local: result.local === true, settled: false })
    // The budget that binds first is the one shown.
    const prev = ctx.slots.get(SHOWN) as number | undefined
    if (prev === undefined || state.remaining < prev) {
      ctx.slots.set(SHOWN, state.remaining)
      ctx.responseHeaders['x-sluice-budget-remaining-usd'] = usdText(state.remaining)
    }
  }

  async complete(ctx: RequestContext, outcome: Outcome): Promise<void> {
    const held = heldBy(ctx, this)
    if (!held) return
    held.settled = true
    let actual = 0
    const price = this.deps.prices?.(ctx.model, ctx.backendId) ?? this.deps.prices?.(ctx.model, null) ?? null
    // A cache hit called no backend: it cost nothing.
    if (cacheHitOf(ctx) === null && outcome.servedBy === null && price !== null) {
      const u = addUsage(outcome.usage, outcome.extraUsage ?? null)
      if (u) actual = costMicros(price, u)
      // Cut before any usage was known, after the backend had the prompt: it read the prompt at least.
      else if (outcome.aborted && ctx.backendId !== null) actual = estimateMicros(price, requestLimits(ctx).promptEstimate ?? 0, 0)
    }
    const now = this.deps.clock.now()
    try {
      await held.store.settle({ key: held.key, id: held.id, reserved: held.amount, actual, windows: held.windows, now, local: held.local })
    } catch (err) {
      this.deps.logger.debug({ err: { message: (err as Error).message } }, 'could not settle a budget reservation')
      return
    }
    if (this.cfg.alerts.length === 0 && this.cfg.onExceeded !== 'suspend') return
    const [state] = await this.deps.stores.counters.peek(held.key, held.windows, now)
    if (state) await this.afterCrossing(ctx, held.key.slice('budget:'.length), held.windows[0]!, state.used, now, false)
  }

  /** Fires the thresholds `used` has reached (each once per period) and suspends when the budget is spent. */
  private async afterCrossing(ctx: RequestContext, counterValue: string, window: CounterWindow, used: number, now: number, refused: boolean): Promise<void> {
    try {
      const { start, end } = window.kind === 'fixed' ? window : { start: null, end: now + window.windowMs }
      const consumer = ctx.principal?.consumerId ?? null
      for (const a of this.cfg.alerts) {
        if (used * 100 < a.at * this.limit) continue
        await this.deps.alerts?.fire({
          kind: 'budget', at: a.at, counter: counterValue, scope: scopeLabel(this.deps.scope), limit: this.limit / MICROS_PER_USD,
          used: Math.min(used, this.limit) / MICROS_PER_USD, unit: 'usd', periodStart: start, periodEnd: end, consumer, webhook: a.webhook ?? null,
        }, now)
      }
      if (this.cfg.onExceeded === 'suspend' && consumer !== null && (refused || used >= this.limit) && this.deps.consumers) {
        const current = this.deps.consumers.suspension(consumer, now)
        if (current === null) {
          await this.deps.consumers.suspend({ consumerId: consumer, until: end, reason: `budget of ${usdText(this.limit)} USD ${this.periodText()} spent (counter ${counterValue})`, by: 'policy:budget', at: now }, 'policy:budget')
        }
      }
    } catch (err) {
      this.deps.logger.warn({ err: { message: (err as Error).message } }, 'budget: alert or suspension failed')
    }
  }

  private periodText(): string {
    if (this.cfg.window !== undefined) return `over a rolling ${this.cfg.window / 1000}s`
    return typeof this.cfg.period === 'number' ? `per ${this.cfg.period / 1000}s` : `(${this.cfg.period})`
  }

  counterValueFor(e: ExprContext): string | null {
    try { return this.key(e) } catch { return null }
  }

  async inspectBudget(counterValue: string): Promise<BudgetView> {
    const now = this.deps.clock.now()
    const window = this.windowAt(now)
    const [s] = await this.deps.stores.counters.peek(`budget:${counterValue}`, [window], now) as [WindowState]
    return {
      policy: this.name,
      scope: scopeLabel(this.deps.scope),
      counterKey: this.cfg.counterKey,
      counter: counterValue,
      limitUsd: this.limit / MICROS_PER_USD,
      usedUsd: s.used / MICROS_PER_USD,
      remainingUsd: s.remaining / MICROS_PER_USD,
      usedPercent: Math.round((s.used / this.limit) * 10_000) / 100,
      period: this.cfg.window !== undefined ? { rolling: this.cfg.window } : this.cfg.period!,
      periodStart: window.kind === 'fixed' ? new Date(window.start).toISOString() : null,
      resetAt: new Date(s.resetAt).toISOString(),
      onExceeded: this.cfg.onExceeded,
      alerts: this.cfg.alerts.map((a) => ({ atPercent: a.at, webhook: a.webhook ?? null })),
    }
  }
}

function boundsOf(period: QuotaPeriod | number, now: number): { start: number; end: number } {
  if (typeof period === 'number') {
    const start = Math.floor(now / period) * period
    return { start, end: start + period }
  }
  return periodBounds(period, now)
}

export const budgetPolicy: PolicyFactory<BudgetConfig> = {
  name: 'budget',
  schema: schema as unknown as z.ZodType<BudgetConfig>,
  create: (config, deps) => new Budget(config, deps),
}
