import type { RequestContext } from './context.ts'
import type { GatewayError } from './errors.ts'
import type { SseFrame } from './sse.ts'
import type { Usage } from './usage.ts'
import type { ApiSchema } from '../translate/types.ts'

/** A complete (non-streamed) answer, from a backend or produced by a policy (e.g. a cache hit). */
export interface JsonResult {
  readonly kind: 'json'
  status: number
  headers: Record<string, string>
  /** Parsed body. */
  body: Record<string, unknown>
  /** The body text as received; forwarded verbatim unless an outbound policy set `modified`. */
  text: string | null
  modified?: boolean
  /**
   * Same-schema passthrough: the backend's own answer text, in the client's schema, forwarded verbatim by the
   * front door of that schema unless a policy modified the (hub) body.
   */
  native?: { readonly schema: ApiSchema; readonly text: string }
}

/** A streamed answer: SSE frames pulled one by one, never buffered whole. */
export interface StreamResult {
  readonly kind: 'stream'
  status: number
  headers: Record<string, string>
  frames: AsyncIterable<SseFrame>
  /** Stops the upstream (client gone, deadline). Idempotent. */
  abort(): void
}

/**
 * A body relayed as bytes, chunk by chunk (speech audio, a plain-text transcript): never parsed, never
 * buffered. Only the media routes (src/media/) produce it.
 */
export interface RawResult {
  readonly kind: 'raw'
  status: number
  headers: Record<string, string>
  body: AsyncIterable<Buffer>
  /** Stops the upstream (client gone, deadline). Idempotent. */
  abort(): void
}

export type UpstreamResult = JsonResult | StreamResult | RawResult

/** One parsed stream event as outbound policies see it. */
export interface StreamChunk {
  readonly frame: SseFrame
  /** The frame's JSON data, or null for `[DONE]` and non-JSON data. */
  readonly json: Record<string, unknown> | null
  /** Set by a policy that edited `json`, so the encoder re-serialises instead of forwarding `frame.raw`. */
  modified: boolean
}

export type Dispatch = (ctx: RequestContext) => Promise<UpstreamResult>

/** What happened, known once the response has ended; `complete` hooks run on it off the client's path. */
export interface Outcome {
  readonly status: number
  readonly usage: Usage | null
  readonly error: GatewayError | null
  /** The client went away before the end. */
  readonly aborted: boolean
  readonly endedAt: number
  /**
   * The generated text, when the response carried any (streams and chat completions). A stream's text is
   * only assembled when a policy of the pipeline declares `readsCompletionText`; null otherwise.
   */
  readonly completionText: string | null
  /** Set when a policy answered instead of a backend (e.g. `cache:exact`). */
  readonly servedBy: string | null
  /**
   * Tokens spent by tries that did not answer the client (a hedge cancelled after the backend had the
   * prompt): billed and counted against limits, but not part of the answer's own `usage`.
   */
  readonly extraUsage?: Usage | null
}

/**
 * A policy: one concern, hooking any of the four stages. Stages run in list order inbound (global scope
 * first), outbound in reverse, `complete` after the response with its errors logged, never surfaced.
 */
export interface Policy {
  readonly name: string
  /** May throw a GatewayError to refuse, or return a result to answer without calling a backend. */
  inbound?(ctx: RequestContext): void | UpstreamResult | Promise<void | UpstreamResult>
  /** Wraps the upstream call, undici-interceptor style. */
  backend?(next: Dispatch): Dispatch
  /** Sees (and may edit) a complete answer before it is sent. */
  outboundResponse?(ctx: RequestContext, res: JsonResult): void
  /** Sees each streamed event before it is sent; returning false drops it. */
  outboundChunk?(ctx: RequestContext, chunk: StreamChunk): boolean
  /** Runs once usage is known. Never delays the client. */
  complete?(ctx: RequestContext, outcome: Outcome): void | Promise<void>
  /** `complete` reads `outcome.completionText` (streams assemble their text only for such a policy). */
  readonly readsCompletionText?: boolean
}

type Inbound = NonNullable<Policy['inbound']>
type OutboundResponse = NonNullable<Policy['outboundResponse']>
type OutboundChunk = NonNullable<Policy['outboundChunk']>
type Complete = NonNullable<Policy['complete']>

/** Built once per config snapshot, never per request. Empty stages are null so they cost nothing. */
export interface CompiledPipeline {
  readonly policies: readonly Policy[]
  readonly inbound: readonly Inbound[] | null
  readonly outboundResponse: readonly OutboundResponse[] | null
  readonly outboundChunk: readonly OutboundChunk[] | null
  readonly complete: readonly Complete[] | null
  /** Some policy reads `outcome.completionText`. */
  readonly readsCompletionText: boolean
  readonly dispatch: Dispatch
}

export function compile(policies: readonly Policy[], base: Dispatch): CompiledPipeline {
  const pick = <K extends 'inbound' | 'outboundResponse' | 'outboundChunk' | 'complete'>(k: K, reverse: boolean) => {
    const ordered = reverse ? [...policies].reverse() : policies
    const fns = ordered.flatMap((p) => {
      const fn = p[k]
      return fn ? [fn.bind(p) as NonNullable<Policy[K]>] : []
    })
    return fns.length ? fns : null
  }
  // Policies listed earlier sit further out in the backend chain.
  const dispatch = policies.reduceRight<Dispatch>((next, p) => (p.backend ? p.backend(next) : next), base)
  return {
    policies,
    inbound: pick('inbound', false),
    outboundResponse: pick('outboundResponse', true),
    outboundChunk: pick('outboundChunk', true),
    complete: pick('complete', false),
    readsCompletionText: policies.some((p) => p.readsCompletionText === true),
    dispatch,
  }
}

/** Runs inbound hooks in order; the first one that returns a result short-circuits the rest and the backend. */
export async function runInbound(p: CompiledPipeline, ctx: RequestContext): Promise<UpstreamResult | null> {
  if (p.inbound === null) return null
  for (const fn of p.inbound) {
    const r = await fn(ctx)
    if (r) return r
  }
  return null
}

/**
 * An event iterator that can say when its source fails, without a reader having to wait on it: the commit
 * step counts a failure after the commit against the backend's breaker this way instead of chaining a
 * `.catch` onto every event's promise (one more promise and microtask per event). A failure that has
 * already happened is told at once.
 */
export interface FailureSignal {
  onFailure(listener: (err: Error) => void): void
}
