import type { Attributes, Context, Span } from '@opentelemetry/api'
import type { BackendConfig, ModelConfig } from '../config/schema.ts'
import type { Operation, RequestContext } from '../core/context.ts'
import type { Outcome, UpstreamResult } from '../core/pipeline.ts'
import { GatewayError } from '../core/errors.ts'
import { usageFromOpenAI, type Usage } from '../core/usage.ts'
import { UpstreamFailure } from '../upstream/failure.ts'
import type { BackendDescription } from './provider-names.ts'
import type { SpanRecorder } from './tracing-spans.ts'
import { serverTiming, type AttemptMarks, type StageMarks } from './tracing-timings.ts'

// Values of the OpenTelemetry API enums, spelled out so this module (on every traced request's path) needs
// nothing of the API at run time: SpanKind.SERVER / CLIENT, SpanStatusCode.ERROR.
const SERVER = 1
const CLIENT = 2
const STATUS_ERROR = 2

/** Where the kernel finds a request's trace (present only when it is traced or asked for timings). */
export const TRACE_SLOT = Symbol('sluice.telemetry.trace')

export function traceOf(ctx: RequestContext): RequestTrace | undefined {
  return ctx.slots.get(TRACE_SLOT) as RequestTrace | undefined
}

/** `gen_ai.operation.name` for each front door. */
export const GEN_AI_OPERATION: Record<Operation, string> = {
  'chat.completions': 'chat',
  completions: 'text_completion',
  embeddings: 'embeddings',
  responses: 'chat',
  // No well-known GenAI operation names for these yet: the endpoint's own name (the conventions allow custom values).
  'images.generations': 'images.generations',
  'images.edits': 'images.edits',
  'audio.transcriptions': 'audio.transcriptions',
  'audio.translations': 'audio.translations',
  'audio.speech': 'audio.speech',
  moderations: 'moderations',
  rerank: 'rerank',
  realtime: 'chat',
}

/** What a backend's answer says about itself: the conventions' `gen_ai.response.*`. */
interface ResponseFacts {
  id: string | null
  model: string | null
  finishReasons: string[]
  usage: Usage | null
}

const now = (): number => performance.now()

export interface RequestTraceInit {
  readonly spans: SpanRecorder | null
  /** The SERVER span (recording or not); null when only timings were asked for. */
  readonly server: Span | null
  readonly timings: boolean
  readonly arrivedAt: number
  readonly admittedAt: number
  /** Wall clock minus performance.now(), taken once per request: every span of the trace uses the same one. */
  readonly epochOffset: number
  readonly describe: (b: BackendConfig) => BackendDescription | null
}

/**
 * One request's trace: its SERVER span, a CLIENT span per upstream try (failovers, hedges and retries
 * each get one, with the backend's id and status), the moments its stages ended (for `Server-Timing`),
 * and what the answer said about itself. No prompt or completion text is ever put on a span.
 */
export class RequestTrace {
  readonly attempts: AttemptTrace[] = []
  private readonly marks: { arrivedAt: number; admittedAt: number; handlerAt: number; inboundAt: number | null; headersAt: number | null; endedAt: number | null }
  /** What the stream said about itself (the kernel shows us each parsed event). */
  private streamFacts: ResponseFacts | null = null
  private settled = false
  private closed = false

  constructor(private readonly ctx: RequestContext, private readonly init: RequestTraceInit) {
    this.marks = { arrivedAt: init.arrivedAt, admittedAt: init.admittedAt, handlerAt: now(), inboundAt: null, headersAt: null, endedAt: null }
  }

  /** True when spans for this request are recorded and exported (sampled). */
  get recording(): boolean {
    return this.init.server?.isRecording() === true
  }

  /** Inbound policies are done; routing starts. */
  inbound(): void {
    this.marks.inboundAt = now()
  }

