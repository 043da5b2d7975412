import { Pool } from './undici-pool.ts'
import type { BackendConfig } from '../config/schema.ts'
import type { JsonResult, StreamResult } from '../core/pipeline.ts'
import { SseParser, type SseFrame } from '../core/sse.ts'
import type { UpstreamTarget } from '../providers/types.ts'
import { CredentialsCache, credentialsFor } from '../providers/credentials/index.ts'
import { LatencyStats } from './latency.ts'
import type { StreamParser } from '../translate/types.ts'
import { failureFromError, UpstreamFailure, retryAfterMsFrom } from './failure.ts'
import { GW_ERR } from '../core/errors.ts'
import type { AbortLike } from '../core/request-abort.ts'
import { UpstreamExchange, type EventSplitter, type ExchangeHead } from './exchange.ts'

/** Upstream response headers worth passing to the client; everything else stays behind the gateway. */
const FORWARDED_HEADERS = ['retry-after', 'retry-after-ms', 'openai-processing-ms', 'openai-model', 'x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens']
/** Headers of error answers that codecs read (never forwarded: error answers are rebuilt by the gateway). */
const ERROR_DETAIL_HEADERS = ['x-amzn-errortype']

/**
 * Keep-alive connection pools, one per backend origin, kept across config reloads so a reload neither
 * drops requests in flight nor reconnects; pools no snapshot uses any more are closed after a reload.
 */
export class UpstreamClients {
  private readonly pools = new Map<string, Pool>()
  /** Backend credentials (tokens, signers), kept across reloads like the pools. */
  readonly credentials: CredentialsCache
  /** How fast each backend answers (least-latency pools), kept across reloads. */
  readonly latency = new LatencyStats()

  /** `now` times token lifetimes (the gateway's clock, so tests cross an expiry without sleeping). */
  constructor(now?: () => number) {
    this.credentials = new CredentialsCache(now ? (b) => credentialsFor(b, now) : credentialsFor)
  }

  poolFor(backend: BackendConfig, origin: string): Pool {
    const key = `${backend.id}|${origin}|${backend.maxConnections}|${backend.connectTimeout}`
    let pool = this.pools.get(key)
    if (!pool) {
      pool = new Pool(origin, {
        connections: backend.maxConnections,
        pipelining: 1,
        keepAliveTimeout: 30_000,
        connect: { timeout: backend.connectTimeout },
      })
      this.pools.set(key, pool)
    }
    return pool
  }

  /** Closes pools for backends no longer configured (they finish what they have in flight first). */
  retain(backends: readonly BackendConfig[]): void {
    const live = new Set(backends.map((b) => `${b.id}|`))
    for (const [key, pool] of this.pools) {
      if (![...live].some((prefix) => key.startsWith(prefix))) {
        this.pools.delete(key)
        void pool.close().catch(() => {})
      }
    }
  }

  async close(): Promise<void> {
    this.credentials.close()
    const all = [...this.pools.values()]
    this.pools.clear()
    await Promise.allSettled(all.map((p) => p.close()))
  }
}

export interface SendOptions {
  readonly backend: BackendConfig
  readonly target: UpstreamTarget
  readonly body: string
  readonly stream: boolean
  /** The caller's abort (only listened to: a `RequestAbort` stays free of `AbortSignal`s). */
  readonly signal: AbortLike
  /** The content type of a streamed answer (default `text/event-stream`). */
  readonly streamContentType?: string
  /** Splits the streamed body into events (default: SSE). */
  readonly streamParser?: () => StreamParser
}

/** One attempt against one backend. Network failures become UpstreamFailure; HTTP errors come back as results. */
export async function sendUpstream(pool: Pool, opts: SendOptions): Promise<JsonResult | StreamResult> {
  const { backend, target, signal } = opts
  if (signal.aborted) throw abortError()
  const streamType = opts.streamContentType ?? 'text/event-stream'
  let ended = false
  const exchange = new UpstreamExchange<SseFrame>(
    (head) => (opts.stream && head.status === 200 && (head.headers['content-type'] ?? '').includes(streamType) ? (opts.streamParser ? opts.streamParser() as EventSplitter<SseFrame> : new SseParser()) : null),
    (err) => (signal.aborted || ended ? abortError() : failureFromError(err, backend.id)),
  )
  pool.dispatch({
    method: 'POST',
    path: target.path,
    headers: { ...target.headers, 'content-type': 'application/json', accept: opts.stream ? streamType : 'application/json' },
    body: opts.body,
    headersTimeout: backend.timeout,
    bodyTimeout: backend.idleTimeout,
  }, exchange)
  // `timeout` covers the whole wait for the response headers, the wait for a free pooled connection included:
  // undici's own headersTimeout starts only once the request is on a socket, so a backend whose connections
  // are all taken by one consumer's long streams would otherwise keep everyone else waiting without a 504.
  // A request still queued in the pool is dropped by undici only once a connection frees up, so the timer
  // and the caller's abort settle the attempt themselves.
  const timer = setTimeout(() => {
    exchange.abort(new UpstreamFailure(GW_ERR.GATEWAY_TIMEOUT, `Backend "${backend.id}" did not answer within ${backend.timeout} ms (waiting for a connection included).`, 'timeout', backend.id))
  }, backend.timeout)
  const onCallerAbort = () => exchange.abort(abortError())
  signal.addEventListener('abort', onCallerAbort, { once: true })
  let head: ExchangeHead
  try {
    head = await exchange.head
  } catch (err) {
    signal.removeEventListener('abort', onCallerAbort)
    throw err
  } finally {
    clearTimeout(timer)
  }
  const headers: Record<string, string> = {}
  for (const name of FORWARDED_HEADERS) {
    const v = head.headers[name]
    if (v !== undefined) headers[name] = v
  }
  if (exchange.streaming) {
    const abort = () => {
      if (ended) return
      ended = true
      signal.removeEventListener('abort', onCallerAbort)
      // Called after every stream, ended or not: an error (and its stack) only for one really cut short.
      if (!exchange.finished) exchange.abort(abortError())
    }
    const result: StreamResult = { kind: 'stream', status: 200, headers, frames: exchange.events(), abort }
    return result
  }
  let text: string
  try {
    text = (await exchange.body()).toString('utf8')
  } finally {
    signal.removeEventListener('abort', onCallerAbort)
  }
  let body: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(text)
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error('not an object')
    body = parsed as Record<string, unknown>
  } catch {
    if (head.status >= 200 && head.status < 300) {
      throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backend.id}" sent a response that is not JSON.`, 'status', backend.id, head.status)
    }
    body = { error: { message: `Backend "${backend.id}" answered ${head.status}.`, type: 'api_error', param: null, code: null } }
    text = null as unknown as string
  }
  if (head.status >= 400) {
    for (const name of ERROR_DETAIL_HEADERS) {
      const v = head.headers[name]
      if (v !== undefined) headers[name] = v.slice(0, 200)
    }
  }
  const result: JsonResult = { kind: 'json', status: head.status, headers, body, text: text ?? null }
  if (head.status === 429 || head.status === 503) {
    const wait = retryAfterMsFrom(head.headers)
    if (wait !== null) result.headers['retry-after-ms'] = String(Math.ceil(wait))
  }
  return result
}

export class ClientAbortError extends Error {
  constructor() {
    super('client closed the request')
    this.name = 'AbortError'
  }
}

function abortError(): ClientAbortError {
  return new ClientAbortError()
}
