import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { MetricsSink } from './sink.ts'
import { SeriesTable } from './series.ts'

/** One finished request, reduced to what metrics need (built once per request by telemetry.ts). */
export interface RequestFacts {
  readonly consumer: string
  readonly product: string
  readonly model: string
  readonly backend: string
  readonly status: number
  readonly promptTokens: number
  readonly completionTokens: number
  readonly cachedTokens: number
  readonly reasoningTokens: number
  /** Seconds from the request's arrival to the end of its response. */
  readonly durationSeconds: number
  /** Seconds to the first generated token (streams only), else null. */
  readonly ttftSeconds: number | null
}

export interface RequestTotals {
  key: string
  requests: number
  errors: number
  promptTokens: number
  completionTokens: number
  totalTokens: number
  cachedTokens: number
  reasoningTokens: number
}

export type TokenType = 'prompt' | 'completion' | 'total' | 'cached' | 'reasoning'

/** A token counter with configured dimensions (what `emit-token-metric` records into). */
export interface TokenCounter {
  readonly name: string
  readonly labelNames: readonly string[]
  /** `values` follow `labelNames` (without `type`); one lookup records every token type of a request. */
  add(values: readonly string[], tokens: Readonly<Record<TokenType, number>>): void
}

/** What policies may ask of telemetry beyond the event sink. */
export interface PolicyTelemetry {
  /** The counter called `name` with these label names; the same name must always come with the same labels. */
  tokenCounter(name: string, labelNames: readonly string[], help?: string): TokenCounter
}

export interface PromMetricsOptions {
  /** Most distinct label combinations per metric before new ones go to the `__overflow__` series. */
  readonly maxSeries?: number
}

const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300]
const TTFT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const TOKEN_TYPES = ['prompt', 'completion', 'cached', 'reasoning'] as const
const POLICY_TOKEN_TYPES: readonly TokenType[] = ['prompt', 'completion', 'total', 'cached', 'reasoning']

/**
 * Everything a request leaves behind, under one (consumer, product, model, backend) combination: token
 * sums, counts by status and the histogram label object. Counting into plain fields keeps the request path
 * to one tree lookup and a few additions; the prom-client metrics read these fields when scraped.
 */
interface RequestSeries {
  readonly labels: Record<string, string>
  readonly histLabels: Record<string, string>
  readonly tokens: number[]
  readonly byStatus: Map<number, number>
}

interface CountSeries {
  readonly labels: Record<string, string>
  value: number
}

const countSeries = (labels: Record<string, string>): CountSeries => ({ labels, value: 0 })

/**
 * The Prometheus side of telemetry: its own prom-client Registry (never the global default one, so two
 * gateways in one process never share series), the contract's metric names, and bounded cardinality.
 */
export class PromMetrics implements MetricsSink, PolicyTelemetry {
  readonly registry = new Registry()
  private readonly maxSeries: number
  private readonly requests: SeriesTable<RequestSeries>
  private readonly cache: SeriesTable<CountSeries>
  private readonly breakers: SeriesTable<CountSeries>
  private readonly storeFailures: SeriesTable<CountSeries>
  private readonly limitRejections: SeriesTable<CountSeries>
  /** Model names from the config only (virtual model and the one it chose): bounded by the config. */
  private readonly routes: SeriesTable<CountSeries>
  /** Fixed reasons only (code-chosen, never client text), so these few series cannot grow. */
  private readonly refusals: SeriesTable<CountSeries>
  private readonly processErrors: SeriesTable<CountSeries>
  private readonly contentSafetyEvents: SeriesTable<CountSeries>
  private readonly custom = new Map<string, TokenCounterImpl>()
  private readonly duration: Histogram<string>
  private readonly ttft: Histogram<string>
  private readonly statusLabel: string[] = []
  private ledgerShed = 0

