import type { BackendConfig, GatewayConfig } from '../config/schema.ts'
import { PROVIDER_NAME, type BackendDescription } from './provider-names.ts'
import { Telemetry } from './telemetry.ts'
import { createTracing } from './tracing-config.ts'

/**
 * Builds a gateway's telemetry from the `telemetry:` section of its config. `backendOf` looks a backend up
 * in the current snapshot; `baseUrlOf` gives its address (for the OTLP `server.address` attribute).
 */
export async function createTelemetry(
  config: GatewayConfig,
  now: () => number,
  backendOf: (id: string) => BackendConfig | undefined,
  baseUrlOf: (b: BackendConfig) => string,
): Promise<Telemetry> {
  const t = config.telemetry
  const describe = backendDescriber(baseUrlOf)
  // The OpenTelemetry SDK (tens of MiB) loads only when an OTLP endpoint is configured.
  const otlpModule = t.otlp ? await import('./otlp.ts') : null
  const tracing = await createTracing(config, describe)
  return new Telemetry({
    tracing,
    now,
    maxSeries: t.maxSeries,
    otlpModule,
    otlp: t.otlp ? { endpoint: t.otlp.endpoint, intervalMs: Math.max(100, t.otlp.interval), timeoutMs: Math.max(100, t.otlp.timeout), headers: t.otlp.headers, serviceName: t.otlp.serviceName } : null,
    describeBackend: (id) => describe(backendOf(id)),
  })
}

/**
 * A backend's provider name and host, cached per backend config object: a reload replaces those objects,
 * so a changed URL is picked up and the cache never outlives its snapshot.
 */
export function backendDescriber(baseUrlOf: (b: BackendConfig) => string): (b: BackendConfig | undefined) => BackendDescription | null {
  const described = new WeakMap<BackendConfig, BackendDescription>()
  return (b) => {
    if (!b) return null
    let d = described.get(b)
    if (!d) {
      let address: string | null = null
      try { address = new URL(baseUrlOf(b)).hostname } catch { address = null }
      d = { provider: PROVIDER_NAME[b.type] ?? b.type, address }
      described.set(b, d)
    }
    return d
  }
}
