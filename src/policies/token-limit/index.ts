import { z } from 'zod'
import { cacheHitOf } from '../../cache/hit.ts'
import type { RequestContext } from '../../core/context.ts'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import type { JsonResult, Outcome, Policy } from '../../core/pipeline.ts'
import { addUsage, usageFromOpenAI } from '../../core/usage.ts'
import { duration } from '../../config/schema.ts'
import type { CounterWindow, WindowState } from '../../stores/counter.ts'
import { countPromptTokens, estimatePromptTokens, preloadTokenizer } from '../../tokens/count.ts'
import { celExpression, compileRequestKey } from '../expr.ts'
import { HEADER_NAME, heldBy, writeLimitHeaders, releaseAll, requestLimits, reservationId, retryHeaders, scopeLabel, showLimit, type LimitInspector, type LimitView, boundedKeyPart } from '../limits-common/index.ts'
import { periodBounds, QUOTA_PERIODS } from '../limits-common/periods.ts'
import type { PolicyDeps, PolicyFactory } from '../types.ts'
import { alertThresholds } from '../../finops/thresholds.ts'

const headerName = z.string().regex(HEADER_NAME, 'a header name is letters, digits and - (an HTTP token)')

const schema = z.strictObject({
  /** CEL; one counter per value, shared by every token-limit policy whose key yields the same value. */
  counterKey: celExpression.default('consumer.id'),
  tokensPerMinute: z.number().int().positive().optional(),
  tokenQuota: z.number().int().positive().optional(),
  /** Fixed UTC calendar windows (weekly starts Monday). APIM's capitalised spellings are accepted. */
  tokenQuotaPeriod: z.preprocess((v) => (typeof v === 'string' ? v.toLowerCase() : v), z.enum(QUOTA_PERIODS)).optional(),
  /** Reserve the prompt's tokens up front (always done for streams, as in APIM). */
  estimatePromptTokens: z.boolean().default(true),
  /** Completion tokens reserved when the request sets no max_tokens / max_completion_tokens / max_output_tokens. */
  defaultCompletionTokens: z.number().int().nonnegative().default(256),
  /** How long a quota reservation holds if its request never settles (a crashed process). */
  reservationTtl: duration.default(600_000),
  retryAfterHeaderName: headerName.optional(),
  remainingTokensHeaderName: headerName.optional(),
  remainingQuotaTokensHeaderName: headerName.optional(),
  tokensConsumedHeaderName: headerName.optional(),
  /** Thresholds of the token quota (`80%`), each fired once per period to the log and a webhook, as budgets do. */
  alerts: alertThresholds,
}).superRefine((o, ctx) => {
  if (o.tokensPerMinute === undefined && o.tokenQuota === undefined) {
    ctx.addIssue({ code: 'custom', message: 'token-limit needs tokensPerMinute, tokenQuota (with tokenQuotaPeriod), or both' })
  }
  if (o.alerts.length > 0 && o.tokenQuota === undefined) ctx.addIssue({ code: 'custom', message: 'alerts apply to the token quota: set tokenQuota and tokenQuotaPeriod' })
  if ((o.tokenQuota === undefined) !== (o.tokenQuotaPeriod === undefined)) {
    ctx.addIssue({ code: 'custom', message: 'tokenQuota and tokenQuotaPeriod go together' })
  }
})
export type TokenLimitConfig = z.infer<typeof schema>

const MINUTE = 60_000