  /**
   * Wraps one upstream try: its CLIENT span starts now (child of the request's span) and ends when the
   * try failed, was cancelled, or its answer was relayed to the end (a stream's last event).
   */
  attempt<T extends { result: UpstreamResult }>(choice: { readonly model: ModelConfig; readonly backend: BackendConfig }, run: (t: AttemptTrace) => Promise<T>): Promise<T> {
    if (this.marks.inboundAt === null) this.marks.inboundAt = now() // no inbound stage ran
    const t = new AttemptTrace(this, this.ctx, choice.backend, choice.backend.models?.[choice.model.name] ?? choice.model.name, this.attempts.length + 1)
    this.attempts.push(t)
    const p = run(t)
    p.then(
      ({ result }) => {
        t.committed(result)
        if (result.kind === 'stream') {
          const abort = result.abort
          result.abort = () => { abort(); t.end() }
        } else t.end()
      },
      (err: unknown) => t.failed(err),
    ).catch(() => {}) // tracing never fails a request, nor leaves a rejection unhandled
    return p
  }

  /** One parsed event of the relayed stream: remembers the id, model, finish reasons and usage it carries. */
  chunk(json: Record<string, unknown>): void {
    if (!this.recording) return
    const f = (this.streamFacts ??= { id: null, model: null, finishReasons: [], usage: null })
    const r = json.response // the Responses API's envelope events
    if (r && typeof r === 'object') { mergeFacts(f, r as Record<string, unknown>); return }
    mergeFacts(f, json)
  }

  /** The response headers are being written: adds `Server-Timing` when the caller asked for (and may see) it. */
  responseHeaders(h: Record<string, string>): void {
    this.marks.headersAt = now()
    if (this.init.timings) h['server-timing'] = serverTiming(this.marks as StageMarks, this.attempts.map((a) => a.marks()), this.marks.headersAt)
  }

  /** Extra headers of a streamed response: the `Server-Timing` trailer is announced when timings were asked for. */
  streamHeaders(): Record<string, string> | undefined {
    return this.init.timings ? { trailer: 'server-timing' } : undefined
  }

  /** The stream's `Server-Timing` trailer (relay and total included), when timings were asked for. */
  trailer(): string | null {
    return this.init.timings ? serverTiming({ ...this.marks, endedAt: now() } as StageMarks, this.attempts.map((a) => a.marks()), now()) : null
  }

  /** The request is answered (from `settle`): the outcome goes on the SERVER span, the tries' spans end. */
  settle(outcome: Outcome): void {
    if (this.settled) return
    this.settled = true
    // Runs after the response (from settle's deferred step): nothing here may throw into the event loop.
    try { this.record(outcome) } catch { /* the span goes out with what it has */ }
    this.endIfDone()
  }

  private record(outcome: Outcome): void {
    const span = this.init.server
    const winner = this.winner()
    if (span && span.isRecording()) {
      const c = this.ctx
      const a: Attributes = {
        'http.response.status_code': outcome.status,
        'sluice.attempts': c.attempts,
      }
      if (c.model) a['gen_ai.request.model'] = c.model
      if (c.principal) {
        a['sluice.consumer.id'] = c.principal.consumerId
        if (c.principal.productId) a['sluice.product.id'] = c.principal.productId
      }
      if (c.backendId) a['sluice.backend.id'] = c.backendId
      else if (outcome.servedBy) a['sluice.served_by'] = outcome.servedBy
      const facts = winner?.facts ?? this.streamFacts
      putFacts(a, facts, outcome.usage ?? c.usage)
      if (outcome.aborted) a['sluice.client_aborted'] = true
      if (outcome.error) {
        a['sluice.error.code'] = outcome.error.code
        // A SERVER span is in error for the gateway's own failures (5xx), not for a client's (4xx).
        if (outcome.status >= 500) {
          a['error.type'] = outcome.error.code
          span.setStatus({ code: STATUS_ERROR, message: outcome.error.code })
        }
      }
      span.setAttributes(a)
    }
    for (const t of this.attempts) {
      if (t === winner) t.won(this.streamFacts, outcome.usage ?? this.ctx.usage)
      else t.lost()
    }
  }

  /** The response's last byte is out (or the connection closed). */
  close(): void {
    if (this.closed) return
    this.closed = true
    this.marks.endedAt = now()
    this.endIfDone()
  }

  /** Backends get the try's span as their parent. */
  injectInto(span: Span, headers: Record<string, string>): void {
    this.init.spans?.inject(span, headers)
  }

  startAttemptSpan(name: string, attributes: Attributes, startTime: number): Span | null {
    const server = this.init.server
    if (!server || !this.init.spans) return null
    return this.init.spans.start(name, { kind: CLIENT, attributes: server.isRecording() ? attributes : undefined, startTime: this.epoch(startTime) }, this.parentContext())
  }

