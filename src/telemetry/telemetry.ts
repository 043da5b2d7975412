import { UNKNOWN_MODEL } from '../core/bounded.ts'
import { addUsage } from '../core/usage.ts'
import type { RequestContext } from '../core/context.ts'
import type { Outcome } from '../core/pipeline.ts'
import { PromMetrics, type PolicyTelemetry, type RequestFacts, type TokenCounter } from './metrics.ts'
import type { OtlpMetrics, OtlpOptions } from './otlp.ts'
import type { BackendDescription } from './provider-names.ts'
import { RecentActivity, type RecentOptions } from './recent.ts'
import type { MetricsSink } from './sink.ts'
import type { RequestTracing } from './tracing.ts'

export interface TelemetryOptions {
  readonly now: () => number
  /** Most distinct label combinations per metric (Prometheus series, OTLP attribute sets). */
  readonly maxSeries?: number
  /** Present when an OTLP endpoint is configured. */
  readonly otlp?: Omit<OtlpOptions, 'maxSeries'> | null
  /** The OTLP exporter module, imported by the caller only when `otlp` is set (the SDK is heavy). */
  readonly otlpModule?: typeof import('./otlp.ts') | null
  /** Provider and address of a backend id, for the OTLP attributes; null when the id is not a backend. */
  readonly describeBackend?: (backendId: string) => BackendDescription | null
  readonly recent?: RecentOptions
  /** Request traces and debug timings (tracing.ts); none when absent. */
  readonly tracing?: RequestTracing | null
}

/** What the kernel calls once per finished request (from `settle`, off the client's path). */
export interface RequestRecorder {
  recordRequest(ctx: RequestContext, outcome: Outcome): void
}

const SERVED_BY_POLICY: BackendDescription = { provider: 'sluice', address: null }

/**
 * One gateway's telemetry: the Prometheus registry, the recent-activity buckets behind the dashboard and,
 * when configured, the OTLP exporter. It is the MetricsSink policies and stores report to and the
 * recorder the kernel hands each finished request to. Created per gateway: no module state.
 */
export class Telemetry implements MetricsSink, PolicyTelemetry, RequestRecorder {
  readonly prom: PromMetrics
  readonly recent: RecentActivity
  readonly otlp: OtlpMetrics | null
  readonly startedAt: number
  readonly tracing: RequestTracing | null
  private readonly describeBackend: (id: string) => BackendDescription | null

  constructor(private readonly opts: TelemetryOptions) {
    const maxSeries = opts.maxSeries ?? 2000
    this.prom = new PromMetrics({ maxSeries })
    this.recent = new RecentActivity(opts.now, opts.recent)
    this.otlp = opts.otlp && opts.otlpModule ? new opts.otlpModule.OtlpMetrics({ ...opts.otlp, maxSeries }) : null
    this.describeBackend = opts.describeBackend ?? (() => null)
    this.startedAt = opts.now()
    this.tracing = opts.tracing ?? null
  }

  recordRequest(ctx: RequestContext, outcome: Outcome): void {
    const p = ctx.principal
    // Whoever holds no key, or names a model nobody configured, must not be able to create series (and push
    // real consumers into __overflow__): such requests are one fixed counter each, and the access log.
    if (p === null) return this.prom.unattributedRequest('unauthenticated')
    if (ctx.model === UNKNOWN_MODEL || outcome.error?.code === 'model_not_found') return this.prom.unattributedRequest('unknown_model')
    const u = addUsage(outcome.usage ?? ctx.usage, outcome.extraUsage ?? null)
    const facts: RequestFacts = {
      consumer: p.consumerId,
      product: p.productId ?? '',
      model: ctx.model,
      backend: ctx.backendId ?? outcome.servedBy ?? '',
      status: outcome.status,
      promptTokens: u?.promptTokens ?? 0,
      completionTokens: u?.completionTokens ?? 0,
      cachedTokens: u?.cachedTokens ?? 0,
      reasoningTokens: u?.reasoningTokens ?? 0,
      durationSeconds: Math.max(0, outcome.endedAt - ctx.startedAt) / 1000,
      ttftSeconds: ctx.firstTokenAt === null ? null : Math.max(0, ctx.firstTokenAt - ctx.startedAt) / 1000,
    }
    this.prom.recordRequest(facts)
    this.recent.record(facts, outcome.endedAt)
    if (this.otlp) {
      const backend = ctx.backendId !== null ? this.describeBackend(ctx.backendId) : outcome.servedBy !== null ? SERVED_BY_POLICY : null
      if (backend) this.otlp.record(facts, ctx.operation, backend)
    }
  }

