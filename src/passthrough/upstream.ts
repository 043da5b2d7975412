import type { IncomingHttpHeaders, IncomingMessage } from 'node:http'
import { Transform, type TransformCallback, type Readable } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { BackendConfig } from '../config/schema.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { providerFor } from '../providers/index.ts'
import { stateOf, type Breakers } from '../upstream/breaker.ts'
import { ClientAbortError, type UpstreamClients } from '../upstream/client.ts'
import { failureFromError, retryAfterMsFrom, UpstreamFailure } from '../upstream/failure.ts'

/**
 * Forwarding primitives for the routes that relay bytes rather than translate bodies (passthrough routes,
 * files and batches): which headers go up and come back, the backend's credentials, its circuit breaker,
 * a byte limit enforced while a body streams, and one raw upstream request on the backend's pool.
 */

/** RFC 9110 §7.6.1 connection-specific fields, plus framing undici sets itself. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'host', 'expect', 'http2-settings'])
/**
 * The answer must come back uncompressed for its usage to be read on the way (and its size limit to mean bytes):
 * the client's accept-encoding is not forwarded, so the backend answers in identity encoding.
 */
const NOT_FORWARDED = new Set(['accept-encoding'])
/** What a client may carry to prove itself to Sluice (or to a provider): never forwarded. */
const CLIENT_CREDENTIALS = new Set(['authorization', 'api-key', 'x-api-key', 'ocp-apim-subscription-key', 'x-goog-api-key', 'cookie'])
/** A client's own AWS signature headers would clash with the gateway's. */
const CLIENT_SIGNING = /^x-amz-(date|security-token|content-sha256)$/

function connectionListed(h: IncomingHttpHeaders | Record<string, unknown>): Set<string> {
  const c = h.connection
  const v = Array.isArray(c) ? c.join(',') : typeof c === 'string' ? c : ''
  return new Set(v.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean))
}

/** The client's headers that go to the backend: end-to-end ones only, no credentials, nothing of Sluice's. */
export function forwardedRequestHeaders(h: IncomingHttpHeaders): Record<string, string> {
  const listed = connectionListed(h)
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || NOT_FORWARDED.has(name) || CLIENT_CREDENTIALS.has(name) || CLIENT_SIGNING.test(name) || name.startsWith('x-sluice-')) continue
    out[name] = Array.isArray(value) ? value.join(', ') : value
  }
  return out
}

/** The backend's response headers that go to the client (framing is the gateway's own; cookies stay behind). */
export function relayedResponseHeaders(h: Readonly<Record<string, string | string[] | undefined>>): Record<string, string | string[]> {
  const listed = connectionListed(h)
  const out: Record<string, string | string[]> = {}
  for (const [name, value] of Object.entries(h)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name) || name === 'set-cookie' || name === 'content-length') continue
    out[name] = value
  }
  return out
}

/** Where a backend lives: origin and the path its API sits under (from its url, or the provider's default). */
export function backendBase(baseUrl: string): { origin: string; prefix: string } {
  const u = new URL(baseUrl)
  return { origin: u.origin, prefix: u.pathname.replace(/\/+$/, '') }
}

/**
 * The headers that prove the gateway to the backend: the backend's static `headers` and key (in the header its
 * provider expects: Authorization, api-key, x-api-key, x-goog-api-key), then credentials that need I/O: Entra and
 * Google tokens, or a SigV4 signature over exactly this request (method, URL, `headers`, and the body's SHA-256
 * in `payloadSha256`, sent as x-amz-content-sha256 and signed).
 */
export async function backendCredentialHeaders(clients: UpstreamClients, backend: BackendConfig, baseUrl: string, req: {
  readonly method: string; readonly url: string; readonly headers: Record<string, string>; readonly payloadSha256: string | null
}, signal: AbortSignal): Promise<Record<string, string>> {
  const own = providerFor(backend.type).target(backend, 'chat.completions', '', baseUrl, false).headers
  const headers = { ...req.headers, ...lower(own) }
  if (req.payloadSha256 !== null) headers['x-amz-content-sha256'] = req.payloadSha256
  const creds = clients.credentials.of(backend)
  if (!creds) return headers
  try {
    return { ...headers, ...lower(await creds.headers({ method: req.method, url: req.url, headers, body: '' }, signal)) }
  } catch (err) {
    if (signal.aborted) throw new ClientAbortError()
    throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, err instanceof GatewayError ? err.message : `Backend "${backend.id}" has no usable credentials.`, 'connect', backend.id)
  }
}

function lower(h: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(h)) out[k.toLowerCase()] = v
  return out
}

/**
 * The backend's circuit before a call: closed passes, open refuses with 503 `no_healthy_backend` and the
 * wait, half-open lets exactly one trial through. Returns whether this call is the trial.
 */
export async function enterCircuit(breakers: Breakers, backendId: string): Promise<boolean> {
  if (!breakers.has(backendId)) return false
  const rec = (await breakers.read([backendId])).get(backendId)
  const now = breakers.now()
  const state = stateOf(rec, now)
  if (state === 'closed') return false
  if (state === 'half-open' && (await breakers.claimTrial(backendId))) return true
  const waitMs = rec && rec.openUntil > now ? rec.openUntil - now : 1000
  throw new GatewayError(GW_ERR.NO_HEALTHY_BACKEND, `Backend "${backendId}" is unavailable (its circuit is open); retry later.`, { headers: { 'retry-after': String(Math.max(1, Math.ceil(waitMs / 1000))) } })
}

