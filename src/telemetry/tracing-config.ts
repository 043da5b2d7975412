import type { BackendConfig, GatewayConfig } from '../config/schema.ts'
import type { BackendDescription } from './provider-names.ts'
import { RequestTracing } from './tracing.ts'

/**
 * A gateway's request tracing from `telemetry.tracing` (with `telemetry.otlp`'s endpoint, headers and
 * timeout). The OpenTelemetry trace SDK loads only when tracing is configured; debug timings need none of it.
 */
export async function createTracing(config: GatewayConfig, describe: (b: BackendConfig | undefined) => BackendDescription | null): Promise<RequestTracing> {
  const { otlp, tracing } = config.telemetry
  if (!tracing || !otlp) return new RequestTracing({ spans: null, describe })
  const { SpanRecorder, tracesUrl } = await import('./tracing-spans.ts')
  const spans = new SpanRecorder({
    url: tracesUrl(otlp.endpoint, tracing.endpoint),
    headers: otlp.headers,
    timeoutMs: Math.max(100, otlp.timeout),
    serviceName: otlp.serviceName,
    sample: tracing.sample,
    parentBased: tracing.parentBased,
    intervalMs: Math.max(10, tracing.interval),
    maxQueue: tracing.maxQueue,
  })
  return new RequestTracing({ spans, describe })
}
