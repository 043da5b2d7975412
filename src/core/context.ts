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
  return new RequestState(init)
}

/**
 * A class, not an object literal: `signal` is a getter on the prototype (a getter in a literal made each
 * context through the runtime's slow path), and every field is set in one order, so every request has one
 * object shape (a spread of `init` gave requests with and without `client` different shapes).
 */
class RequestState implements RequestContext {
  readonly id: string
  readonly startedAt: number
  readonly operation: Operation
  readonly info: RequestInfo
  readonly cancel: AbortLike
  model: string
  body: Record<string, unknown>
  readonly stream: boolean
  readonly clientWantsStreamUsage: boolean
  readonly client: ClientRequest | undefined
  principal: Principal | null = null
  usage: Usage | null = null
  backendId: string | null = null
  attempts = 0
  firstTokenAt: number | null = null
  readonly responseHeaders: Record<string, string> = {}
  readonly slots = new Map<symbol, unknown>()

  constructor(init: RequestInit) {
    this.id = init.id
    this.startedAt = init.startedAt
    this.operation = init.operation
    this.info = init.info
    this.cancel = init.signal
    this.model = init.model
    this.body = init.body
    this.stream = init.stream
    this.clientWantsStreamUsage = init.clientWantsStreamUsage
    this.client = init.client
  }

  get signal(): AbortSignal {
    return realSignal(this.cancel)
  }
}
