import pino, { type Logger } from 'pino'
import type { BackendConfig, ModelConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import type { RequestContext } from '../core/context.ts'
import { realSignal, type AbortLike } from '../core/request-abort.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { Dispatch, JsonResult, UpstreamResult } from '../core/pipeline.ts'
import { providerFor } from '../providers/index.ts'
import type { BreakerStore } from '../stores/breaker.ts'
import { MemoryBreakerStore } from '../stores/memory/breaker.ts'
import { noopMetrics, type MetricsSink } from '../telemetry/sink.ts'
import { traceOf, type AttemptTrace } from '../telemetry/tracing-request.ts'
import { countTextTokens, estimatePromptTokens } from '../tokens/count.ts'
import { AffinityTable } from './affinity.ts'
import { addAttempt, type AttemptRecord } from './attempts.ts'
import { Balancer, type Member } from './balancer.ts'
import { Breakers, stateOf, type CircuitState } from './breaker.ts'
import { ClientAbortError, sendUpstream, type UpstreamClients } from './client.ts'
import { commitStream } from './commit.ts'
import { LatencyStats } from './latency.ts'
import { MemoryInflightStore, type InflightStore } from '../stores/inflight.ts'
import { PriceTable } from '../pricing/table.ts'
import type { Scores } from './balancer.ts'
import { Acceptance } from './acceptance.ts'
import { chooseCandidate, expectedCost, maxOutputOf, SERVED_MODEL_SLOT, splitChoice, type Requirements } from './virtual-models.ts'
import { usageFromOpenAI } from '../core/usage.ts'
import { decodeStream, passthroughStream } from '../translate/stream.ts'
import { hubForOpenAI } from '../translate/helpers/hub-to-openai.ts'
import type { ApiSchema, TranslateContext, TranslatedError } from '../translate/types.ts'
import type { Credentials } from '../providers/credentials/types.ts'
import type { UpstreamTarget } from '../providers/types.ts'
import { noHealthyBackend, Plan, type Choice, type Target } from './failover.ts'
import { UpstreamFailure, retryAfterMsFrom } from './failure.ts'
import { clientErrorBody } from './backend-error.ts'
import { customAttemptOf } from './custom-attempt.ts'
import { nativeResponsesCodec } from '../responses/native.ts'

export type BaseUrlOf = (backend: BackendConfig) => string

export interface RouterOptions {
  /** Breaker state; pass the process-wide store so it survives reloads (a private one is made otherwise). */
  readonly breakers?: BreakerStore
  /** Requests in flight per backend, for least-busy pools (shared by processes on Redis). */
  readonly inflight?: InflightStore
  /** Answer times per backend, for least-latency pools (process-wide, kept across reloads). */
  readonly latency?: LatencyStats
  readonly clock?: Clock
  readonly metrics?: MetricsSink
  readonly logger?: Logger
}

/** One backend's health as `/admin/backends` shows it. */
export interface BackendStatus {
  readonly id: string
  readonly type: BackendConfig['type']
  readonly pools: readonly string[]
  readonly state: CircuitState
  /** Whether routing may send it traffic now (closed, or half-open with its trial free). */
  readonly available: boolean
  readonly openUntil: string | null
  readonly retryAfterMs: number | null
  readonly failures: number
  readonly trips: number
  readonly lastFailure: { readonly at: string; readonly reason: string | null } | null
  readonly circuitBreaker: BackendConfig['circuitBreaker'] | null
}

/**
 * Routes a request to a backend and survives the backend's failures: pools (strategy, priority groups,
 * affinity), circuit breakers shared through the BreakerStore, failover within the model's attempt limit
 * and deadline, the `fallbacks` chain, streams held back until their first content so they fail over
 * invisibly, and opt-in hedging. Built once per config snapshot.
 */
export class Router {
  readonly breakers: Breakers
  private readonly targets = new Map<string, Target>()
  private readonly clock: Clock
  private readonly logger: Logger
  private readonly inflight: InflightStore
  private readonly latency: LatencyStats
  private prices: PriceTable | null = null
  private readonly acceptance = new Acceptance()
  private readonly metrics: MetricsSink

  constructor(
    private readonly snapshot: Snapshot,
    private readonly clients: UpstreamClients,
    private readonly baseUrlOf: BaseUrlOf,
    opts: RouterOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock
    this.logger = opts.logger ?? pino({ level: 'silent' })
    this.metrics = opts.metrics ?? noopMetrics
    this.inflight = opts.inflight ?? new MemoryInflightStore()
    this.latency = opts.latency ?? new LatencyStats()
    this.breakers = new Breakers(snapshot.backends.values(), opts.breakers ?? new MemoryBreakerStore(), this.clock, opts.metrics ?? noopMetrics, this.logger)
    for (const pool of snapshot.pools.values()) {
      const members = pool.members.map((m, index): Member => ({ backend: snapshot.backends.get(m.backend)!, priority: m.priority, weight: m.weight, index }))
      this.targets.set(pool.id, {
        balancer: new Balancer(pool.strategy, members, pool.strategy === 'least-latency' ? pool.explore : 0),
        byId: new Map(members.map((m) => [m.backend.id, m])),
        affinity: pool.affinity ? new AffinityTable(pool.affinity) : null,
      })
    }
    for (const b of snapshot.backends.values()) {
      const only: Member = { backend: b, priority: 1, weight: 1, index: 0 }
      this.targets.set(b.id, { balancer: new Balancer('round-robin', [only]), byId: new Map([[b.id, only]]), affinity: null })
    }
    // Publish the circuits' current state (they may be open from before a reload, or in another process).
    void this.breakers.read(this.breakers.ids).catch(() => {})
  }

  readonly dispatch: Dispatch = async (ctx) => {
    const requested = this.snapshot.models.get(ctx.model)
    if (!requested) throw new GatewayError(GW_ERR.MODEL_NOT_FOUND, `The model "${ctx.model}" does not exist.`, { param: 'model' })
    if (requested.race) return this.race(ctx, requested)
    let model = requested
    if (requested.router) {
      const choice = chooseCandidate(ctx, requested, this.snapshot, (m, need) => this.expectedCostOf(m, need), (m) => this.expectedWaitOf(m, ctx.stream))
      model = choice.model
      this.metrics.routeDecision?.(requested.name, model.name, choice.reason)
    } else if (requested.split) {
      model = splitChoice(ctx, requested, this.snapshot)
      this.metrics.routeDecision?.(requested.name, model.name, 'split')
    }
    if (model !== requested) this.served(ctx, model.name)
    return this.runModel(ctx, model, ctx.cancel)
  }

  /** The model's target, then its fallbacks, tried until one answers. */
  private runModel(ctx: RequestContext, model: ModelConfig, signal: AbortLike): Promise<UpstreamResult> {
    const chain = [model, ...model.fallbacks.flatMap((name) => this.snapshot.models.get(name) ?? [])]
    const plan = new Plan(ctx, chain, (m) => this.targetOf(m), this.breakers, (m, target) => this.scoresOf(ctx, m, target))
    return this.run(ctx, model, plan, signal)
  }

  /** Notes which model served a router, race or split model: the `x-sluice-model` header, the ledger. */
  private served(ctx: RequestContext, name: string): void {
    ctx.responseHeaders['x-sluice-model'] = name
    ctx.slots.set(SERVED_MODEL_SLOT, name)
  }

  private expectedCostOf(m: ModelConfig, need: Requirements): number | null {
    this.prices ??= new PriceTable(this.snapshot.config.pricing.models)
    const mapped = this.targetOf(m).balancer.members.map((x) => x.backend.models?.[m.name])
    return expectedCost(this.prices, [m.name, ...mapped], need)
  }

  /** The fastest measured member of the model's target (ms), null when none is measured yet. */
  private expectedWaitOf(m: ModelConfig, stream: boolean): number | null {
    const now = this.clock.now()
    let best: number | null = null
    for (const x of this.targetOf(m).balancer.members) {
      const e = this.latency.estimate(x.backend.id, stream, now)
      if (e !== null && (best === null || e < best)) best = e
    }
    return best
  }

  /**
   * All of the race's models at once; the first acceptable answer wins and the rest are cancelled (billed
   * for what they used, as hedges are). A stream is acceptable at its first content; a complete answer
   * when it has content, no refusal and, if asked, valid JSON for the request's schema. An answer that
   * is not acceptable is billed and set aside; if none is, the first answer is served after all.
   */
  private race(ctx: RequestContext, model: ModelConfig): Promise<UpstreamResult> {
    const entrants = model.race!.models.map((name) => this.snapshot.models.get(name)!)
    const accept = model.race!.accept
    return new Promise<UpstreamResult>((resolve, reject) => {
      const controllers = entrants.map(() => new AbortController())
      const onClientGone = () => { for (const c of controllers) c.abort() }
      ctx.cancel.addEventListener('abort', onClientGone, { once: true })
      let left = entrants.length
      let done = false
      let fallback: { result: UpstreamResult; name: string } | null = null
      let lastError: unknown = null
      const end = (winner: number | null, settle: () => void) => {
        done = true
        ctx.cancel.removeEventListener('abort', onClientGone)
        controllers.forEach((c, i) => { if (i !== winner) c.abort() })
        settle()
      }
      const over = () => {
        if (--left > 0 || done) return
        if (fallback) {
          this.served(ctx, fallback.name)
          return end(null, () => resolve(fallback!.result))
        }
        end(null, () => reject(lastError))
      }
      entrants.forEach((m, i) => {
        this.runModel(ctx, m, controllers[i]!.signal).then(
          (result) => {
            if (done) {
              if (result.kind !== 'json') result.abort()
              else this.billRejected(ctx, m.name, result)
              return over()
            }
            if (result.kind === 'json' && !this.acceptance.acceptable(result, ctx.body, accept)) {
              if (fallback === null) fallback = { result, name: m.name }
              else this.billRejected(ctx, m.name, result)
              return over()
            }
            if (fallback !== null && fallback.result.kind === 'json') this.billRejected(ctx, fallback.name, fallback.result)
            this.served(ctx, m.name)
            this.metrics.routeDecision?.(model.name, m.name, 'race')
            end(i, () => resolve(result))
            left--
          },
          (err: unknown) => {
            if (!(err instanceof ClientAbortError) || lastError === null) lastError = err
            over()
          },
        )
      })
    })
  }

  /** A complete answer the race did not use: the backend was paid for it, so its usage is billed. */
  private billRejected(ctx: RequestContext, modelName: string, result: JsonResult): void {
    const usage = usageFromOpenAI(result.body.usage)
    const rec = addAttempt(ctx, ctx.backendId ?? '', modelName)
    rec.outcome = 'cancelled'
    rec.status = result.status
    rec.promptTokens = usage?.promptTokens ?? estimatePromptTokens(ctx.operation, ctx.body, modelName)
    rec.completionTokens = usage?.completionTokens ?? 0
  }

  /**
   * Member scores for the scored strategies (lower is better, null = unknown): expected wait from the
   * decaying averages, requests in flight (shared through the store), or this request's expected cost at
   * each member's model price (an unpriced member comes last, never first).
   */
  private async scoresOf(ctx: RequestContext, model: ModelConfig, target: Target): Promise<Scores> {
    const members = target.balancer.members
    const now = this.clock.now()
    switch (target.balancer.strategy) {
      case 'least-latency':
        return new Map(members.map((m) => [m.backend.id, this.latency.estimate(m.backend.id, ctx.stream, now)]))
      case 'least-busy':
        try {
          return await this.inflight.counts(members.map((m) => m.backend.id), now)
        } catch (err) {
          this.logger.warn({ err, reqId: ctx.id }, 'in-flight counts unavailable; choosing by weight')
          return new Map()
        }
      default: {
        this.prices ??= new PriceTable(this.snapshot.config.pricing.models)
        const prompt = estimatePromptTokens(ctx.operation, ctx.body, model.name)
        const out = maxOutputOf(ctx.body)
        return new Map(members.map((m) => {
          const price = this.prices!.priceOf(m.backend.models?.[model.name], model.name)
          return [m.backend.id, price === null ? Number.MAX_VALUE : prompt * price.input + out * price.output]
        }))
      }
    }
  }

  /**
   * The order a long-lived session (a Realtime WebSocket) tries the model's members in, with the same
   * strategy, affinity, breakers and fallbacks as a request; the session then stays on the member it got.
   */
  planFor(ctx: RequestContext, model: ModelConfig): Plan {
    const chain = [model, ...model.fallbacks.flatMap((name) => this.snapshot.models.get(name) ?? [])].filter((m) => m.target !== undefined)
    return new Plan(ctx, chain, (m) => this.targetOf(m), this.breakers, (m, target) => this.scoresOf(ctx, m, target))
  }

  /** Members of the model's target, in configuration order. */
  candidates(model: ModelConfig): BackendConfig[] {
    return this.targetOf(model).balancer.members.map((m) => m.backend)
  }

  /** Health and breaker state of every configured backend, read fresh from the store. */
  async backendStatus(): Promise<BackendStatus[]> {
    const all = [...this.snapshot.backends.values()]
    const records = await this.breakers.read(all.map((b) => b.id))
    const now = this.clock.now()
    return all.map((b) => {
      const rec = records.get(b.id)
      const state = stateOf(rec, now)
      return {
        id: b.id,
        type: b.type,
        pools: this.snapshot.config.pools.filter((p) => p.members.some((m) => m.backend === b.id)).map((p) => p.id),
        state,
        available: state === 'closed' || (state === 'half-open' && rec!.trialUntil <= now),
        openUntil: state === 'open' ? new Date(rec!.openUntil).toISOString() : null,
        retryAfterMs: state === 'open' ? rec!.openUntil - now : null,
        failures: rec?.failures ?? 0,
        trips: rec?.trips ?? 0,
        lastFailure: rec && rec.lastFailureAt ? { at: new Date(rec.lastFailureAt).toISOString(), reason: rec.lastReason } : null,
        circuitBreaker: b.circuitBreaker ?? null,
      }
    })
  }

  private targetOf(model: ModelConfig): Target {
    return this.targets.get(model.target!)! // load refused unknown targets, and virtual models never get here
  }

  /**
   * Tries members until one answers: one at a time (failover), or with `hedge` a further one whenever the
   * running tries have produced nothing for `hedge.after`, up to `hedge.max` at once. The first try to
   * commit (a complete JSON answer, or a stream's first content) wins; the others are cancelled.
   */
  private run(ctx: RequestContext, model: ModelConfig, plan: Plan, outer: AbortLike): Promise<UpstreamResult> {
    const hedge = model.hedge
    return new Promise<UpstreamResult>((resolve, reject) => {
      interface Running { readonly choice: Choice; readonly controller: AbortController | null; readonly record: AttemptRecord; cancelled: boolean }
      // Only a race (hedging, racing models) or a deadline ever cancels a try on its own; otherwise each try
      // simply listens to the client's signal, and no controller or listener is made per request.
      const ownSignals = hedge !== undefined || model.deadline !== undefined || outer !== ctx.cancel
      let retries = 0
      const running = new Set<Running>()
      const timers = new Set<NodeJS.Timeout>()
      let launched = 0
      let pending = 0
      let done = false
      let last: GatewayError | null = null

      const finish = (settle: () => void) => {
        if (done) return
        done = true
        for (const t of timers) clearTimeout(t)
        if (ownSignals) outer.removeEventListener('abort', onClientGone)
        for (const r of running) {
          // Charged now, not when its cancellation lands, so `complete` hooks see every attempt's cost.
          r.cancelled = true
          r.controller?.abort()
          this.chargeLoser(ctx, r.record, '')
        }
        settle()
      }
      const onClientGone = () => finish(() => reject(new ClientAbortError()))
      if (ownSignals) outer.addEventListener('abort', onClientGone, { once: true })
      if (outer.aborted) return onClientGone()
      if (model.deadline !== undefined) {
        const t = setTimeout(() => {
          finish(() => reject(new GatewayError(GW_ERR.GATEWAY_TIMEOUT, `No backend answered for the model "${model.name}" within its deadline.`)))
        }, model.deadline)
        timers.add(t)
      }

      /** Nothing running and nothing about to start: answer with what we know. */
      const settleIfIdle = () => {
        if (done || running.size > 0 || pending > 0) return
        // No other member left: the one that asked us to wait briefly gets asked again (bounded, jittered).
        const wait = retryWait(model, last, retries)
        if (wait !== null && last instanceof UpstreamFailure) {
          retries++
          plan.retry(last.backendId)
          launched--
          pending++
          const t = setTimeout(() => { timers.delete(t); pending--; void launch() }, wait)
          timers.add(t)
          return
        }
        const comeback = plan.comeback()
        if (comeback !== null || last === null) finish(() => reject(noHealthyBackend(ctx.model, comeback, this.clock.now())))
        else finish(() => reject(last!))
      }

      const launch = async (): Promise<void> => {
        if (done || launched >= model.maxAttempts) return settleIfIdle()
        launched++
        pending++
        let choice: Choice | null
        try {
          choice = await plan.next()
        } catch (err) {
          pending--
          return finish(() => reject(err))
        }
        pending--
        if (done) return
        if (!choice) {
          launched--
          return settleIfIdle()
        }
        const r: Running = { choice, controller: ownSignals ? new AbortController() : null, record: addAttempt(ctx, choice.backend.id, choice.model.name), cancelled: false }
        running.add(r)
        const startedAt = this.clock.now()
        const busy = this.targetOf(choice.model).balancer.strategy === 'least-busy' ? this.track(ctx, choice.backend.id, launched, startedAt) : null
        ctx.attempts++
        ctx.backendId = choice.backend.id
        if (hedge) {
          const t = setTimeout(() => {
            timers.delete(t)
            if (!done && running.size < hedge.max) void launch()
          }, hedge.after)
          timers.add(t)
        }
        this.attempt(ctx, choice, r.controller?.signal ?? outer).then(
          async ({ result, text }) => {
            // Still counted as running while the trial's success is written, so the race cannot end meanwhile.
            if (choice.trial && !done) await this.breakers.succeeded(choice.backend.id)
            else if (choice.trial) void this.breakers.succeeded(choice.backend.id)
            running.delete(r)
            if (done) {
              // Lost the race after producing content: stop it, and account for what it produced.
              busy?.()
              if (result.kind !== 'json') result.abort()
              if (text) this.chargeLoser(ctx, r.record, text)
              return
            }
            this.latency.observe(choice.backend.id, result.kind !== 'json', this.clock.now() - startedAt, this.clock.now())
            if (busy) {
              if (result.kind === 'json') busy()
              else result.abort = endsWith(result.abort, busy)
            }
            r.record.outcome = 'answered'
            r.record.status = result.status
            ctx.backendId = choice.backend.id
            finish(() => resolve(result))
          },
          async (err: unknown) => {
            running.delete(r)
            busy?.()
            if (r.cancelled || done) return
            if (err instanceof UpstreamFailure) {
              r.record.outcome = 'failed'
              r.record.status = err.upstreamStatus
              r.record.error = err.code
              pending++ // the failure is being recorded: the race is not idle yet
              plan.note(choice.backend.id, await this.breakers.failed(choice.backend.id, err))
              pending--
              last = err
              if (err.retriable && !done) {
                this.logger.debug({ reqId: ctx.id, backend: choice.backend.id, error: err.code, status: err.upstreamStatus }, 'upstream attempt failed; failing over')
                return launch()
              }
            }
            if (err instanceof GatewayError && !(err instanceof UpstreamFailure)) {
              r.record.outcome = 'failed'
              r.record.error = err.code
            }
            finish(() => reject(err))
          },
        ).catch((err: unknown) => finish(() => reject(err)))
      }
      void launch()
    })
  }

  /** Marks a try in flight at a backend; the returned function ends it (once). */
  private track(ctx: RequestContext, backendId: string, attempt: number, now: number): () => void {
    const token = `${ctx.id}:${attempt}`
    this.inflight.start(backendId, token, now)
    let ended = false
    return () => {
      if (ended) return
      ended = true
      this.inflight.end(backendId, token)
    }
  }

  /** A try that was cancelled after being sent: the backend processed its prompt (estimated) and what it produced. */
  private chargeLoser(ctx: RequestContext, record: AttemptRecord, text: string): void {
    record.outcome = 'cancelled'
    record.promptTokens = estimatePromptTokens(ctx.operation, ctx.body, record.model)
    record.completionTokens = countTextTokens(text, record.model)
  }

  /**
   * One try at one backend, up to its commit point. HTTP errors that mean "this backend failed" become
   * UpstreamFailure; a stream is held back until its first content so a failure before it fails over.
   */
  attempt(ctx: RequestContext, choice: Choice, signal: AbortLike): Promise<{ result: UpstreamResult; text: string }> {
    const trace = traceOf(ctx)
    return trace ? trace.attempt(choice, (t) => this.send(ctx, choice, signal, t)) : this.send(ctx, choice, signal, null)
  }

  private async send(ctx: RequestContext, choice: Choice, signal: AbortLike, traced: AttemptTrace | null): Promise<{ result: UpstreamResult; text: string }> {
    const { model, backend } = choice
    const provider = providerFor(backend.type)
    const upstreamModel = backend.models?.[model.name] ?? model.name
    // A Responses client at a backend that serves the Responses API natively goes up as it came (its operation).
    const native = nativeResponsesCodec(provider, backend, ctx)
    const operation = native ? 'responses' : ctx.operation
    if (!provider.operations.has(operation)) {
      throw new GatewayError(GW_ERR.UNSUPPORTED_OPERATION, `The model "${model.name}" does not support ${operation}.`)
    }
    const target = provider.target(backend, operation, upstreamModel, this.baseUrlOf(backend), ctx.stream)
    const custom = customAttemptOf(ctx)
    if (custom) return custom({ backend, upstreamModel, target, pool: this.clients.poolFor(backend, target.origin), credentials: this.clients.credentials.of(backend) }, realSignal(signal))
    // A provider of another schema gets the hub body translated (pure, so a failover translates again);
    // one of the hub's own schema gets the client's body with only the model replaced. A provider of the client's
    // own (non-hub) schema gets the client's original body: same-schema passthrough.
    const codec = native ?? provider.codecFor?.(backend, upstreamModel) ?? provider.codec
    const passthrough = codec !== undefined && ctx.client !== undefined && ctx.client.schema === codec.schema
    const tc: TranslateContext | null = codec ? { upstreamModel, publicModel: model.name, stream: ctx.stream, requestId: ctx.id, created: Math.floor(ctx.startedAt / 1000), backendId: backend.id } : null
    let body: Record<string, unknown>
    let omitted: readonly string[] = []
    if (passthrough) {
      body = codec.native ? codec.native(ctx.client!.body, tc!) : { ...ctx.client!.body, model: upstreamModel }
    } else if (codec) {
      const translated = codec.request(ctx.body, tc!)
      body = translated.body
      omitted = ctx.client ? [...ctx.client.omitted, ...translated.omitted] : translated.omitted
    } else {
      if (ctx.client) {
        const cleaned = hubForOpenAI(ctx.body)
        body = { ...cleaned.body, model: upstreamModel }
        omitted = [...ctx.client.omitted, ...cleaned.omitted]
      } else body = { ...ctx.body, model: upstreamModel }
      // Ask for usage in streams so tokens are always accounted; the kernel strips it if the client did not ask.
      if (ctx.stream && (ctx.operation === 'chat.completions' || ctx.operation === 'completions')) {
        body.stream_options = { ...(ctx.body.stream_options as object | undefined), include_usage: true }
      }
    }
    // Per attempt: a failover to a backend of another schema omits other fields (or none).
    if (omitted.length) ctx.responseHeaders['x-sluice-omitted'] = omitted.join(',')
    else if (ctx.client) delete ctx.responseHeaders['x-sluice-omitted']
    const bodyText = JSON.stringify(body)
    const credentials = this.clients.credentials.of(backend)
    let sentHeaders = passthrough && ctx.client!.headers ? mergeClientHeaders(target.headers, ctx.client!.headers) : target.headers
    if (traced) sentHeaders = traced.inject(sentHeaders) // the backend's parent span: this try's
    const headers = credentials === null ? sentHeaders : { ...sentHeaders, ...(await credentialHeaders(credentials, backend.id, { ...target, headers: sentHeaders }, bodyText, realSignal(signal))) }
    const pool = this.clients.poolFor(backend, target.origin)
    const sent = await sendUpstream(pool, {
      backend,
      target: headers === target.headers ? target : { ...target, headers },
      body: bodyText,
      stream: ctx.stream,
      signal,
      streamContentType: provider.streamContentType,
      streamParser: provider.streamParser,
    })
    traced?.responded(sent.status)
    if (sent.kind === 'json') {
      if (sent.status >= 400) {
        if (!codec) throw statusFailure(backend.id, sent.status, sent.headers, sent.body)
        const e = codec.error(sent.status, sent.body, sent.headers)
        const headers = e.retryAfterMs != null && retryAfterMsFrom(sent.headers) === null ? { ...sent.headers, 'retry-after-ms': String(e.retryAfterMs) } : sent.headers
        const failure = statusFailure(backend.id, sent.status, headers, hubErrorBody(e), e.retriable)
        if (passthrough && failure instanceof PassThroughError) failure.native = { schema: codec.schema, body: nativeErrorBody(codec.schema, sent.body, failure) }
        throw failure
      }
      if (codec) {
        if (passthrough) sent.native = { schema: codec.schema, text: sent.text ?? JSON.stringify(sent.body) }
        sent.body = codec.response(sent.body, tc!)
        sent.text = null
      }
      return { result: sent, text: '' }
    }
    const result = !codec ? sent : passthrough ? passthroughStream(sent, codec.decoder(tc!)) : decodeStream(sent, codec.decoder(tc!))
    return commitStream(result, backend.id, (f) => {
      void this.breakers.failed(backend.id, f)
    })
  }
}

/**
 * How long to wait before asking the same member again, or null for no retry: only for a model with
 * `retry`, only after a failure worth retrying, only within its attempts, and only when the wait (the
 * backend's retry-after, else a backoff of 100 ms doubling) fits in `maxWait`; jittered by up to a fifth.
 */
function retryWait(model: ModelConfig, last: GatewayError | null, retries: number): number | null {
  const r = model.retry
  if (!r || retries >= r.attempts || !(last instanceof UpstreamFailure) || !last.retriable) return null
  const base = last.retryAfterMs ?? 100 * 2 ** retries
  if (base > r.maxWait) return null
  return Math.min(r.maxWait, base * (1 + Math.random() * 0.2))
}

/** `abort`, then `after` (once the stream is over, however it ended). */
function endsWith(abort: () => void, after: () => void): () => void {
  return () => {
    abort()
    after()
  }
}

/** Credentials that cannot be had (token endpoint down, no AWS credentials) fail this backend, so routing fails over. */
async function credentialHeaders(credentials: Credentials, backendId: string, target: UpstreamTarget, body: string, signal: AbortSignal): Promise<Record<string, string>> {
  try {
    return await credentials.headers({ method: 'POST', url: target.origin + target.path, headers: target.headers, body }, signal)
  } catch (err) {
    if (signal.aborted) throw new ClientAbortError()
    const message = err instanceof GatewayError ? err.message : `Backend "${backendId}" has no usable credentials.`
    throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, message, 'connect', backendId)
  }
}

