import type { BackendConfig, GatewayConfig } from '../config/schema.ts'
import { PROVIDER_NAME, type BackendDescription } from './otlp.ts'
import { Telemetry } from './telemetry.ts'

/**
 * Builds a gateway's telemetry from the `telemetry:` section of its config. `backendOf` looks a backend up
 * in the current snapshot; `baseUrlOf` gives its address (for the OTLP `server.address` attribute).
 */
export function createTelemetry(
  config: GatewayConfig,
  now: () => number,
  backendOf: (id: string) => BackendConfig | undefined,
  baseUrlOf: (b: BackendConfig) => string,
): Telemetry {
  const t = config.telemetry
  const describe = backendDescriber(baseUrlOf)
  return new Telemetry({
    now,
    maxSeries: t.maxSeries,
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
