import { randomBytes } from 'node:crypto'
import { sha256Hex } from '../../core/sha256.ts'
import type { Logger } from 'pino'
import type { RequestContext } from '../../core/context.ts'
import type { CounterStore, CounterWindow, WindowState } from '../../stores/counter.ts'
import type { PolicyScope } from '../types.ts'

/**
 * What the limit policies share for one request: the reservations made so far (so a refusal by any of
 * them releases what the earlier ones reserved), the prompt estimate (tokenized once however many
 * token-limit policies apply), and the most restrictive values for the rate-limit headers.
 */
interface RequestLimits {
  readonly held: HeldReservation[]
  promptEstimate: number | null
  /** header family → the smallest remaining value written so far */
  readonly shown: Map<string, number>
}

export interface HeldReservation {
  readonly owner: object
  readonly store: CounterStore
  readonly key: string
  readonly id: string
  readonly amount: number
  readonly windows: readonly CounterWindow[]
  readonly local: boolean
  settled: boolean
}

const SLOT = Symbol('sluice.limits')

export function requestLimits(ctx: RequestContext): RequestLimits {
  let s = ctx.slots.get(SLOT) as RequestLimits | undefined
  if (!s) ctx.slots.set(SLOT, (s = { held: [], promptEstimate: null, shown: new Map() }))
  return s
}

/** The reservation a policy made for this request and has not settled yet. */
export function heldBy(ctx: RequestContext, owner: object): HeldReservation | null {
  const s = ctx.slots.get(SLOT) as RequestLimits | undefined
  return s?.held.find((h) => h.owner === owner && !h.settled) ?? null
}

/**
 * Releases every reservation this request still holds (called before a limit refuses it), so a request
 * refused by its second limit does not keep consuming its first one.
 */
export async function releaseAll(ctx: RequestContext, now: number, logger: Logger): Promise<void> {
  const s = ctx.slots.get(SLOT) as RequestLimits | undefined
  if (!s) return
  await Promise.all(s.held.filter((h) => !h.settled).map(async (h) => {
    h.settled = true
    try {
      await h.store.settle({ key: h.key, id: h.id, reserved: h.amount, actual: 0, windows: h.windows, now, local: h.local })
    } catch (err) {
      logger.debug({ err: { message: (err as Error).message } }, 'could not release a reservation (it expires by itself)')
    }
  }))
}

/** Longest counter-key value kept as it is; a longer one (a client header, say) is replaced by its digest. */
export const MAX_COUNTER_KEY = 128

/**
 * A counter-key value bounded in length: a client who sets the header a key is taken from must not store
 * kilobytes per counter (in memory or in Redis). Distinct values stay distinct (the digest), so limits
 * still count each one apart.
 */
export function boundedKeyPart(value: string): string {
  return value.length <= MAX_COUNTER_KEY ? value : `sha256:${sha256Hex(value)}`
}

const PROCESS_TAG = randomBytes(6).toString('hex')
let sequence = 0

/** Unique across processes and requests (a client-chosen x-request-id may repeat, so it is not used). */
export function reservationId(): string {
  return `${PROCESS_TAG}.${(++sequence).toString(36)}`
}

/** OpenAI's reset format: `250ms`, `1.5s`, `6m0s`, `2h3m4s`. */
export function formatReset(ms: number): string {
  const t = Math.max(0, Math.ceil(ms))
  if (t < 1000) return `${t}ms`
  if (t < 60_000) return `${Number((t / 1000).toFixed(3))}s`
  const totalS = Math.ceil(t / 1000)
  const h = Math.floor(totalS / 3600)
  const m = Math.floor((totalS % 3600) / 60)
  const s = totalS % 60
  return h > 0 ? `${h}h${m}m${s}s` : `${m}m${s}s`
}

/** `retry-after` (whole seconds, rounded up) and `retry-after-ms` (exact), as OpenAI and Azure send them. */
export function retryHeaders(ms: number, customName?: string): Record<string, string> {
  const wait = Math.max(1, Math.ceil(ms))
  const h: Record<string, string> = { 'retry-after': String(Math.ceil(wait / 1000)), 'retry-after-ms': String(wait) }
  if (customName) h[customName.toLowerCase()] = h['retry-after']!
  return h
}

/**
 * Writes the `x-ratelimit-{limit,remaining,reset}-<family>` trio on the response, unless another limit
 * already wrote a smaller remaining value (the client sees the limit that binds first).
 */
export function showLimit(ctx: RequestContext, family: 'tokens' | 'requests', state: WindowState, now: number, into: Record<string, string> = ctx.responseHeaders): void {
  const s = requestLimits(ctx)
  const prev = s.shown.get(family)
  if (prev !== undefined && prev <= state.remaining) return
  s.shown.set(family, state.remaining)
  writeLimitHeaders(into, family, state, now)
}

/** The trio's names per family, made once (names built per request made every headers object a dictionary). */
const LIMIT_HEADER_NAMES = {
  tokens: ['x-ratelimit-limit-tokens', 'x-ratelimit-remaining-tokens', 'x-ratelimit-reset-tokens'],
  requests: ['x-ratelimit-limit-requests', 'x-ratelimit-remaining-requests', 'x-ratelimit-reset-requests'],
} as const

/** Writes the `x-ratelimit-{limit,remaining,reset}-<family>` trio into `into`. */
export function writeLimitHeaders(into: Record<string, string>, family: 'tokens' | 'requests', state: WindowState, now: number): void {
  const [limit, remaining, reset] = LIMIT_HEADER_NAMES[family]
  into[limit] = String(state.limit)
  into[remaining] = String(state.remaining)
  into[reset] = formatReset(state.resetAt - now)
}

/** A header name as HTTP allows it (a token), for the configurable header-name options. */
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** What `GET /admin/limits` shows for one limit policy and one counter-key value. */
export interface LimitView {
  readonly policy: string
  readonly scope: string
  readonly counter: string
  readonly windows: readonly (WindowState & { readonly kind: CounterWindow['kind']; readonly resetAtIso: string; readonly period?: string })[]
}

/** Implemented by limit policies so the admin plane can show their counters. */
export interface LimitInspector {
  readonly isLimitInspector: true
  inspect(keyValue: string): Promise<LimitView>
}

export function isLimitInspector(p: unknown): p is LimitInspector {
  return typeof p === 'object' && p !== null && (p as { isLimitInspector?: unknown }).isLimitInspector === true
}

export function scopeLabel(scope: PolicyScope): string {
  return scope.kind === 'global' ? 'global' : `product:${scope.productId}`
}