  constructor(opts: PromMetricsOptions = {}) {
    this.maxSeries = opts.maxSeries ?? 2000
    const cap = this.maxSeries
    this.requests = new SeriesTable(['consumer', 'product', 'model', 'backend'], cap, (labels) => ({
      labels,
      histLabels: { consumer: labels.consumer!, model: labels.model!, backend: labels.backend! },
      tokens: [0, 0, 0, 0],
      byStatus: new Map(),
    }))
    this.cache = new SeriesTable(['policy', 'result'], cap, countSeries, new Set(['result']))
    this.breakers = new SeriesTable(['backend'], cap, countSeries)
    this.storeFailures = new SeriesTable(['store', 'action'], cap, countSeries, new Set(['action']))
    this.limitRejections = new SeriesTable(['policy', 'reason'], cap, countSeries, new Set(['reason']))
    this.routes = new SeriesTable(['model', 'served', 'reason'], cap, countSeries, new Set(['reason']))
    this.refusals = new SeriesTable(['reason'], cap, countSeries)
    this.processErrors = new SeriesTable(['kind'], cap, countSeries)
    this.contentSafetyEvents = new SeriesTable(['engine', 'category', 'action'], cap, countSeries, new Set(['action']))

    const reg = [this.registry]
    const requests = this.requests
    const statusLabel = (s: number) => (this.statusLabel[s] ??= String(s))
    new Counter({
      name: 'sluice_tokens_total',
      help: 'Tokens per request outcome, by type (prompt, completion, cached, reasoning).',
      labelNames: ['type', 'consumer', 'product', 'model', 'backend'],
      registers: reg,
      collect() {
        this.reset()
        for (const s of requests.series()) {
          for (let i = 0; i < TOKEN_TYPES.length; i++) this.inc({ type: TOKEN_TYPES[i]!, ...s.labels }, s.tokens[i]!)
        }
      },
    })
    new Counter({
      name: 'sluice_requests_total',
      help: 'Requests that reached the gateway kernel, by final HTTP status.',
      labelNames: ['status', 'consumer', 'model', 'backend'],
      registers: reg,
      collect() {
        this.reset()
        for (const s of requests.series()) {
          for (const [status, n] of s.byStatus) this.inc({ status: statusLabel(status), ...s.histLabels }, n)
        }
      },
    })
    this.duration = new Histogram({
      name: 'sluice_request_duration_seconds',
      help: 'Time from the request arriving to the end of its response (the last byte of a stream).',
      labelNames: ['consumer', 'model', 'backend'],
      buckets: DURATION_BUCKETS,
      registers: reg,
    })
    this.ttft = new Histogram({
      name: 'sluice_time_to_first_token_seconds',
      help: 'Time from the request arriving to the first generated token of a streamed response.',
      labelNames: ['consumer', 'model', 'backend'],
      buckets: TTFT_BUCKETS,
      registers: reg,
    })
    const counterOf = (name: string, help: string, table: SeriesTable<CountSeries>) =>
      new Counter({
        name, help, labelNames: table.labelNames, registers: reg,
        collect() {
          this.reset()
          for (const s of table.series()) this.inc(s.labels, s.value)
        },
      })
    counterOf('sluice_cache_requests_total', 'Cache lookups by policy and result (hit, miss; bypass when the request was not cacheable).', this.cache)
    counterOf('sluice_store_failures_total', 'A distributed store failed and a local fallback (or a refusal) was used.', this.storeFailures)
    counterOf('sluice_limit_rejections_total', 'Requests refused by a limit policy, by reason (rate or quota).', this.limitRejections)
    counterOf('sluice_route_decisions_total', 'Requests to a router, race or split model, by the model that served them and why (cheapest, fastest, race, split).', this.routes)
    counterOf('sluice_unattributed_requests_total', 'Requests with no principal (unauthenticated) or for a model nobody configured: counted here, never as a per-consumer series.', this.refusals)
    counterOf('sluice_process_errors_total', 'Errors thrown outside any request (uncaught exceptions, unhandled rejections); the process kept serving.', this.processErrors)
    counterOf('sluice_content_safety_total', 'Content-safety decisions by engine and category: blocked, redacted, or the engine unavailable (failed_open / failed_closed).', this.contentSafetyEvents)
    const self = this
    new Counter({
      name: 'sluice_ledger_dropped_total',
      help: 'Usage records the ledger shed because its bounded queue was full (store down or too slow).',
      registers: reg,
      collect() {
        this.reset()
        this.inc(self.ledgerShed)
      },
    })
    const breakers = this.breakers
    new Gauge({
      name: 'sluice_backend_circuit_state',
      help: 'Circuit breaker state per backend: 0 closed, 1 half-open, 2 open.',
      labelNames: ['backend'],
      registers: reg,
      aggregator: 'max', // across workers (one breaker store): the same state, never a sum
      collect() {
        this.reset()
        for (const s of breakers.series()) this.set(s.labels, s.value)
      },
    })
    const tables: Array<[string, { overflowCount: number }]> = [
      ['sluice_tokens_total', requests], ['sluice_requests_total', requests],
      ['sluice_request_duration_seconds', requests], ['sluice_time_to_first_token_seconds', requests],
      ['sluice_cache_requests_total', this.cache], ['sluice_store_failures_total', this.storeFailures],
      ['sluice_limit_rejections_total', this.limitRejections], ['sluice_content_safety_total', this.contentSafetyEvents], ['sluice_backend_circuit_state', breakers],
    ]
    const custom = this.custom
    new Counter({
      name: 'sluice_metric_series_overflow_total',
      help: 'Recordings that went to a metric\'s __overflow__ series because it reached its cap of distinct label combinations.',
      labelNames: ['metric'],
      registers: reg,
      collect() {
        this.reset()
        for (const [metric, t] of tables) if (t.overflowCount) this.inc({ metric }, t.overflowCount)
        for (const c of custom.values()) if (c.table.overflowCount) this.inc({ metric: c.name }, c.table.overflowCount)
      },
    })
  }

