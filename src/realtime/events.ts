import { randomBytes } from 'node:crypto'
import type { Usage } from '../core/usage.ts'

/**
 * What the gateway reads of Realtime events: the `type` of every event (governance needs nothing more of
 * most of them), `response.create`'s output cap, and `response.done`'s usage. Events are forwarded as the
 * bytes they came as; nothing here re-encodes one.
 */

type Json = Record<string, unknown>

/** OpenAI's server event ids look like `event_` + 21 characters; ours are told apart by the `sluice` infix. */
export function eventId(): string {
  return `event_sluice${randomBytes(9).toString('base64url')}`
}

export interface RealtimeErrorEvent {
  readonly type: 'error'
  readonly event_id: string
  readonly error: { type: string; code: string; message: string; param: string | null; event_id: string | null }
}

/** The Realtime `error` server event, in OpenAI's shape (openai/resources/realtime RealtimeErrorEvent). */
export function errorEvent(type: string, code: string, message: string, opts: { param?: string | null; clientEventId?: string | null } = {}): RealtimeErrorEvent {
  return { type: 'error', event_id: eventId(), error: { type, code, message, param: opts.param ?? null, event_id: opts.clientEventId ?? null } }
}

/** A client event as governance sees it: its type, its id, and the parsed object (read, never re-sent). */
export interface ClientEvent {
  readonly type: string
  readonly eventId: string | null
  /** The parsed event; for a scanned (large) event only its `type` and `event_id`. */
  readonly json: Json
  readonly bytes: number
}

export type ParsedClientEvent = { ok: true; event: ClientEvent } | { readonly ok: false; readonly code: 'invalid_json' | 'invalid_event'; readonly message: string }

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Past this size an event is scanned, not parsed: JSON.parse of megabytes of base64 audio holds the event loop. */
export const SCAN_ABOVE_BYTES = 256 * 1024

const BAD_JSON = { ok: false, code: 'invalid_json', message: 'The event is not valid JSON. Each WebSocket message is one Realtime client event, as a JSON object.' } as const
const NO_TYPE = { ok: false, code: 'invalid_event', message: 'The event has no "type" (a string naming a Realtime client event).' } as const

/**
 * Parses one client text frame far enough to govern it; a frame that is not an event object is refused.
 * A large frame (an audio append, an image item) is scanned instead: its top-level keys are read and
 * their values skipped (strings by a native search for their closing quote), so only `type` and
 * `event_id` are known and `json` holds just those. A second `type` key is refused, so the gateway and the
 * backend can never read different types from one event.
 */
