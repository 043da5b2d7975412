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
  readonly json: Json
}

export type ParsedClientEvent = { ok: true; event: ClientEvent } | { ok: false; code: 'invalid_json' | 'invalid_event'; message: string }

const SAFE_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** Parses one client text frame far enough to govern it; a frame that is not an event object is refused. */
export function parseClientEvent(text: string): ParsedClientEvent {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return { ok: false, code: 'invalid_json', message: 'The event is not valid JSON. Each WebSocket message is one Realtime client event, as a JSON object.' }
  }
  if (!json || typeof json !== 'object' || Array.isArray(json)) return { ok: false, code: 'invalid_event', message: 'The event must be a JSON object with a "type".' }
  const o = json as Json
  if (typeof o.type !== 'string' || o.type.length === 0 || o.type.length > 128) return { ok: false, code: 'invalid_event', message: 'The event has no "type" (a string naming a Realtime client event).' }
  const id = typeof o.event_id === 'string' && SAFE_ID.test(o.event_id) ? o.event_id : null
  return { ok: true, event: { type: o.type, eventId: id, json: o } }
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
