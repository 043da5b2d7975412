import type { ApiSchema } from '../translate/types.ts'
import type { Usage } from './usage.ts'
import { realSignal, type AbortLike, type RequestAbort } from './request-abort.ts'

/** Who is calling, resolved by auth. */
export interface Principal {
  readonly consumerId: string
  readonly productId: string | null
  readonly metadata: Readonly<Record<string, string>>
  /** How the caller proved who it is: a gateway key or a JWT (products may require one or the other). */
  readonly via?: 'key' | 'jwt'
}

/** Which front door the request came through; the body shape follows from it. */
export type Operation = 'chat.completions' | 'completions' | 'embeddings' | 'responses' | 'realtime' | MediaOperation

/** The OpenAI endpoints beyond text generation (src/media/): their bodies are not chat-shaped. */
export type MediaOperation = 'images.generations' | 'images.edits' | 'audio.transcriptions' | 'audio.translations' | 'audio.speech' | 'moderations' | 'rerank'

export interface RequestInfo {
  readonly method: string
  readonly path: string
  readonly ip: string
  /** Lower-cased header names. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>
}

/**
 * Per-request state shared by the pipeline stages. Policies keep private state in `slots` under their
 * own symbol instead of adding fields here.
 */
export interface RequestContext {
  readonly id: string
  readonly startedAt: number
  readonly operation: Operation
  readonly info: RequestInfo
  /**
   * Aborted when the client goes away. What the request path listens to: a `RequestAbort` costs no
   * `AbortSignal` unless something asks for `signal`.
   */
  readonly cancel: AbortLike
  /** `cancel` as a real `AbortSignal` (fetch, `events.once`, `AbortSignal.any`), made on first use. */
  readonly signal: AbortSignal
  principal: Principal | null
  /** Public model name as the client asked for it. */
  model: string
  /** The parsed request body; policies may edit it before dispatch (parsed once, serialised once). */
  body: Record<string, unknown>
  readonly stream: boolean
  /** Whether the client itself asked for usage in the stream (we may add it upstream). */
  readonly clientWantsStreamUsage: boolean
  usage: Usage | null
  backendId: string | null
  attempts: number
  /** Set when a backend produced the first byte of content. */
  firstTokenAt: number | null
  readonly responseHeaders: Record<string, string>
  readonly slots: Map<symbol, unknown>
  /**
   * Set when the request came through a front door of another schema than the hub's (e.g. `/v1/messages`):
   * the client's own body, so a backend of that same schema gets it untouched (model mapped), and what the
   * door's translation to the hub omitted (reported only when the request is translated).
   */
  readonly client?: ClientRequest
}

export interface ClientRequest {
  readonly schema: ApiSchema
  readonly body: Record<string, unknown>
  readonly omitted: readonly string[]
  /** Client headers that go up with a passthrough request (e.g. `anthropic-beta`: the body may need them). */
  readonly headers?: Readonly<Record<string, string>>
  /** Only this backend may serve the request (a Responses follow-up whose conversation state that backend keeps). */
  readonly backend?: string
}

/** What a new request context is made from; everything else starts empty (no principal, usage or attempts). */
export type RequestInit = Pick<RequestContext, 'id' | 'startedAt' | 'operation' | 'info' | 'model' | 'body' | 'stream' | 'clientWantsStreamUsage' | 'client'> & {
  readonly signal: AbortSignal | RequestAbort
}

export function createRequestContext(init: RequestInit): RequestContext {
  // Every field named, in one order: one object shape for every request (a spread of `init` copied it
  // generically and gave requests with and without `client` different shapes).
  return {
    id: init.id,
    startedAt: init.startedAt,
    operation: init.operation,
    info: init.info,
    cancel: init.signal,
    get signal(): AbortSignal { return realSignal(this.cancel) },
    model: init.model,
    body: init.body,
    stream: init.stream,
    clientWantsStreamUsage: init.clientWantsStreamUsage,
    client: init.client,
    principal: null,
    usage: null,
    backendId: null,
    attempts: 0,
    firstTokenAt: null,
    responseHeaders: {},
    slots: new Map(),
  }
}