  /** A performance.now() moment as epoch milliseconds, for span times. */
  epoch(t: number): number {
    return t + this.init.epochOffset
  }

  describe(b: BackendConfig): BackendDescription | null {
    return this.init.describe(b)
  }

  get isSettled(): boolean {
    return this.settled
  }

  private parentCtx: Context | null = null
  private parentContext(): Context {
    return (this.parentCtx ??= this.init.spans!.contextOf(this.init.server!))
  }

  /** The try whose answer the client got: the last one that answered, at the backend that served. */
  private winner(): AttemptTrace | null {
    for (let i = this.attempts.length - 1; i >= 0; i--) {
      const t = this.attempts[i]!
      if (t.outcome === 'answered' && t.backendId === this.ctx.backendId) return t
    }
    return null
  }

  private endIfDone(): void {
    if (!this.settled || !this.closed) return
    this.init.server?.end(this.epoch(this.marks.endedAt ?? now()))
  }
}

/** One upstream try of a traced request. */
export class AttemptTrace {
  readonly backendId: string
  outcome: 'pending' | 'answered' | 'failed' | 'cancelled' = 'pending'
  facts: ResponseFacts | null = null
  private readonly span: Span | null
  private readonly startedAt = now()
  private headersAt: number | null = null
  private committedAt: number | null = null
  private endedAt: number | null = null
  private status: number | null = null
  private errorType: string | null = null
  private finished = false
  /** Settled by the request (winner or not); a try still running then ends on its own later. */
  private decided = false

  constructor(private readonly trace: RequestTrace, ctx: RequestContext, backend: BackendConfig, upstreamModel: string, readonly n: number) {
    this.backendId = backend.id
    const op = GEN_AI_OPERATION[ctx.operation]
    const d = trace.describe(backend)
    const a: Attributes = {
      'gen_ai.operation.name': op,
      'gen_ai.request.model': upstreamModel,
      'sluice.backend.id': backend.id,
      'sluice.attempt': n,
    }
    if (d) {
      a['gen_ai.provider.name'] = d.provider
      a['gen_ai.system'] = d.provider // the name before semantic conventions 1.37, still read by many backends
      if (d.address) a['server.address'] = d.address
    }
    requestParams(a, ctx.body)
    this.span = trace.startAttemptSpan(`${op} ${upstreamModel}`, a, this.startedAt)
  }

  /** The headers sent to the backend, with this try's `traceparent` (and `tracestate`). */
  inject(headers: Record<string, string>): Record<string, string> {
    if (!this.span) return headers
    const out = { ...headers }
    this.trace.injectInto(this.span, out)
    return out
  }

  /** The backend's response headers arrived. */
  responded(status: number): void {
    this.headersAt = now()
    this.status = status
  }

  committed(result: UpstreamResult): void {
    this.committedAt = now()
    this.outcome = 'answered'
    this.status = result.status
    if (result.kind === 'json' && this.span?.isRecording()) {
      const f: ResponseFacts = { id: null, model: null, finishReasons: [], usage: null }
      mergeFacts(f, result.body)
      this.facts = f
    }
  }

  failed(err: unknown): void {
    if (err instanceof Error && err.name === 'AbortError') this.outcome = 'cancelled'
    else {
      this.outcome = 'failed'
      if (err instanceof UpstreamFailure) {
        this.status = err.upstreamStatus ?? this.status
        this.errorType = err.upstreamStatus !== null ? String(err.upstreamStatus) : err.kind
      } else if (err instanceof GatewayError) {
        if (err.status >= 400 && this.status === null) this.status = err.status
        this.errorType = this.status !== null ? String(this.status) : err.code
      } else this.errorType = err instanceof Error ? err.name : 'error'
    }
    this.end()
  }

  /** The try is over (failed, cancelled, or its answer relayed to the end). */
  end(): void {
    if (this.endedAt === null) this.endedAt = now()
    if (this.decided || this.outcome === 'failed' || this.outcome === 'cancelled') this.finish()
  }

