import type { ServerResponse } from 'node:http'
import type { BackendConfig } from '../config/schema.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { RequestContext } from '../core/context.ts'
import type { BackendDescription } from './provider-names.ts'
import { RequestTrace, SPAN_KIND_SERVER, TRACE_SLOT } from './tracing-request.ts'
import type { SpanRecorder } from './tracing-spans.ts'
import { asksForTimings } from './tracing-timings.ts'

export { traceOf } from './tracing-request.ts'

/** When admission started and ended (performance.now() ms), from the front door's hook. */
export interface AdmissionTimes {
  readonly arrivedAt: number
  readonly admittedAt: number
}

export interface RequestTracingOptions {
  /** The OTLP span exporter; null when `telemetry.tracing` is off (debug timings still work). */
  readonly spans: SpanRecorder | null
  readonly describe: (b: BackendConfig) => BackendDescription | null
}

/**
 * One gateway's request tracing: decides per request whether it gets a trace (tracing on, or debug
 * timings asked for by a caller whose product allows them) and starts it. A request that gets neither
 * costs a header lookup; everything after is a `traceOf(ctx)` that finds nothing.
 */
export class RequestTracing {
  constructor(private readonly opts: RequestTracingOptions) {}

  get enabled(): boolean {
    return this.opts.spans !== null
  }

  /**
   * Called once the caller is known. `route` is the matched route (`/v1/chat/completions`), for the SERVER
   * span's name; `res` is watched for the last byte.
   */
  begin(ctx: RequestContext, snapshot: Snapshot, admission: AdmissionTimes | null, route: string, res: ServerResponse): RequestTrace | null {
    const spans = this.opts.spans
    const timings = asksForTimings(ctx.info.headers['x-sluice-debug']) && timingsAllowed(snapshot, ctx)
    if (spans === null && !timings) return null
    const arrivedAt = admission?.arrivedAt ?? performance.now()
    const epochOffset = Date.now() - performance.now()
    let server = null
    if (spans) {
      const parent = spans.extract(ctx.info.headers)
      server = spans.start(`${ctx.info.method} ${route}`, {
        kind: SPAN_KIND_SERVER,
        startTime: arrivedAt + epochOffset,
        attributes: { 'http.request.method': ctx.info.method, 'http.route': route, 'sluice.request.id': ctx.id, 'gen_ai.request.model': ctx.model },
      }, parent)
    }
    const trace = new RequestTrace(ctx, { spans, server, timings, arrivedAt, admittedAt: admission?.admittedAt ?? arrivedAt, epochOffset, describe: this.opts.describe })
    ctx.slots.set(TRACE_SLOT, trace)
    if (spans) {
      if (res.writableFinished || res.destroyed) trace.close()
      else res.once('close', () => trace.close())
    }
    return trace
  }

  /** Exports the finished spans now (tests, shutdown). */
  flush(): Promise<void> {
    return this.opts.spans?.flush() ?? Promise.resolve()
  }

  shutdown(): Promise<void> {
    return this.opts.spans?.shutdown() ?? Promise.resolve()
  }
}

/**
 * Whether this caller may see its request's timings: its product says `debug: { timings: true }`. The
 * header of anyone else is ignored (no error, no timings).
 */
function timingsAllowed(snapshot: Snapshot, ctx: RequestContext): boolean {
  const productId = ctx.principal?.productId
  if (!productId) return false
  return snapshot.products.get(productId)?.debug?.timings === true
}