/** The client's passthrough headers beside the backend's own; list-valued ones (anthropic-beta) are joined. */
function mergeClientHeaders(base: Record<string, string>, client: Readonly<Record<string, string>>): Record<string, string> {
  const out = { ...base }
  for (const [k, v] of Object.entries(client)) out[k] = out[k] ? [...new Set([...out[k]!.split(','), ...v.split(',')].map((x) => x.trim()).filter(Boolean))].join(',') : v
  return out
}

/** A backend error in its own schema's envelope, from the rebuilt (cut, redacted) fields: never relayed as it came. */
function nativeErrorBody(schema: ApiSchema, upstream: Record<string, unknown>, failure: PassThroughError): Record<string, unknown> {
  if (schema !== 'anthropic') return failure.body
  const type = (upstream.error as { type?: unknown } | undefined)?.type
  return { type: 'error', error: { type: typeof type === 'string' && /^[a-z_]{1,64}$/.test(type) ? type : 'invalid_request_error', message: failure.message } }
}

function hubErrorBody(e: TranslatedError): Record<string, unknown> {
  return { error: { message: e.message, type: e.type, param: e.param, code: e.code } }
}

/** Upstream HTTP errors as the client should see them. Client errors (400, 404, 422) pass through as they are. */
export function statusFailure(backendId: string, status: number, headers: Record<string, string>, body: Record<string, unknown>, overloaded = false): GatewayError {
  const retryAfterMs = retryAfterMsFrom(headers)
  if (overloaded && status < 500 && status !== 429) {
    return new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" is overloaded.`, 'status', backendId, 503, retryAfterMs)
  }
  if (status === 429) {
    const f = new UpstreamFailure(GW_ERR.RATE_LIMIT_EXCEEDED, `Backend "${backendId}" is rate limiting; retry later.`, 'status', backendId, status, retryAfterMs)
    if (retryAfterMs !== null) Object.assign(f.headers, { 'retry-after': String(Math.ceil(retryAfterMs / 1000)), 'retry-after-ms': String(Math.ceil(retryAfterMs)) })
    return f
  }
  if (status === 401 || status === 403) {
    return new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" refused the gateway's credentials.`, 'status', backendId, status)
  }
  if (status >= 500 || status === 408) {
    return new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" failed with status ${status}.`, 'status', backendId, status, retryAfterMs)
  }
  return new PassThroughError(status, body)
}

/** A client error the backend reported (bad parameter, context too long…): relayed with its body rebuilt (backend-error.ts). */
export class PassThroughError extends GatewayError {
  readonly body: Record<string, unknown>
  /** Same-schema passthrough: the error in the backend's own envelope, rebuilt like `body`, for the door of that schema. */
  native?: { readonly schema: ApiSchema; readonly body: Record<string, unknown> }
  constructor(status: number, upstreamBody: Record<string, unknown>) {
    const body = clientErrorBody(status, upstreamBody)
    super({ status, type: body.error.type, code: body.error.code ?? 'invalid_request_error' }, body.error.message, { param: body.error.param })
    this.body = body
  }
}