/** The call's end as the circuit sees it: an answer with a status its rule counts (or a network failure) counts. */
export function leaveCircuit(breakers: Breakers, backendId: string, trial: boolean, answered: { status: number; headers: Record<string, string | string[] | undefined> } | UpstreamFailure): void {
  const failure = answered instanceof UpstreamFailure ? answered
    : new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" answered ${answered.status}.`, 'status', backendId, answered.status, retryAfterMsFrom(answered.headers))
  if (breakers.counts(backendId, failure)) void breakers.failed(backendId, failure)
  else if (trial) void breakers.succeeded(backendId)
}

/** A body that went over its limit while streaming. */
export class BodyTooLargeError extends GatewayError {
  constructor(limit: number) {
    super(GW_ERR.REQUEST_TOO_LARGE, `The request body is larger than the ${limit} bytes this route accepts.`)
  }
}

/** The client's body stopped before its end (the connection dropped or the length was not met). */
export class BodyCutError extends GatewayError {
  constructor() {
    super(GW_ERR.INVALID_REQUEST, 'The request body was not received completely.')
  }
}

/** Counts bytes through; past `limit` it fails with BodyTooLargeError (the caller answers 413). */
export class ByteLimit extends Transform {
  bytes = 0
  constructor(private readonly limit: number) {
    super()
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.bytes += chunk.length
    if (this.bytes > this.limit) return cb(new BodyTooLargeError(this.limit))
    cb(null, chunk)
  }
}

/**
 * The client's request body as a stream for undici, counted against `limit`. The client's stream is never
 * destroyed by a failure here (the answer still has to go out on its socket): over the limit it is unpiped
 * and paused; a client that goes away mid-body fails the stream with BodyCutError, which aborts the upstream.
 */
export function limitedBody(raw: IncomingMessage, limit: number): ByteLimit {
  const limiter = new ByteLimit(limit)
  let ended = false
  raw.once('end', () => { ended = true })
  const cut = () => { if (!ended && !limiter.destroyed) limiter.destroy(new BodyCutError()) }
  raw.once('aborted', cut)
  raw.once('close', cut)
  raw.on('error', cut)
  // Persistent: undici destroys the body again when it aborts the upstream call, and that must not go unheard.
  limiter.on('error', () => { raw.unpipe(limiter); raw.pause() })
  raw.pipe(limiter)
  return limiter
}

/** Reads a (small) body whole, within `limit`. */
export async function readWhole(raw: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(raw.headers['content-length'])
  if (Number.isFinite(declared) && declared > limit) throw new BodyTooLargeError(limit)
  const limiter = limitedBody(raw, limit)
  const chunks: Buffer[] = []
  for await (const c of limiter) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

export interface RawCall {
  readonly method: string
  /** Path and query at the origin. */
  readonly path: string
  readonly headers: Record<string, string>
  readonly body: Readable | Buffer | string | null
  readonly signal: AbortSignal
}

/**
 * One request on the backend's keep-alive pool. `timeout` bounds the wait for the response headers (a free
 * connection included), `idleTimeout` the silence between body chunks. Network failures become
 * UpstreamFailure (a message without URLs or keys); a body that failed on the client's side rethrows that.
 */
export async function callBackend(clients: UpstreamClients, backend: BackendConfig, origin: string, call: RawCall): Promise<Dispatcher.ResponseData> {
  if (call.signal.aborted) throw new ClientAbortError()
  const attempt = new AbortController()
  const onAbort = () => attempt.abort()
  call.signal.addEventListener('abort', onAbort, { once: true })
  const timer = setTimeout(() => attempt.abort(new UpstreamFailure(GW_ERR.GATEWAY_TIMEOUT, `Backend "${backend.id}" did not answer within ${backend.timeout} ms.`, 'timeout', backend.id)), backend.timeout)
  let bodyError: Error | null = null
  if (call.body && typeof call.body === 'object' && 'once' in call.body && typeof (call.body as Readable).once === 'function') {
    (call.body as Readable).on('error', (e: Error) => { bodyError ??= e })
  }
  try {
    return await clients.poolFor(backend, origin).request({
      method: call.method as Dispatcher.HttpMethod,
      path: call.path,
      headers: call.headers,
      body: call.body,
      signal: attempt.signal,
      headersTimeout: backend.timeout,
      bodyTimeout: backend.idleTimeout,
    })
  } catch (err) {
    const failedBody = bodyError as Error | null
    if (failedBody instanceof GatewayError) throw failedBody
    if (call.signal.aborted) throw new ClientAbortError()
    const reason = attempt.signal.reason
    if (reason instanceof UpstreamFailure) throw reason
    throw failureFromError(err, backend.id)
  } finally {
    clearTimeout(timer)
    call.signal.removeEventListener('abort', onAbort)
  }
}

/** Drops an upstream answer's body: undici's stream errors on destroy, and that error is expected, not a crash. */
export function discard(body: Readable): void {
  body.on('error', () => {})
  body.destroy()
}
