import { PROVIDER_NAME, type BackendDescription } from './provider-names.ts'
import type { Attributes, Histogram } from '@opentelemetry/api'
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics'
import type { Operation } from '../core/context.ts'
import type { RequestFacts } from './metrics.ts'
import { SeriesTable } from './series.ts'

export interface OtlpOptions {
  /** OTLP/HTTP metrics endpoint; a bare `http://host:4318` gets `/v1/metrics` appended. */
  readonly endpoint: string
  readonly intervalMs: number
  readonly timeoutMs: number
  readonly headers: Readonly<Record<string, string>>
  readonly serviceName: string
  /** Most distinct attribute sets kept per instrument (as the Prometheus cap). */
  readonly maxSeries: number
}

/** Which provider and address served a request, in the conventions' terms. */

// Bucket boundaries the GenAI semantic conventions recommend for each instrument.
const TOKEN_BOUNDARIES = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864]
const DURATION_BOUNDARIES = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92]
const TTFT_BOUNDARIES = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0]

/** `gen_ai.operation.name` for each front door. */
const OPERATION_NAME: Record<Operation, string> = {
  'chat.completions': 'chat',
  completions: 'text_completion',
  embeddings: 'embeddings',
  responses: 'chat',
  'images.generations': 'image_generation',
  'images.edits': 'image_generation',
  'audio.transcriptions': 'transcription',
  'audio.translations': 'transcription',
  'audio.speech': 'speech',
  moderations: 'moderation',
  rerank: 'rerank',
  realtime: 'chat',
}


interface AttributeSets {
  readonly base: Attributes
  readonly input: Attributes
  readonly output: Attributes
}

/**
 * The OTLP side of telemetry: GenAI semantic-convention instruments on an SDK MeterProvider of its own
 * (never the global one), pushed over OTLP/HTTP (JSON) on a timer. Attribute objects are built once per
 * distinct combination and reused, so recording allocates nothing in steady state.
 */
export class OtlpMetrics {
  private readonly provider: MeterProvider
  private readonly tokenUsage: Histogram
  private readonly requestDuration: Histogram
  private readonly timeToFirstToken: Histogram
  private readonly attrs: SeriesTable<AttributeSets>

  constructor(opts: OtlpOptions) {
    const exporter = new OTLPMetricExporter({ url: metricsUrl(opts.endpoint), headers: { ...opts.headers }, timeoutMillis: opts.timeoutMs })
    const reader = new PeriodicExportingMetricReader({
      exporter,
      exportIntervalMillis: opts.intervalMs,
      exportTimeoutMillis: Math.min(opts.timeoutMs, opts.intervalMs),
    })
    this.provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': opts.serviceName }), readers: [reader] })
    const meter = this.provider.getMeter('sluice')
    this.tokenUsage = meter.createHistogram('gen_ai.client.token.usage', {
      unit: '{token}', description: 'Number of input and output tokens used.', advice: { explicitBucketBoundaries: TOKEN_BOUNDARIES },
    })
    this.requestDuration = meter.createHistogram('gen_ai.server.request.duration', {
      unit: 's', description: 'Generative AI server request duration such as time-to-last byte or last output token.', advice: { explicitBucketBoundaries: DURATION_BOUNDARIES },
    })
    this.timeToFirstToken = meter.createHistogram('gen_ai.server.time_to_first_token', {
      unit: 's', description: 'Time to generate first token for successful responses.', advice: { explicitBucketBoundaries: TTFT_BOUNDARIES },
    })
    this.attrs = new SeriesTable(['op', 'provider', 'model', 'address', 'error'], opts.maxSeries, (l) => {
      const base: Attributes = { 'gen_ai.operation.name': l.op!, 'gen_ai.provider.name': l.provider!, 'gen_ai.request.model': l.model! }
      if (l.address) base['server.address'] = l.address
      if (l.error) base['error.type'] = l.error
      return { base, input: { ...base, 'gen_ai.token.type': 'input' }, output: { ...base, 'gen_ai.token.type': 'output' } }
    })
  }

  /** Records one request that a backend (or a policy such as a cache) answered. */
  record(f: RequestFacts, operation: Operation, backend: BackendDescription): void {
    const error = f.status >= 400 ? String(f.status) : ''
    const a = this.attrs.get([OPERATION_NAME[operation], backend.provider, f.model, backend.address ?? '', error])
    if (!error) {
      this.tokenUsage.record(f.promptTokens, a.input)
      if (operation !== 'embeddings') this.tokenUsage.record(f.completionTokens, a.output)
      if (f.ttftSeconds !== null) this.timeToFirstToken.record(f.ttftSeconds, a.base)
    }
    this.requestDuration.record(f.durationSeconds, a.base)
  }

  /** Pushes whatever is pending now (tests, and shutdown). */
  flush(): Promise<void> {
    return this.provider.forceFlush()
  }

  /** Exports what is pending and stops the timer. */
  shutdown(): Promise<void> {
    return this.provider.shutdown()
  }
}

function metricsUrl(endpoint: string): string {
  const u = new URL(endpoint)
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/metrics'
  return u.toString()
}

export { PROVIDER_NAME, type BackendDescription }