export function parseClientEvent(data: Buffer): ParsedClientEvent {
  if (data.length > SCAN_ABOVE_BYTES) return scanClientEvent(data)
  let json: unknown
  try {
    json = JSON.parse(data.toString('utf8'))
  } catch {
    return BAD_JSON
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) return { ok: false, code: 'invalid_event', message: 'The event must be a JSON object with a "type".' }
  const o = json as Json
  if (typeof o.type !== 'string' || o.type.length === 0 || o.type.length > 128) return NO_TYPE
  const id = typeof o.event_id === 'string' && SAFE_ID.test(o.event_id) ? o.event_id : null
  return { ok: true, event: { type: o.type, eventId: id, json: o, bytes: data.length } }
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const isWs = (c: number | undefined) => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09

function skipWs(b: Buffer, i: number): number {
  while (i < b.length && isWs(b[i])) i++
  return i
}

/** The index after the string that starts at `i` (a quote), or -1. Jumps from quote to quote. */
function skipString(b: Buffer, i: number): number {
  let j = i + 1
  for (;;) {
    const q = b.indexOf(QUOTE, j)
    if (q === -1) return -1
    let n = 0
    for (let k = q - 1; k > i && b[k] === BACKSLASH; k--) n++
    if (n % 2 === 0) return q + 1
    j = q + 1
  }
}

/** The index after the value that starts at `i`, or -1; containers are matched by depth, strings skipped whole. */
function skipValue(b: Buffer, i: number): number {
  const c = b[i]
  if (c === QUOTE) return skipString(b, i)
  if (c === 0x7b || c === 0x5b) {
    let depth = 0
    let j = i
    while (j < b.length) {
      const x = b[j]
      if (x === QUOTE) {
        j = skipString(b, j)
        if (j === -1) return -1
        continue
      }
      if (x === 0x7b || x === 0x5b) depth++
      else if (x === 0x7d || x === 0x5d) {
        depth--
        if (depth === 0) return j + 1
      }
      j++
    }
    return -1
  }
  let j = i
  while (j < b.length && b[j] !== 0x2c && b[j] !== 0x7d && b[j] !== 0x5d && !isWs(b[j])) j++
  return j > i ? j : -1
}

/** A string token's value (escapes decoded only when it has any). */
function stringAt(b: Buffer, start: number, end: number): string | null {
  if (b.indexOf(BACKSLASH, start) === -1 || b.indexOf(BACKSLASH, start) >= end) return b.toString('utf8', start + 1, end - 1)
  try {
    return JSON.parse(b.toString('utf8', start, end)) as string
  } catch {
    return null
  }
}

function scanClientEvent(b: Buffer): ParsedClientEvent {
  let i = skipWs(b, 0)
  if (b[i] !== 0x7b) return b[i] === 0x5b || b[i] === QUOTE ? { ok: false, code: 'invalid_event', message: 'The event must be a JSON object with a "type".' } : BAD_JSON
  i = skipWs(b, i + 1)
  let type: string | null = null
  let eventId: string | null = null
  while (b[i] !== 0x7d) {
    if (b[i] !== QUOTE) return BAD_JSON
    const keyEnd = skipString(b, i)
    if (keyEnd === -1) return BAD_JSON
    // Keys are short: decoding one costs nothing, and `"typ\u0065"` is caught as the `type` it is.
    const key = keyEnd - i <= 130 ? stringAt(b, i, keyEnd) : null
    i = skipWs(b, keyEnd)
    if (b[i] !== 0x3a) return BAD_JSON
    i = skipWs(b, i + 1)
    const valueEnd = skipValue(b, i)
    if (valueEnd === -1) return BAD_JSON
    if (key === 'type' || key === 'event_id') {
      const v = b[i] === QUOTE && valueEnd - i <= 260 ? stringAt(b, i, valueEnd) : null
      if (key === 'type') {
        if (type !== null) return { ok: false, code: 'invalid_event', message: 'The event has more than one "type".' }
        if (v === null || v.length === 0 || v.length > 128) return NO_TYPE
        type = v
      } else eventId = v !== null && SAFE_ID.test(v) ? v : null
    }
    i = skipWs(b, valueEnd)
    if (b[i] === 0x2c) i = skipWs(b, i + 1)
    else if (b[i] !== 0x7d) return BAD_JSON
  }
  if (skipWs(b, i + 1) !== b.length) return BAD_JSON
  if (type === null) return NO_TYPE
  return { ok: true, event: { type, eventId, json: { type, ...(eventId ? { event_id: eventId } : {}) }, bytes: b.length } }
}

/**
 * The output cap a `response.create` asks for (`response.max_output_tokens`, or the beta spelling
 * `max_response_output_tokens`), else the session's (from the last `session.update`), else null; `inf` is null.
 */
export function outputCapOf(json: Json | null): number | null {
  if (!json) return null
  const r = (json.response ?? json.session) as Json | undefined
  if (!r || typeof r !== 'object') return null
  const v = r.max_output_tokens ?? r.max_response_output_tokens
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? Math.ceil(v) : null
}

const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : 0)

/**
 * A `response.done`'s usage (RealtimeResponseUsage): input tokens with their text/audio and cached details,
 * output tokens with theirs. Audio counts are kept apart so the ledger can price them at audio prices.
 */
export function usageFromRealtime(raw: unknown): Usage | null {
  if (!raw || typeof raw !== 'object') return null
  const u = raw as Json
  const input = num(u.input_tokens)
  const output = num(u.output_tokens)
  const inDetails = (u.input_token_details ?? {}) as Json
  const outDetails = (u.output_token_details ?? {}) as Json
  const cachedDetails = (inDetails.cached_tokens_details ?? {}) as Json
  const cached = Math.min(num(inDetails.cached_tokens), input)
  const audioIn = Math.min(num(inDetails.audio_tokens), input)
  const usage: Usage = {
    promptTokens: input,
    completionTokens: output,
    totalTokens: num(u.total_tokens) || input + output,
    cachedTokens: cached,
    reasoningTokens: num(outDetails.reasoning_tokens),
  }
  const audioOut = Math.min(num(outDetails.audio_tokens), output)
  if (audioIn > 0 || audioOut > 0) {
    usage.audioPromptTokens = audioIn
    usage.audioCachedTokens = Math.min(num(cachedDetails.audio_tokens), cached, audioIn)
    usage.audioCompletionTokens = audioOut
  }
  return usage
}

/** The id of the response a server event belongs to (`response.created/done`: response.id; deltas: response_id). */
export function responseIdOf(json: Json): string | null {
  const r = json.response as Json | undefined
  const id = r && typeof r === 'object' ? r.id : json.response_id
  return typeof id === 'string' && SAFE_ID.test(id) ? id : null
}

/** Whether a server event type carries generated output (for time to first token). */
export function isOutputDelta(type: string): boolean {
  return type.endsWith('.delta') && type.startsWith('response.')
}
