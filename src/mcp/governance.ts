import type { Logger } from 'pino'
import type { Principal } from '../core/context.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { Ledger } from '../ledger/ledger.ts'
import { makeRedactor, type Redactor } from '../policies/log-messages/redact.ts'
import { boundedKeyPart, reservationId } from '../policies/limits-common/index.ts'
import { periodBounds } from '../policies/limits-common/periods.ts'
import type { CounterStore, CounterWindow } from '../stores/counter.ts'
import type { McpLogConfig, McpServerConfig, ProductMcpConfig, ToolLimitConfig } from './config.ts'
import { MCP_ERR, mcpError } from './errors.ts'
import type { McpMetrics, ToolCallStatus } from './metrics.ts'
import type { ToolOrigin } from './source.ts'

/** `*` matches any run of characters (dots included), `?` one character; everything else is literal. */
export function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')
  return new RegExp(`^${body}$`)
}

const qualified = (o: ToolOrigin) => `${o.server}.${o.tool}`

interface CompiledLimit {
  readonly scope: string
  readonly cfg: ToolLimitConfig
  readonly patterns: readonly RegExp[]
}

interface ProductRules {
  readonly allow: readonly RegExp[] | null
  readonly deny: readonly RegExp[]
  readonly limits: readonly CompiledLimit[]
  readonly log: { cfg: McpLogConfig; redact: Redactor } | null
}

export interface CallRecord {
  readonly principal: Principal
  readonly requestId: string
  /** The endpoint the consumer called (`/mcp/{id}`). */
  readonly endpoint: string
  readonly origin: ToolOrigin
  readonly status: ToolCallStatus
  readonly startedAt: number
  readonly endedAt: number
  readonly bytesIn: number
  readonly bytesOut: number
  readonly args: unknown
  readonly resultText: string | null
}

const LEDGER_STATUS: Record<ToolCallStatus, { status: number; code: string | null }> = {
  ok: { status: 200, code: null },
  tool_error: { status: 200, code: 'tool_error' },
  rate_limited: { status: 429, code: 'rate_limit_exceeded' },
  quota_exceeded: { status: 403, code: 'quota_exceeded' },
  bad_gateway: { status: 502, code: 'bad_gateway' },
  timeout: { status: 504, code: 'gateway_timeout' },
  too_large: { status: 502, code: 'result_too_large' },
  invalid: { status: 400, code: 'invalid_params' },
  content_filtered: { status: 400, code: 'content_filter' },
  error: { status: 500, code: 'internal_error' },
}

/**
 * Per-tool governance for one configuration: allow/deny per product (globs over `server.tool`), rate
 * limits and quotas per tool counted in the shared counter store, and the trail each call leaves (a
 * ledger row, metrics, an optional redacted message log). Nothing here is awaited on the answer's path
 * except the limit check itself.
 */
export class Governance {
  private readonly products = new Map<string, ProductRules>()
  private readonly serverLimits = new Map<string, CompiledLimit[]>()

  constructor(
    snapshot: Snapshot,
    servers: readonly McpServerConfig[],
    private readonly counters: CounterStore,
    private readonly now: () => number,
    private readonly ledger: Ledger | null,
    private readonly metrics: McpMetrics,
    private readonly logger: Logger,
  ) {
    for (const s of servers) this.serverLimits.set(s.id, s.limits.map((cfg, i) => ({ scope: `s:${s.id}:${i}`, cfg, patterns: cfg.tools.map(globToRegExp) })))
    for (const p of snapshot.config.products) {
      const m: ProductMcpConfig | undefined = p.mcp
      if (!m) continue
      this.products.set(p.id, {
        allow: m.allow ? m.allow.map(globToRegExp) : null,
        deny: m.deny.map(globToRegExp),
        limits: m.limits.map((cfg, i) => ({ scope: `p:${p.id}:${i}`, cfg, patterns: cfg.tools.map(globToRegExp) })),
        log: m.log ? { cfg: m.log, redact: makeRedactor(m.log.redact, m.log.builtinRedaction) } : null,
      })
    }
  }

  /** Whether this consumer's product may see and call the tool. */
  allowed(principal: Principal, origin: ToolOrigin): boolean {
    const rules = principal.productId === null ? undefined : this.products.get(principal.productId)
    if (!rules) return true
    const name = qualified(origin)
    if (rules.deny.some((re) => re.test(name))) return false
    return rules.allow === null || rules.allow.some((re) => re.test(name))
  }

