import type { WebSocket, WebSocketServer } from 'ws'
import { lazyPackage } from '../core/lazy-package.ts'
import type { BackendConfig } from '../config/schema.ts'
import type { Credentials } from '../providers/credentials/types.ts'
import { splitBase } from '../providers/types.ts'

/** `ws`, loaded by the first Realtime session, not at start (src/core/lazy-package.ts says why). */
export const wsPackage = lazyPackage<{ WebSocket: typeof WebSocket; WebSocketServer: typeof WebSocketServer }>('ws')

/** Backend types that speak OpenAI's Realtime WebSocket protocol (Azure OpenAI included). */
const REALTIME_TYPES: ReadonlySet<BackendConfig['type']> = new Set(['openai', 'openai-compatible', 'mock', 'azure-openai'])

export function speaksRealtime(backend: BackendConfig): boolean {
  return REALTIME_TYPES.has(backend.type)
}

export interface RealtimeTarget {
  /** ws:// or wss:// URL with the model (or deployment) in the query. */
  readonly url: string
  readonly headers: Record<string, string>
}

/**
 * Where a backend's Realtime endpoint is: OpenAI's `/v1/realtime?model=`; Azure's v1 surface
 * `/openai/v1/realtime?model=` (apiVersion `v1`/`preview`), else the classic
 * `/openai/realtime?api-version=…&deployment=…`. The backend's own key goes in its header (bearer, `api-key`).
 */
export function realtimeTarget(backend: BackendConfig, baseUrl: string, upstreamModel: string): RealtimeTarget {
  const { origin, prefix } = splitBase(baseUrl)
  const wsOrigin = origin.replace(/^http/, 'ws')
  const headers: Record<string, string> = { ...backend.headers }
  if (backend.type === 'azure-openai') {
    if (backend.auth?.apiKey) headers['api-key'] = backend.auth.apiKey
    const v = backend.apiVersion
    if (v === 'v1' || v === 'preview') {
      const q = new URLSearchParams({ model: upstreamModel, ...(v === 'preview' ? { 'api-version': 'preview' } : {}) })
      return { url: `${wsOrigin}${prefix}/openai/v1/realtime?${q}`, headers }
    }
    return { url: `${wsOrigin}${prefix}/openai/realtime?${new URLSearchParams({ 'api-version': v, deployment: upstreamModel })}`, headers }
  }
  if (backend.auth?.apiKey) headers.authorization = `Bearer ${backend.auth.apiKey}`
  const root = prefix === '' ? '/v1' : prefix
  return { url: `${wsOrigin}${root}/realtime?${new URLSearchParams({ model: upstreamModel })}`, headers }
}

export class UpstreamConnectError extends Error {
  constructor(message: string, readonly status: number | null) {
    super(message)
  }
}

export interface ConnectOptions {
  readonly target: RealtimeTarget
  readonly credentials: Credentials | null
  /** Client headers that go up unchanged (`openai-beta`: the beta event names). */
  readonly passHeaders: Record<string, string>
  readonly timeoutMs: number
  readonly maxPayload: number
  readonly signal: AbortSignal
}

/**
 * Opens the backend's WebSocket (credentials added per attempt, so an Entra token is current). Resolves
 * once the handshake is done; rejects with UpstreamConnectError (the backend's HTTP status when it refused
 * the upgrade) on refusal, timeout or abort, leaving no socket behind.
 */
export async function connectUpstream(o: ConnectOptions): Promise<WebSocket> {
  let headers = { ...o.passHeaders, ...o.target.headers }
  if (o.credentials) {
    try {
      headers = { ...headers, ...(await o.credentials.headers({ method: 'GET', url: o.target.url.replace(/^ws/, 'http'), headers, body: '' }, o.signal)) }
    } catch {
      throw new UpstreamConnectError('the backend has no usable credentials', null)
    }
  }
  if (o.signal.aborted) throw new UpstreamConnectError('the client went away', null)
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new (wsPackage().WebSocket)(o.target.url, { headers, handshakeTimeout: o.timeoutMs, maxPayload: o.maxPayload, perMessageDeflate: false })
    let settled = false
    const fail = (err: UpstreamConnectError) => {
      if (settled) return
      settled = true
      o.signal.removeEventListener('abort', onAbort)
      ws.removeAllListeners()
      ws.on('error', () => {})
      ws.terminate()
      reject(err)
    }
    const onAbort = () => fail(new UpstreamConnectError('the client went away', null))
    o.signal.addEventListener('abort', onAbort, { once: true })
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      fail(new UpstreamConnectError(`the backend refused the WebSocket upgrade with status ${res.statusCode}`, res.statusCode ?? null))
    })
    ws.once('error', (err) => fail(new UpstreamConnectError(`the backend could not be reached (${String((err as Error).message).slice(0, 120)})`, null)))
    ws.once('open', () => {
      if (settled) return
      settled = true
      o.signal.removeEventListener('abort', onAbort)
      ws.removeAllListeners()
      ws.on('error', () => {}) // until the session attaches its own handlers
      // The backend speaks first (session.created): nothing is read until the session listens.
      ws.pause()
      resolve(ws)
    })
  })
}
