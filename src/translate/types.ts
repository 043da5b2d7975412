import type { SseFrame } from '../core/sse.ts'

/**
 * The API schemas Sluice speaks. The kernel's own schema (the "hub") is OpenAI Chat Completions, with the
 * few extensions listed in hub.ts; every other schema is translated to and from it, one codec per
 * schema side, so N backends and M front doors need N + M codecs, not N × M. `responses` is OpenAI's
 * Responses API: a front door (responses-to-openai.ts) and the codec of backends that speak it natively.
 */
export type ApiSchema = 'openai' | 'anthropic' | 'gemini' | 'bedrock' | 'responses'

/** One upstream stream event: an SSE frame, or a decoded AWS event-stream message (`event` = `:event-type`). */
export type UpstreamEvent = SseFrame

/** What a codec may need to know about the request it translates; never the client's credentials. */
export interface TranslateContext {
  /** The model id at the backend (after `models:` mapping). */
  readonly upstreamModel: string
  /** The public model name the client asked for (what hub answers carry in `model`). */
  readonly publicModel: string
  readonly stream: boolean
  /** The gateway's request id (hub answers are `chatcmpl-<id>`). */
  readonly requestId: string
  /** Seconds since the epoch, for hub `created`. */
  readonly created: number
  /** The backend's id, for the UpstreamFailures a stream decoder throws (failover and breakers need it). */
  readonly backendId?: string
}

/** The request a codec produced, plus the hub fields it omitted by the documented safe-omission rule. */
export interface TranslatedRequest {
  readonly body: Record<string, unknown>
  /** Hub field paths dropped because the target cannot honour them and dropping them is safe (docs/translation.md). */
  readonly omitted: readonly string[]
}

/** A backend error, normalised to the hub's (OpenAI's) error vocabulary. */
export interface TranslatedError {
  readonly message: string
  /** OpenAI error `type` (invalid_request_error, rate_limit_error, api_error, overloaded_error…). */
  readonly type: string
  readonly code: string | null
  readonly param: string | null
  /** The backend said "try again elsewhere" (overloaded, 5xx-like) even if its status says otherwise. */
  readonly retriable: boolean
  /** The wait the backend asked for in its error body (Google's RetryInfo), when no header carries it. */
  readonly retryAfterMs?: number | null
}

/** Turns a backend's stream events into hub chunks (`chat.completion.chunk` objects), as they arrive. */
export interface StreamDecoder {
  /** Hub chunks produced by this event (often none or one). Throws UpstreamFailure on a malformed event. */
  push(event: UpstreamEvent): readonly Record<string, unknown>[]
  /** Chunks still owed when the upstream ends (e.g. the usage-only chunk). */
  end(): readonly Record<string, unknown>[]
}

/**
 * Hub ⇄ one backend schema. Pure and idempotent: a failover or fallback simply translates again.
 * A hub field whose meaning the target cannot keep is a GatewayError 400 naming it (`param`), never dropped.
 */
export interface BackendCodec {
  readonly schema: ApiSchema
  request(hub: Record<string, unknown>, tc: TranslateContext): TranslatedRequest
  /** A complete backend answer → a hub `chat.completion` (usage in OpenAI's shape, see hub.ts). */
  response(body: Record<string, unknown>, tc: TranslateContext): Record<string, unknown>
  /** Fresh per request. */
  decoder(tc: TranslateContext): StreamDecoder
  /** `headers`: the backend's response headers that carry error details (e.g. Bedrock's `x-amzn-errortype`). */
  error(status: number, body: Record<string, unknown>, headers?: Readonly<Record<string, string>>): TranslatedError
  /**
   * Same-schema passthrough: the client's own body as this backend wants it (default: `model` replaced).
   * For backends that speak the schema with a twist (Anthropic on Vertex AI: no `model`, an `anthropic_version`).
   */
  native?(clientBody: Record<string, unknown>, tc: TranslateContext): Record<string, unknown>
}

/** Bytes of a streamed body → events. SSE for most providers; AWS event-stream for Bedrock. */
export interface StreamParser {
  push(chunk: Uint8Array): readonly UpstreamEvent[]
  end(): readonly UpstreamEvent[]
}