  cacheLookup(policy: string, result: 'hit' | 'miss' | 'bypass'): void {
    this.prom.cacheLookup(policy, result)
    this.recent.cacheLookup(result)
  }

  breakerState(backendId: string, state: 0 | 1 | 2): void {
    this.prom.breakerState(backendId, state)
  }

  storeFailure(store: string, action: 'fallback' | 'refused'): void {
    this.prom.storeFailure(store, action)
  }

  limitRejected(policy: string, reason: 'rate' | 'quota' | 'budget'): void {
    this.prom.limitRejected(policy, reason)
  }

  ledgerDropped(n: number): void {
    this.prom.ledgerDropped(n)
  }

  routeDecision(model: string, served: string, reason: string): void {
    this.prom.routeDecision(model, served, reason)
  }

  processError(kind: 'uncaught_exception' | 'unhandled_rejection'): void {
    this.prom.processError(kind)
  }

  contentSafety(engine: string, category: string, action: 'blocked' | 'redacted' | 'failed_open' | 'failed_closed'): void {
    this.prom.contentSafety(engine, category, action)
  }

  tokenCounter(name: string, labelNames: readonly string[], help?: string): TokenCounter {
    return this.prom.tokenCounter(name, labelNames, help)
  }

  /** The JSON the dashboard polls: recent buckets, totals since start, circuit states, cache results. */
  summary(windowMs: number): Record<string, unknown> {
    const { bucketSeconds, buckets } = this.recent.snapshot(windowMs)
    return {
      now: new Date(this.opts.now()).toISOString(),
      startedAt: new Date(this.startedAt).toISOString(),
      bucketSeconds,
      buckets,
      totals: {
        byConsumer: this.prom.requestTotals('consumer'),
        byModel: this.prom.requestTotals('model'),
        byBackend: this.prom.requestTotals('backend'),
      },
      cache: this.prom.cacheTotals(),
      circuit: this.prom.circuitStates(),
      otlp: this.otlp !== null,
    }
  }

  async close(): Promise<void> {
    await Promise.all([this.otlp?.shutdown().catch(() => undefined), this.tracing?.shutdown().catch(() => undefined)])
  }
}

/** Sends every event to both sinks (a caller-supplied sink keeps working next to the real metrics). */
export function teeSink(a: MetricsSink, b: MetricsSink): MetricsSink {
  return {
    cacheLookup(policy, result) { a.cacheLookup(policy, result); b.cacheLookup(policy, result) },
    breakerState(id, state) { a.breakerState(id, state); b.breakerState(id, state) },
    storeFailure(store, action) { a.storeFailure(store, action); b.storeFailure(store, action) },
    limitRejected(policy, reason) { a.limitRejected(policy, reason); b.limitRejected(policy, reason) },
    ledgerDropped(n) { a.ledgerDropped?.(n); b.ledgerDropped?.(n) },
    routeDecision(model, served, reason) { a.routeDecision?.(model, served, reason); b.routeDecision?.(model, served, reason) },
    contentSafety(engine, category, action) { a.contentSafety?.(engine, category, action); b.contentSafety?.(engine, category, action) },
  }
}
