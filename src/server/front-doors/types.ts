import type { Operation, ClientRequest } from '../../core/context.ts'
import type { GatewayError } from '../../core/errors.ts'
import type { JsonResult } from '../../core/pipeline.ts'
import type { SseFrame } from '../../core/sse.ts'
import type { ApiSchema } from '../../translate/types.ts'
import type { RequestCeilings } from '../validate.ts'

/** A client request as the kernel takes it: the hub body policies see, plus the client's own when it differs. */
export interface ParsedRequest {
  readonly model: string
  readonly body: Record<string, unknown>
  readonly stream: boolean
  readonly clientWantsStreamUsage: boolean
  readonly client?: ClientRequest
}

/** Writes one response stream in the door's schema; fresh per request (encoders keep block state). */
export interface StreamWriter {
  /**
   * The bytes for one relayed frame ('' writes nothing). `json` is the frame's parsed hub chunk (null for
   * `[DONE]` and passthrough carrier frames); `modified` says a policy edited it.
   */
  frame(frame: SseFrame, json: Record<string, unknown> | null, modified: boolean): string | Uint8Array
  /** The bytes that end a stream that ran to its end. */
  end(): string
  /** An error after the headers went out: the door's in-stream error event, then the end. */
  error(err: GatewayError): string
  /**
   * True when `frame` forwards an unmodified frame's own bytes without reading `json` (the relay may then
   * pass such frames unparsed).
   */
  readonly forwardsUnchanged?: boolean
}

/**
 * One client-facing API schema (the OpenAI routes, Anthropic's `/v1/messages`): how a request becomes a hub
 * request, how hub answers (JSON and stream chunks) and errors go back in the client's shape. The request path
 * in proxy.ts is the same for every door, so limits, caches, ledger, metrics, pools and fallbacks are too.
 */
export interface FrontDoor {
  readonly schema: ApiSchema
  /** Validates and translates the body (throws the documented 400s). */
  parse(operation: Operation, body: unknown, modelFromPath: string | null, headers: Readonly<Record<string, string | string[] | undefined>>, ceilings?: RequestCeilings): ParsedRequest
  /** The JSON answer's text. */
  json(result: JsonResult, requestId: string): string
  streamWriter(operation: Operation, model: string, requestId: string): StreamWriter
  /** An error answer's body. */
  errorBody(err: GatewayError): unknown
  /** Adds the door's own response headers (e.g. Anthropic's rate-limit names beside the x-ratelimit-* ones). */
  headers(h: Record<string, string>, requestId: string): Record<string, string>
}
