import type { Operation } from '../core/context.ts'
import type { BackendConfig } from '../config/schema.ts'
import type { ApiSchema, BackendCodec, StreamParser } from '../translate/types.ts'

/** Where and how to send one operation to one backend. */
export interface UpstreamTarget {
  readonly origin: string
  /** Path and query. */
  readonly path: string
  readonly headers: Record<string, string>
}

/**
 * A provider is data plus pure functions: no I/O, safe to call again on failover. Providers that speak
 * another schema than the hub's carry the codec that translates (src/translate/); credentials that need I/O
 * (tokens, signatures) live in src/providers/credentials/, never here.
 */
export interface Provider {
  readonly type: BackendConfig['type']
  /** The API schema the provider speaks. */
  readonly speaks: ApiSchema
  /** Which operations the provider serves. */
  readonly operations: ReadonlySet<Operation>
  /** The base URL when the backend gives no `url` (undefined: the backend must give one, or it is a mock). */
  defaultUrl?(backend: BackendConfig): string | undefined
  target(backend: BackendConfig, operation: Operation, upstreamModel: string, baseUrl: string, stream: boolean): UpstreamTarget
  /** Hub ⇄ provider schema; absent when the provider speaks the hub's schema (bytes pass through). */
  readonly codec?: BackendCodec
  /** The codec for one model when it depends on the model (Vertex AI: Gemini or Anthropic publishers); else `codec`. */
  codecFor?(backend: BackendConfig, upstreamModel: string): BackendCodec | undefined
  /** The content type of a streamed answer (default `text/event-stream`). */
  readonly streamContentType?: string
  /** Splits a streamed body into events (default: the SSE parser). */
  streamParser?(): StreamParser
}

export const OPERATION_PATH: Record<Operation, string> = {
  'chat.completions': '/chat/completions',
  completions: '/completions',
  embeddings: '/embeddings',
  responses: '/responses',
  'images.generations': '/images/generations',
  'images.edits': '/images/edits',
  'audio.transcriptions': '/audio/transcriptions',
  'audio.translations': '/audio/translations',
  'audio.speech': '/audio/speech',
  moderations: '/moderations',
  rerank: '/rerank',
  realtime: '/realtime',
}

/** Splits a base URL into origin and a path prefix without a trailing slash. */
export function splitBase(base: string): { origin: string; prefix: string } {
  const u = new URL(base)
  return { origin: u.origin, prefix: u.pathname.replace(/\/+$/, '') }
}