  /** Records one finished request: one series lookup, then plain additions and two histogram observations. */
  recordRequest(f: RequestFacts): void {
    const s = this.requests.get([f.consumer, f.product, f.model, f.backend])
    const t = s.tokens
    t[0]! += f.promptTokens
    t[1]! += f.completionTokens
    t[2]! += f.cachedTokens
    t[3]! += f.reasoningTokens
    s.byStatus.set(f.status, (s.byStatus.get(f.status) ?? 0) + 1)
    this.duration.observe(s.histLabels, f.durationSeconds)
    if (f.ttftSeconds !== null) this.ttft.observe(s.histLabels, f.ttftSeconds)
  }

  cacheLookup(policy: string, result: 'hit' | 'miss' | 'bypass'): void {
    this.cache.get([policy, result]).value++
  }

  breakerState(backendId: string, state: 0 | 1 | 2): void {
    this.breakers.get([backendId]).value = state
  }

  /** Publishes a closed circuit for every configured backend not yet reported, and drops removed ones. */
  syncBackends(ids: readonly string[]): void {
    const known = new Map<string, number>()
    for (const s of this.breakers.series()) known.set(s.labels.backend!, s.value)
    this.breakers.clear()
    for (const id of ids) this.breakers.get([id]).value = known.get(id) ?? 0
  }

  /** The last reported circuit state per backend. */
  circuitStates(): Record<string, number> {
    const out: Record<string, number> = {}
    for (const s of this.breakers.series()) out[s.labels.backend!] = s.value
    return out
  }

  /** Totals since start grouped by one label, for the dashboard (the scrape format is for Prometheus). */
  requestTotals(by: 'consumer' | 'model' | 'backend'): RequestTotals[] {
    const out = new Map<string, RequestTotals>()
    for (const s of this.requests.series()) {
      const key = s.labels[by]!
      let r = out.get(key)
      if (!r) out.set(key, (r = { key, requests: 0, errors: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0, cachedTokens: 0, reasoningTokens: 0 }))
      for (const [status, n] of s.byStatus) {
        r.requests += n
        if (status >= 400) r.errors += n
      }
      r.promptTokens += s.tokens[0]!
      r.completionTokens += s.tokens[1]!
      r.totalTokens += s.tokens[0]! + s.tokens[1]!
      r.cachedTokens += s.tokens[2]!
      r.reasoningTokens += s.tokens[3]!
    }
    return [...out.values()].sort((a, b) => b.totalTokens - a.totalTokens || b.requests - a.requests)
  }

