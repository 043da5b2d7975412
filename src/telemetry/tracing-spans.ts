import { ROOT_CONTEXT, trace, type Context, type Span, type SpanOptions, type Tracer } from '@opentelemetry/api'
import { W3CTraceContextPropagator } from '@opentelemetry/core'
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, BatchSpanProcessor, ParentBasedSampler, TraceIdRatioBasedSampler } from '@opentelemetry/sdk-trace-base'

export interface SpanExportOptions {
  /** OTLP/HTTP traces URL (already resolved: see `tracesUrl`). */
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly timeoutMs: number
  readonly serviceName: string
  /** Share of new traces recorded, 0..1 (by trace id, so every span of a trace agrees). */
  readonly sample: number
  /** A client's sampled (or unsampled) `traceparent` decides for its request instead of the ratio. */
  readonly parentBased: boolean
  /** Longest a finished span waits in the batch before it is exported. */
  readonly intervalMs: number
  /** Most finished spans held for export; past it new ones are dropped (the request path never waits). */
  readonly maxQueue: number
}

type Headers = Readonly<Record<string, string | string[] | undefined>>

const getter = {
  keys: (h: Headers) => Object.keys(h),
  get: (h: Headers, key: string) => h[key],
}
const setter = {
  set: (h: Record<string, string>, key: string, value: string) => { h[key] = value },
}

/**
 * One gateway's tracer: an SDK TracerProvider of its own (never registered as the global one, so two
 * gateways in a process never share spans or settings), a batch processor exporting OTLP/HTTP JSON off
 * the request path, and W3C trace-context propagation done with explicit contexts (no global context
 * manager: every span names its parent).
 */
export class SpanRecorder {
  private readonly provider: BasicTracerProvider
  private readonly tracer: Tracer
  private readonly propagator = new W3CTraceContextPropagator()

  constructor(opts: SpanExportOptions) {
    const exporter = new OTLPTraceExporter({ url: opts.url, headers: { ...opts.headers }, timeoutMillis: opts.timeoutMs })
    const ratio = new TraceIdRatioBasedSampler(opts.sample)
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': opts.serviceName }),
      sampler: opts.parentBased ? new ParentBasedSampler({ root: ratio }) : ratio,
      spanProcessors: [new BatchSpanProcessor(exporter, {
        scheduledDelayMillis: opts.intervalMs,
        maxQueueSize: opts.maxQueue,
        maxExportBatchSize: Math.min(512, opts.maxQueue),
        exportTimeoutMillis: opts.timeoutMs,
      })],
    })
    this.tracer = this.provider.getTracer('sluice')
  }

  /** The client's trace context (`traceparent`, `tracestate`), or the root when it sent none or a malformed one. */
  extract(headers: Headers): Context {
    return this.propagator.extract(ROOT_CONTEXT, headers, getter)
  }

  start(name: string, options: SpanOptions, parent: Context): Span {
    return this.tracer.startSpan(name, options, parent)
  }

  /** The context whose parent is `span`: what child spans (and backends) are handed. */
  contextOf(span: Span): Context {
    return trace.setSpan(ROOT_CONTEXT, span)
  }

  /** Writes `traceparent` (and `tracestate`) for `span` into `into`. */
  inject(span: Span, into: Record<string, string>): void {
    this.propagator.inject(trace.setSpan(ROOT_CONTEXT, span), into, setter)
  }

  flush(): Promise<void> {
    return this.provider.forceFlush()
  }

  shutdown(): Promise<void> {
    return this.provider.shutdown()
  }
}

/**
 * Where traces go: `tracing.endpoint` when given; otherwise the OTLP endpoint with `/v1/traces` for a bare
 * host, its `/v1/metrics` replaced by `/v1/traces`, or `/v1/traces` appended to another path.
 */
export function tracesUrl(otlpEndpoint: string, explicit: string | undefined): string {
  if (explicit) return explicit
  const u = new URL(otlpEndpoint)
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/traces'
  else if (u.pathname.endsWith('/v1/metrics')) u.pathname = u.pathname.slice(0, -'/v1/metrics'.length) + '/v1/traces'
  else u.pathname = u.pathname.replace(/\/+$/, '') + '/v1/traces'
  return u.toString()
}
