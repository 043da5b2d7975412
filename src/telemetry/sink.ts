/**
 * The events policies, stores and upstream layers report for metrics. The Prometheus/OTLP implementation
 * lives in telemetry/; producers depend only on this interface, so none of them imports prom-client.
 */
export interface MetricsSink {
  /** A cache policy looked up a request: `hit`, `miss`, or `bypass` (not cacheable / cache unavailable). */
  cacheLookup(policy: string, result: 'hit' | 'miss' | 'bypass'): void
  /** A backend's circuit changed state: 0 closed, 1 half-open, 2 open. */
  breakerState(backendId: string, state: 0 | 1 | 2): void
  /** A distributed store failed and a local fallback (or refusal) was used. */
  storeFailure(store: string, action: 'fallback' | 'refused'): void
  /** A limit policy refused a request. */
  limitRejected(policy: string, reason: 'rate' | 'quota' | 'budget'): void
  /** The usage ledger shed records because its bounded queue was full (store down or too slow). Optional so existing sinks stay valid. */
  ledgerDropped?(n: number): void
  /** A router, race or split model chose the model that served a request (`reason`: cheapest, fastest, race, split). */
  routeDecision?(model: string, served: string, reason: string): void
  /** The content-safety policy blocked or redacted a category, or an engine failed (`failed_open` / `failed_closed`). */
  contentSafety?(engine: string, category: string, action: 'blocked' | 'redacted' | 'failed_open' | 'failed_closed'): void
}

export const noopMetrics: MetricsSink = {
  cacheLookup() {},
  breakerState() {},
  storeFailure() {},
  limitRejected() {},
  ledgerDropped() {},
  routeDecision() {},
  contentSafety() {},
}
