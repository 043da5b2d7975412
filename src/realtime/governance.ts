import type { Logger } from 'pino'
import { createRequestContext, type Principal, type RequestContext, type RequestInfo } from '../core/context.ts'
import { GatewayError, toGatewayError } from '../core/errors.ts'
import type { Outcome, Policy } from '../core/pipeline.ts'
import type { Usage } from '../core/usage.ts'
import type { LedgerSink } from '../ledger/ledger.ts'
import { requestLimits } from '../policies/limits-common/index.ts'
import type { RequestRecorder } from '../telemetry/telemetry.ts'

/**
 * Policies a Realtime response is governed by: the limits (reserve at `response.create`, settle at
 * `response.done`) and the consumer-suspension check; `emit-token-metric` counts its tokens. Caches and
 * content safety look at a request body, which a Realtime response does not have: they do not apply.
 */
const RESERVING = new Set(['consumer-suspension', 'rate-limit', 'token-limit', 'budget'])
const SETTLING = new Set([...RESERVING, 'emit-token-metric'])
const ZERO: Usage = { promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0 }

export interface GovernorDeps {
  readonly sessionId: string
  readonly model: string
  readonly backendId: string
  readonly principal: Principal
  readonly info: RequestInfo
  readonly policies: readonly Policy[]
  readonly now: () => number
  readonly ledger: LedgerSink | undefined
  readonly telemetry: RequestRecorder | undefined
  readonly logger: Logger
}

/** One governed response: its request context from the reservation to `response.done`. */
interface Governed {
  readonly ctx: RequestContext
  /** The client event that asked for it (an upstream `error` naming it releases the reservation). */
  readonly clientEventId: string | null
  responseId: string | null
}

/**
 * The governance of one Realtime session, response by response. Each response is a request as far as
 * limits, the ledger and metrics are concerned: reserved before it starts, settled on its reported usage,
 * one ledger row (operation `realtime`). Nothing here is awaited on the relay path except the reservation.
 */
export class SessionGovernor {
  private readonly reserving: readonly Policy[]
  private readonly settling: readonly Policy[]
  /** Reserved, waiting for the upstream's `response.created`, in the order they were asked for. */
  private readonly unbound: Governed[] = []
  private readonly byResponse = new Map<string, Governed>()
  /** Responses the server started, whose reservation is being made; a `response.done` meanwhile waits here. */
  private readonly reservingServer = new Map<string, { usage: Usage | null; status: string | null } | null>()
  private seq = 0
  private closed = false
  /** Tokens the conversation holds so far, as the last response reported them plus what was added since. */
  private contextTokens = 0
  /** The session's own output cap (`session.update`), used when a `response.create` sets none. */
  sessionOutputCap: number | null = null
  /** Totals over the session, for the session's log line. */
  readonly totals = { responses: 0, promptTokens: 0, completionTokens: 0 }

  constructor(private readonly d: GovernorDeps) {
    this.reserving = d.policies.filter((p) => RESERVING.has(p.name) && p.inbound)
    this.settling = d.policies.filter((p) => SETTLING.has(p.name) && p.complete)
  }

  /** What a client event adds to the conversation (an estimate; the next `response.done` corrects it). */
  addContext(tokens: number): void {
    this.contextTokens += Math.max(0, Math.ceil(tokens))
  }

  /**
   * Reserves one response (a client `response.create`, or one the server started itself on voice
   * activity). Resolves null when admitted, or the limit's refusal.
   */
  async reserve(cap: number | null, clientEventId: string | null, responseId: string | null = null): Promise<GatewayError | null> {
    const ctx = this.contextFor(cap)
    const limits = requestLimits(ctx)
    limits.promptEstimate = this.contextTokens
    if (responseId) this.reservingServer.set(responseId, null)
    try {
      for (const p of this.reserving) await p.inbound!(ctx)
    } catch (err) {
      if (responseId) this.reservingServer.delete(responseId)
      const e = toGatewayError(err)
      // Refused before any backend work: a ledger row and metrics like any refused request.
      this.finish({ ctx, clientEventId, responseId }, { status: e.status, usage: null, error: e, aborted: false }, false)
      return e
    }
    if (this.closed) {
      this.finish({ ctx, clientEventId, responseId }, { status: 499, usage: null, error: null, aborted: true }, false)
      return null
    }
    const g: Governed = { ctx, clientEventId, responseId }
    if (responseId) {
      this.byResponse.set(responseId, g)
      const early = this.reservingServer.get(responseId)
      this.reservingServer.delete(responseId)
      if (early) this.done(responseId, early.usage, early.status)
    } else this.unbound.push(g)
    return null
  }