  /** The client got this try's answer. */
  won(streamFacts: ResponseFacts | null, usage: Usage | null): void {
    this.decided = true
    if (this.span?.isRecording()) {
      const a: Attributes = {}
      putFacts(a, this.facts ?? streamFacts, usage)
      this.span.setAttributes(a)
    }
    if (this.endedAt !== null) this.finish()
  }

  /** The request ended without this try's answer (a hedge or race that lost, or a failure). */
  lost(): void {
    this.decided = true
    if (this.outcome === 'answered') this.outcome = 'cancelled'
    if (this.endedAt !== null || this.outcome !== 'pending') this.finish()
  }

  marks(): AttemptMarks {
    const result = this.errorType ?? (this.outcome === 'cancelled' ? 'cancelled' : this.status !== null ? String(this.status) : 'pending')
    return { backendId: this.backendId, startedAt: this.startedAt, headersAt: this.headersAt, committedAt: this.committedAt, result }
  }

  private finish(): void {
    if (this.finished || this.span === null) return
    this.finished = true
    const span = this.span
    if (span.isRecording()) {
      const a: Attributes = { 'sluice.attempt.outcome': this.outcome }
      if (this.status !== null) a['http.response.status_code'] = this.status
      if (this.headersAt !== null) a['sluice.upstream.headers_ms'] = round(this.headersAt - this.startedAt)
      if (this.outcome === 'failed') {
        a['error.type'] = this.errorType ?? 'error'
        span.setStatus({ code: STATUS_ERROR, message: this.errorType ?? 'error' })
      }
      span.setAttributes(a)
    }
    span.end(this.trace.epoch(this.endedAt ?? now()))
  }
}

export { SERVER as SPAN_KIND_SERVER }

const round = (x: number): number => Math.round(x * 100) / 100

/** The request parameters the conventions name (`gen_ai.request.*`), from the hub body; never its content. */
function requestParams(a: Attributes, body: Record<string, unknown>): void {
  const max = body.max_tokens ?? body.max_completion_tokens ?? body.max_output_tokens
  if (typeof max === 'number') a['gen_ai.request.max_tokens'] = max
  for (const [field, attr] of REQUEST_NUMBERS) {
    const v = body[field]
    if (typeof v === 'number') a[attr] = v
  }
  if (typeof body.seed === 'number') a['gen_ai.request.seed'] = body.seed
}

const REQUEST_NUMBERS: ReadonlyArray<readonly [string, string]> = [
  ['temperature', 'gen_ai.request.temperature'],
  ['top_p', 'gen_ai.request.top_p'],
  ['frequency_penalty', 'gen_ai.request.frequency_penalty'],
  ['presence_penalty', 'gen_ai.request.presence_penalty'],
]

/** Reads what an answer (a chat completion, a chunk, a Responses object) says about itself; bounded strings only. */
function mergeFacts(f: ResponseFacts, body: Record<string, unknown>): void {
  if (f.id === null && typeof body.id === 'string') f.id = body.id.slice(0, 128)
  if (f.model === null && typeof body.model === 'string') f.model = body.model.slice(0, 128)
  if (body.usage && typeof body.usage === 'object') f.usage = usageFromOpenAI(body.usage) ?? f.usage
  const choices = body.choices
  if (Array.isArray(choices)) {
    for (const c of choices) {
      const reason = (c as { finish_reason?: unknown } | null)?.finish_reason
      if (typeof reason === 'string' && f.finishReasons.length < 16) f.finishReasons.push(reason.slice(0, 32))
    }
  } else if (typeof body.status === 'string' && body.object === 'response') {
    f.finishReasons = [body.status.slice(0, 32)] // Responses API: the latest status (in_progress, then completed | incomplete | failed)
  }
}

function putFacts(a: Attributes, f: ResponseFacts | null, usage: Usage | null): void {
  if (f?.id) a['gen_ai.response.id'] = f.id
  if (f?.model) a['gen_ai.response.model'] = f.model
  if (f && f.finishReasons.length) a['gen_ai.response.finish_reasons'] = f.finishReasons
  const u = usage ?? f?.usage ?? null
  if (u) {
    a['gen_ai.usage.input_tokens'] = u.promptTokens
    a['gen_ai.usage.output_tokens'] = u.completionTokens
    if (u.cachedTokens) a['gen_ai.usage.cache_read.input_tokens'] = u.cachedTokens
  }
}