  /**
   * Counts one call against every limit that matches the tool (the endpoint's, the member server's and the
   * product's), atomically per limit; refuses with the JSON-RPC error when one is full, releasing the others.
   */
  async admit(principal: Principal, endpoint: string, origin: ToolOrigin): Promise<void> {
    const name = qualified(origin)
    const rules = principal.productId === null ? undefined : this.products.get(principal.productId)
    const candidates = [...(this.serverLimits.get(endpoint) ?? []), ...(endpoint !== origin.server ? this.serverLimits.get(origin.server) ?? [] : []), ...(rules?.limits ?? [])]
    const matching = candidates.filter((l) => l.patterns.some((re) => re.test(name)))
    if (matching.length === 0) return
    const now = this.now()
    const held: Array<{ key: string; id: string; windows: CounterWindow[]; local: boolean }> = []
    for (const l of matching) {
      const who = l.cfg.by === 'consumer' ? principal.consumerId : l.cfg.by === 'product' ? principal.productId ?? '(none)' : '*'
      const key = `mcp:${l.scope}:${boundedKeyPart(name)}:${boundedKeyPart(who)}`
      const windows: CounterWindow[] = []
      if (l.cfg.requests !== undefined) windows.push({ kind: 'sliding', name: `calls-${l.cfg.per}`, limit: l.cfg.requests, windowMs: l.cfg.per })
      if (l.cfg.quota !== undefined) windows.push({ kind: 'fixed', name: `quota-${l.cfg.quotaPeriod}`, limit: l.cfg.quota, ...periodBounds(l.cfg.quotaPeriod, now) })
      const id = reservationId()
      const res = await this.counters.reserve({ key, id, amount: 1, windows, now, leaseMs: 24 * 3_600_000 })
      if (!res.ok) {
        for (const h of held) void this.counters.settle({ key: h.key, id: h.id, reserved: 1, actual: 0, windows: h.windows, now, local: h.local }).catch(() => {})
        const full = res.windows.findIndex((w) => !w.fits)
        const w = res.windows[full] ?? res.windows[0]!
        const quota = windows[full]?.kind === 'fixed'
        const retryAfterMs = Math.max(0, w.retryAfterMs)
        if (quota) {
          throw mcpError(MCP_ERR.QUOTA_EXCEEDED, `The ${l.cfg.quotaPeriod} quota of ${w.limit} calls for tool "${origin.tool}" is used up.`, { code: 'quota_exceeded', tool: name, limit: w.limit, retryAfterMs })
        }
        throw mcpError(MCP_ERR.RATE_LIMITED, `Rate limit of ${w.limit} calls per ${l.cfg.per / 1000} seconds for tool "${origin.tool}" reached. Retry after ${(Math.max(1, retryAfterMs) / 1000).toFixed(3)} seconds.`, { code: 'rate_limit_exceeded', tool: name, limit: w.limit, retryAfterMs })
      }
      held.push({ key, id, windows, local: res.local === true })
    }
  }

  /** The trail of one call: metrics now, a ledger row and an optional message log queued (never awaited). */
  record(c: CallRecord): void {
    const latencyMs = Math.max(0, Math.round(c.endedAt - c.startedAt))
    this.metrics.toolCall(c.origin.server, c.origin.tool, c.status, latencyMs / 1000, c.bytesIn, c.bytesOut)
    const s = LEDGER_STATUS[c.status]
    const model = `mcp:${c.origin.server}/${c.origin.tool}`
    this.ledger?.recordUsage({
      ts: Math.round(c.startedAt), requestId: c.requestId, consumer: c.principal.consumerId, product: c.principal.productId,
      model: model.slice(0, 256), backend: c.origin.backend, status: s.status,
      promptTokens: 0, completionTokens: 0, cachedTokens: 0, reasoningTokens: 0, costUsd: null,
      latencyMs, ttftMs: null, cacheHit: false, stream: false, attempts: 1, errorCode: s.code, bytesIn: c.bytesIn, bytesOut: c.bytesOut,
    })
    const rules = c.principal.productId === null ? undefined : this.products.get(c.principal.productId)
    const log = rules?.log
    if (log && this.ledger && Math.random() < log.cfg.sample) {
      const clip = (t: string) => (t.length > log.cfg.maxChars ? t.slice(0, log.cfg.maxChars) : t)
      const args = JSON.stringify(c.args ?? {})
      this.ledger.logMessages({
        ts: Math.round(c.startedAt), requestId: c.requestId, consumer: c.principal.consumerId, product: c.principal.productId, model: model.slice(0, 256),
        prompt: log.redact(clip(args)), completion: c.resultText === null ? null : log.redact(clip(c.resultText)),
        truncated: args.length > log.cfg.maxChars || (c.resultText?.length ?? 0) > log.cfg.maxChars,
      })
    }
    if (c.status !== 'ok' && c.status !== 'tool_error') this.logger.info({ reqId: c.requestId, server: c.endpoint, tool: qualified(c.origin).slice(0, 200), status: c.status }, 'mcp: tool call refused or failed')
  }
}