/** Completion tokens to reserve: the request's own cap when it sets one (times `n` choices), else the default. */
export function expectedCompletionTokens(ctx: RequestContext, fallback: number): number {
  if (ctx.operation === 'embeddings') return 0
  const b = ctx.body
  const cap = [b.max_completion_tokens, b.max_tokens, b.max_output_tokens].find((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0) as number | undefined
  const n = typeof b.n === 'number' && Number.isInteger(b.n) && b.n > 1 ? b.n : 1
  return Math.ceil(cap ?? fallback) * n
}

/**
 * `token-limit`: tokens per minute (exact sliding window) and/or a token quota per calendar period.
 * Reserve, then settle: before the call it atomically reserves the estimated prompt plus the expected
 * completion in every window; after the response it settles to the usage the backend reported (or, for a
 * cut stream, what was generated). Refusals: 429 `rate_limit_exceeded` with `retry-after`/`retry-after-ms`
 * when the minute window is full, 403 `quota_exceeded` until the period's end when the quota is.
 */
class TokenLimit implements Policy, LimitInspector {
  readonly name = 'token-limit'
  readonly isLimitInspector = true as const
  private readonly key: (ctx: RequestContext) => string
  private periodWindows: { readonly list: readonly CounterWindow[]; readonly from: number; readonly until: number } | null = null

  constructor(private readonly cfg: TokenLimitConfig, private readonly deps: PolicyDeps) {
    const counterValue = compileRequestKey(cfg.counterKey)
    this.key = (ctx) => `tokens:${boundedKeyPart(counterValue(ctx))}`
    // Every request's prompt is counted: load the tokenizer now, not under the first request's traffic.
    preloadTokenizer(deps.modelNames)
  }

  /**
   * The windows change only when the quota period turns: they are made once per period, not per request
   * (the stores read them and never change them, and a reservation keeps the ones it was made in).
   */
  private windowsAt(now: number): readonly CounterWindow[] {
    const cached = this.periodWindows
    if (cached !== null && now >= cached.from && now < cached.until) return cached.list
    const list: CounterWindow[] = []
    let from = -Infinity
    let until = Infinity
    if (this.cfg.tokensPerMinute !== undefined) list.push({ kind: 'sliding', name: 'tpm', limit: this.cfg.tokensPerMinute, windowMs: MINUTE })
    if (this.cfg.tokenQuota !== undefined && this.cfg.tokenQuotaPeriod !== undefined) {
      const { start, end } = periodBounds(this.cfg.tokenQuotaPeriod, now)
      list.push({ kind: 'fixed', name: `quota-${this.cfg.tokenQuotaPeriod}`, limit: this.cfg.tokenQuota, start, end })
      from = start
      until = end
    }
    this.periodWindows = { list: Object.freeze(list.map((w) => Object.freeze(w))), from, until }
    return this.periodWindows.list
  }

  async inbound(ctx: RequestContext): Promise<void> {
    const { clock, stores, logger } = this.deps
    const now = clock.now()
    const key = this.key(ctx)
    const windows = this.windowsAt(now)
    const shared = requestLimits(ctx)
    let prompt = 0
    if (this.cfg.estimatePromptTokens || ctx.stream) {
      if (shared.promptEstimate === null) {
        const counted = countPromptTokens(ctx.operation, ctx.body, ctx.model)
        shared.promptEstimate = typeof counted === 'number' ? counted : await counted
      }
      prompt = shared.promptEstimate
    }
    // At least one token, so an exhausted window refuses even a request that reserves nothing else.
    const amount = Math.max(1, prompt + expectedCompletionTokens(ctx, this.cfg.defaultCompletionTokens))
    const id = reservationId()
    let result
    try {
      result = await stores.counters.reserve({ key, id, amount, windows, now, leaseMs: this.cfg.reservationTtl })
    } catch (err) {
      await releaseAll(ctx, now, logger)
      throw err
    }
    const tpm = this.cfg.tokensPerMinute !== undefined ? result.windows[0]! : null
    const quota = this.cfg.tokenQuota !== undefined ? result.windows[windows.length - 1]! : null
    if (!result.ok) {
      await releaseAll(ctx, now, logger)
      // A quota with no room left for this request has reached its 100 % mark in practice.
      if (quota && !quota.fits && quota.retryAfterMs >= 0) void this.quotaAlerts(ctx, key, quota.used + amount, now)
      throw this.refusal(ctx, amount, tpm, quota, now)
    }
    shared.held.push({ owner: this, store: stores.counters, key, id, amount, windows, local: result.local === true, settled: false })
    showLimit(ctx, 'tokens', (tpm ?? quota)!, now)
    if (this.cfg.remainingTokensHeaderName && tpm) ctx.responseHeaders[this.cfg.remainingTokensHeaderName.toLowerCase()] = String(tpm.remaining)
    if (this.cfg.remainingQuotaTokensHeaderName && quota) ctx.responseHeaders[this.cfg.remainingQuotaTokensHeaderName.toLowerCase()] = String(quota.remaining)
  }

  private refusal(ctx: RequestContext, amount: number, tpm: WindowState | null, quota: WindowState | null, now: number): GatewayError {
    const { metrics } = this.deps
    const headers: Record<string, string> = {}
    if (quota && !quota.fits) {
      metrics.limitRejected(this.name, 'quota')
      writeLimitHeaders(headers, 'tokens', quota, now)
      if (quota.retryAfterMs < 0) {
        return new GatewayError(GW_ERR.QUOTA_EXCEEDED, `This request needs about ${amount} tokens, more than the whole token quota of ${quota.limit} per ${this.cfg.tokenQuotaPeriod} period.`, { headers })
      }
      Object.assign(headers, retryHeaders(quota.retryAfterMs, this.cfg.retryAfterHeaderName))
      return new GatewayError(GW_ERR.QUOTA_EXCEEDED, `The token quota of ${quota.limit} tokens for this ${periodNoun(this.cfg.tokenQuotaPeriod)} is used up; it renews at ${new Date(quota.resetAt).toISOString()}.`, { headers })
    }
    const w = tpm!
    metrics.limitRejected(this.name, 'rate')
    writeLimitHeaders(headers, 'tokens', w, now)
    if (w.retryAfterMs < 0) {
      // Retrying cannot help: tell the OpenAI SDKs not to.
      headers['x-should-retry'] = 'false'
      return new GatewayError(GW_ERR.RATE_LIMIT_EXCEEDED, `This request needs about ${amount} tokens, more than the limit of ${w.limit} tokens per minute; lower max_tokens or shorten the prompt.`, { headers })
    }
    Object.assign(headers, retryHeaders(w.retryAfterMs, this.cfg.retryAfterHeaderName))
    return new GatewayError(GW_ERR.RATE_LIMIT_EXCEEDED, `Rate limit of ${w.limit} tokens per minute reached (in use: ${w.used}, requested: about ${amount}). Retry after ${(Math.max(1, w.retryAfterMs) / 1000).toFixed(3)} seconds.`, { headers })
  }

  outboundResponse(ctx: RequestContext, res: JsonResult): void {
    if (!this.cfg.tokensConsumedHeaderName) return
    const u = usageFromOpenAI(res.body.usage)
    if (u) ctx.responseHeaders[this.cfg.tokensConsumedHeaderName.toLowerCase()] = String(u.totalTokens)
  }

  async complete(ctx: RequestContext, outcome: Outcome): Promise<void> {
    const held = heldBy(ctx, this)
    if (!held) return
    held.settled = true
    let actual = 0
    // A cache hit cost no backend tokens; it is charged only when the cache policy says `countHits: true`.
    const hit = cacheHitOf(ctx)
    if (hit !== null) {
      const u = hit.countHits ? hit.usage : null
      if (u) actual = u.totalTokens || u.promptTokens + u.completionTokens
    } else if (outcome.servedBy === null) {
      const u = addUsage(outcome.usage, outcome.extraUsage ?? null)
      if (u) actual = u.totalTokens || u.promptTokens + u.completionTokens
      // Cut before any usage was known, after the backend had the prompt: it read the prompt at least.
      else if (outcome.aborted && ctx.backendId !== null) actual = requestLimits(ctx).promptEstimate ?? estimatePromptTokens(ctx.operation, ctx.body, ctx.model)
    }
    try {
      await held.store.settle({ key: held.key, id: held.id, reserved: held.amount, actual, windows: held.windows, now: this.deps.clock.now(), local: held.local })
    } catch (err) {
      // The store is unreachable: the reservation stands until it leaves its window or its lease expires.
      this.deps.logger.debug({ err: { message: (err as Error).message } }, 'could not settle a token reservation')
      return
    }
    if (this.cfg.alerts.length === 0 || this.cfg.tokenQuota === undefined) return
    const now = this.deps.clock.now()
    const states = await this.deps.stores.counters.peek(held.key, held.windows, now)
    await this.quotaAlerts(ctx, held.key, states[states.length - 1]!.used, now)
  }

  private async quotaAlerts(ctx: RequestContext, key: string, used: number, now: number): Promise<void> {
    const limit = this.cfg.tokenQuota!
    const { start, end } = periodBounds(this.cfg.tokenQuotaPeriod!, now)
    try {
      for (const a of this.cfg.alerts) {
        if (used * 100 < a.at * limit) continue
        await this.deps.alerts?.fire({
          kind: 'token-quota', at: a.at, counter: key.slice('tokens:'.length), scope: scopeLabel(this.deps.scope), limit, used: Math.min(used, limit),
          unit: 'tokens', periodStart: start, periodEnd: end, consumer: ctx.principal?.consumerId ?? null, webhook: a.webhook ?? null,
        }, now)
      }
    } catch (err) {
      this.deps.logger.warn({ err: { message: (err as Error).message } }, 'token-limit: alert failed')
    }
  }

  async inspect(keyValue: string): Promise<LimitView> {
    const now = this.deps.clock.now()
    const windows = this.windowsAt(now)
    const counter = `tokens:${keyValue}`
    const states = await this.deps.stores.counters.peek(counter, windows, now)
    return {
      policy: this.name,
      scope: scopeLabel(this.deps.scope),
      counter,
      windows: states.map((s, i) => ({
        ...s,
        kind: windows[i]!.kind,
        resetAtIso: new Date(s.resetAt).toISOString(),
        ...(windows[i]!.kind === 'fixed' ? { period: this.cfg.tokenQuotaPeriod } : {}),
      })),
    }
  }
}

function periodNoun(p: TokenLimitConfig['tokenQuotaPeriod']): string {
  switch (p) {
    case 'hourly': return 'hour'
    case 'daily': return 'day'
    case 'weekly': return 'week'
    case 'yearly': return 'year'
    default: return 'month'
  }
}

export const tokenLimitPolicy: PolicyFactory<TokenLimitConfig> = {
  name: 'token-limit',
  schema: schema as unknown as z.ZodType<TokenLimitConfig>,
  create: (config, deps) => new TokenLimit(config, deps),
}