  /** Cache lookups since start per policy. */
  cacheTotals(): Array<{ policy: string; hit: number; miss: number; bypass: number }> {
    const out = new Map<string, { policy: string; hit: number; miss: number; bypass: number }>()
    for (const s of this.cache.series()) {
      const policy = s.labels.policy!
      let r = out.get(policy)
      if (!r) out.set(policy, (r = { policy, hit: 0, miss: 0, bypass: 0 }))
      const result = s.labels.result as 'hit' | 'miss' | 'bypass'
      r[result] += s.value
    }
    return [...out.values()]
  }

  storeFailure(store: string, action: 'fallback' | 'refused'): void {
    this.storeFailures.get([store, action]).value++
  }

  limitRejected(policy: string, reason: 'rate' | 'quota' | 'budget'): void {
    this.limitRejections.get([policy, reason]).value++
  }

  ledgerDropped(n: number): void {
    if (n > 0) this.ledgerShed += n
  }

  routeDecision(model: string, served: string, reason: string): void {
    this.routes.get([model, served, reason]).value++
  }

  unattributedRequest(reason: 'unauthenticated' | 'unknown_model'): void {
    this.refusals.get([reason]).value++
  }

  processError(kind: 'uncaught_exception' | 'unhandled_rejection'): void {
    this.processErrors.get([kind]).value++
  }

  contentSafety(engine: string, category: string, action: 'blocked' | 'redacted' | 'failed_open' | 'failed_closed'): void {
    this.contentSafetyEvents.get([engine, category, action]).value++
  }

  tokenCounter(name: string, labelNames: readonly string[], help = 'Tokens recorded by the emit-token-metric policy, by type and configured dimensions.'): TokenCounter {
    const existing = this.custom.get(name)
    if (existing) {
      if (existing.labelNames.join(',') !== labelNames.join(',')) {
        throw new Error(`metric "${name}" is already recorded with the dimensions [${existing.labelNames.join(', ')}]; give emit-token-metric policies with other dimensions their own metric name`)
      }
      return existing
    }
    if (this.registry.getSingleMetric(name)) throw new Error(`metric "${name}" is a built-in metric name; choose another`)
    const c = new TokenCounterImpl(name, labelNames, help, this.maxSeries, this.registry)
    this.custom.set(name, c)
    return c
  }

  get contentType(): string {
    return this.registry.contentType
  }

  /** The Prometheus text exposition of every series. */
  render(): Promise<string> {
    return this.registry.metrics()
  }
}

class TokenCounterImpl implements TokenCounter {
  readonly table: SeriesTable<{ labels: Record<string, string>; sums: number[] }>

  constructor(readonly name: string, readonly labelNames: readonly string[], help: string, cap: number, registry: Registry) {
    const table = (this.table = new SeriesTable(labelNames, cap, (labels) => ({ labels, sums: [0, 0, 0, 0, 0] })))
    new Counter({
      name,
      help,
      labelNames: ['type', ...labelNames],
      registers: [registry],
      collect() {
        this.reset()
        for (const s of table.series()) {
          for (let i = 0; i < POLICY_TOKEN_TYPES.length; i++) {
            // cached and reasoning appear once a backend reports them; the others always.
            if (i < 3 || s.sums[i]! > 0) this.inc({ type: POLICY_TOKEN_TYPES[i]!, ...s.labels }, s.sums[i]!)
          }
        }
      },
    })
  }

  add(values: readonly string[], tokens: Readonly<Record<TokenType, number>>): void {
    const sums = this.table.get(values).sums
    sums[0]! += tokens.prompt
    sums[1]! += tokens.completion
    sums[2]! += tokens.total
    sums[3]! += tokens.cached
    sums[4]! += tokens.reasoning
  }
}