  /** Whether the upstream's `response.created` belongs to a reservation (else the server started it). */
  bind(responseId: string): boolean {
    if (this.byResponse.has(responseId)) return true
    const g = this.unbound.shift()
    if (!g) return false
    g.responseId = responseId
    this.byResponse.set(responseId, g)
    return true
  }

  /** The upstream refused a `response.create` (an `error` naming its event): the reservation is given back. */
  refusedByUpstream(clientEventId: string | null): void {
    if (clientEventId === null) return
    const i = this.unbound.findIndex((g) => g.clientEventId === clientEventId)
    if (i === -1) return
    const [g] = this.unbound.splice(i, 1)
    this.finish(g!, { status: 400, usage: ZERO, error: null, aborted: false }, false)
  }

  /** Whether a running response has not produced output yet (only then are deltas looked at). */
  awaitingFirstOutput(): boolean {
    for (const g of this.byResponse.values()) if (g.ctx.firstTokenAt === null) return true
    return false
  }

  firstOutput(responseId: string): void {
    const g = this.byResponse.get(responseId)
    if (g && g.ctx.firstTokenAt === null) g.ctx.firstTokenAt = this.d.now()
  }

  /** `response.done`: settle on the reported usage and write the response's ledger row. */
  done(responseId: string, usage: Usage | null, status: string | null): void {
    const g = this.byResponse.get(responseId)
    if (!g) {
      if (this.reservingServer.has(responseId)) this.reservingServer.set(responseId, { usage, status })
      return
    }
    this.byResponse.delete(responseId)
    if (usage) this.contextTokens = usage.promptTokens + usage.completionTokens
    const failed = status === 'failed'
    this.finish(g, { status: failed ? 502 : 200, usage, error: null, aborted: false, errorCode: failed ? 'response_failed' : status === 'cancelled' ? 'response_cancelled' : null }, true)
  }

  /** The session ended: responses still running are settled as cut (499), reservations never used released. */
  close(): void {
    if (this.closed) return
    this.closed = true
    // A reservation no response used costs nothing; a response cut mid-way is charged what it had read.
    for (const g of this.unbound.splice(0)) this.finish(g, { status: 499, usage: ZERO, error: null, aborted: false }, false)
    for (const g of [...this.byResponse.values()]) this.finish(g, { status: 499, usage: null, error: null, aborted: true }, true)
    this.byResponse.clear()
  }

  private contextFor(cap: number | null): RequestContext {
    const outCap = cap ?? this.sessionOutputCap
    const ctx = createRequestContext({
      id: `${this.d.sessionId}.r${++this.seq}`,
      startedAt: this.d.now(),
      operation: 'realtime',
      info: this.d.info,
      signal: new AbortController().signal,
      model: this.d.model,
      // What the limit policies read of a body: the output cap (token-limit's default completion otherwise).
      body: outCap === null ? {} : { max_output_tokens: outCap },
      stream: true,
      clientWantsStreamUsage: true,
    })
    ctx.principal = this.d.principal
    ctx.backendId = this.d.backendId
    ctx.attempts = 1
    return ctx
  }

  private finish(g: Governed, o: { status: number; usage: Usage | null; error: GatewayError | null; aborted: boolean; errorCode?: string | null }, record: boolean): void {
    const { ctx } = g
    if (g.responseId) this.byResponse.delete(g.responseId)
    ctx.usage = o.usage
    const outcome: Outcome = { status: o.status, usage: o.usage, error: o.error, aborted: o.aborted, endedAt: this.d.now(), completionText: null, servedBy: null }
    if (o.usage) {
      this.totals.responses++
      this.totals.promptTokens += o.usage.promptTokens
      this.totals.completionTokens += o.usage.completionTokens
    }
    // A refusal, or a started response, is a ledger row; a reservation the upstream never used is not.
    if (record || o.error) {
      // A failed or cancelled response keeps its usage (it was billed) and says why in the row's error code.
      const rowOutcome = o.errorCode ? { ...outcome, error: new GatewayError({ status: o.status, type: 'server_error', code: o.errorCode }, o.errorCode) } : outcome
      try { this.d.ledger?.record(ctx, rowOutcome) } catch (err) { this.d.logger.warn({ err, reqId: ctx.id }, 'ledger record failed') }
      setImmediate(() => {
        try { this.d.telemetry?.recordRequest(ctx, outcome) } catch (err) { this.d.logger.warn({ err, reqId: ctx.id }, 'recording metrics failed') }
      })
    }
    for (const p of this.settling) {
      try {
        const r = p.complete!(ctx, outcome)
        if (r && typeof (r as Promise<void>).catch === 'function') (r as Promise<void>).catch((err) => this.d.logger.warn({ err, reqId: ctx.id }, 'a complete hook failed'))
      } catch (err) {
        this.d.logger.warn({ err, reqId: ctx.id }, 'a complete hook failed')
      }
    }
  }
}
