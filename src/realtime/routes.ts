import type { RequestIds } from '../core/request-id.ts'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type WebSocket from 'ws'
import type { WebSocketServer } from 'ws'
import { clipText } from '../core/bounded.ts'
import { createRequestContext, type Principal } from '../core/context.ts'
import { GatewayError, GW_ERR, toGatewayError } from '../core/errors.ts'
import { modelAllowed } from '../config/snapshot.ts'
import type { ModelConfig } from '../config/schema.ts'
import type { Ledger } from '../ledger/ledger.ts'
import { presentedKey, type Authenticator } from '../server/auth.ts'
import type { InflightLimits } from '../server/inflight-limits.ts'
import type { Runtime } from '../server/runtime.ts'
import type { Telemetry } from '../telemetry/telemetry.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import { UpstreamFailure } from '../upstream/failure.ts'
import { noHealthyBackend } from '../upstream/failover.ts'
import type { BaseUrlOf } from '../upstream/router.ts'
import { SessionGovernor } from './governance.ts'
import { RealtimeMetrics } from './metrics.ts'
import { RealtimeSession } from './session.ts'
import { connectUpstream, realtimeTarget, speaksRealtime, UpstreamConnectError, wsPackage } from './upstream.ts'

export interface RealtimeDeps {
  readonly runtime: () => Runtime
  readonly auth: Authenticator
  /** Per-consumer concurrency: a session holds one slot for its whole life, like a stream. */
  readonly inflight: InflightLimits
  readonly clients: UpstreamClients
  readonly baseUrlOf: BaseUrlOf
  readonly ledger: Ledger | null
  readonly telemetry: Telemetry
  readonly now: () => number
  readonly logger: Logger
  /** Makes the ids of sessions whose client sent none. */
  readonly requestIds: RequestIds
}

/** The Realtime front doors: OpenAI's, and Azure OpenAI's classic and v1 surfaces. Model from `model` (or `deployment`). */
const PATHS: ReadonlyMap<string, 'model' | 'deployment'> = new Map([['/v1/realtime', 'model'], ['/openai/v1/realtime', 'model'], ['/openai/realtime', 'deployment']])
/** The browser SDKs' subprotocol that carries the key (a browser cannot set an Authorization header). */
const KEY_PROTOCOL = 'openai-insecure-api-key.'
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
const UPGRADE_REQUIRED = { status: 426, type: 'invalid_request_error', code: 'upgrade_required' } as const
/** Largest server event relayed (a `session.created` with long instructions and tools; audio deltas are small). */
const UPSTREAM_MAX_PAYLOAD = 32 * 1024 * 1024

/**
 * `GET /v1/realtime?model=…` (and Azure's `/openai/realtime?deployment=…`, `/openai/v1/realtime?model=…`)
 * as WebSocket upgrades on the data-plane listener. The handshake is authenticated like any request
 * (Authorization / api-key headers, or the browser SDKs' `openai-insecure-api-key.<key>` subprotocol);
 * a refusal is an HTTP answer before the upgrade. The session is pinned to one backend of the model's
 * pool (chosen by the router's strategy and breakers) and relayed by RealtimeSession.
 */
export function registerRealtime(app: FastifyInstance, d: RealtimeDeps): void {
  const logger = d.logger.child({ component: 'realtime' })
  const metrics = new RealtimeMetrics(d.telemetry.prom.registry)
  const sessions = new Set<RealtimeSession>()
  let closing = false
  // One server per message-size limit (it is read from the config at each upgrade; a reload may change it).
  const servers = new Map<number, WebSocketServer>()
  const answered = new WeakMap<IncomingMessage, { id: string; backend: string }>()
  const serverFor = (maxPayload: number) => {
    let s = servers.get(maxPayload)
    if (!s) {
      s = new (wsPackage().WebSocketServer)({ noServer: true, maxPayload, perMessageDeflate: false, clientTracking: false, handleProtocols: (offered) => (offered.has('realtime') ? 'realtime' : false) })
      // The 101 carries the same headers a proxied answer does: the request id and the member that serves it.
      s.on('headers', (lines, req) => {
        const a = answered.get(req)
        if (a) lines.push(`x-request-id: ${a.id}`, `x-sluice-backend: ${a.backend}`)
      })
      servers.set(maxPayload, s)
    }
    return s
  }

  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {})
    const url = req.url ?? '/'
    const q = url.indexOf('?')
    const path = q === -1 ? url : url.slice(0, q)
    const param = PATHS.get(path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path)
    const given = req.headers['x-request-id']
    const id = typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : d.requestIds.next()
    if (!param) return refuse(socket, id, new GatewayError(GW_ERR.NOT_FOUND, `Unknown endpoint GET ${clipText(path)} (WebSocket).`))
    if (closing) return refuse(socket, id, new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The gateway is shutting down; retry on another replica.', { headers: { 'retry-after': '1' } }))
    const query = new URLSearchParams(q === -1 ? '' : url.slice(q + 1))
    void open(req, socket, head, id, path, query, param).catch((err) => {
      const e = toGatewayError(err)
      if (e.code === GW_ERR.INTERNAL.code) logger.error({ err, reqId: id }, 'realtime: the session could not be opened')
      refuse(socket, id, e)
    })
  })

  const open = async (req: IncomingMessage, socket: Duplex, head: Buffer, id: string, path: string, query: URLSearchParams, param: 'model' | 'deployment'): Promise<void> => {
    const rt = d.runtime()
    const snapshot = rt.snapshot
    const cfg = snapshot.config.realtime
    const headers = headersWithKey(req, query, path)
    const p = d.auth.resolve(snapshot, headers, req.socket.remoteAddress)
    const principal: Principal = p instanceof Promise ? await p : p
    const requested = query.get(param) ?? query.get('model') ?? ''
    if (requested === '') throw new GatewayError(GW_ERR.INVALID_REQUEST, `Missing required parameter: '${param}' (the model of the session, in the query string).`, { param })
    const model = snapshot.models.get(requested)
    if (!model) throw new GatewayError(GW_ERR.MODEL_NOT_FOUND, `The model "${clipText(requested)}" does not exist or you do not have access to it.`, { param })
    if (!modelAllowed(snapshot, principal.productId, model.name)) throw new GatewayError(GW_ERR.MODEL_NOT_ALLOWED, `Your key may not use the model "${model.name}".`, { param })
    if (model.target === undefined) throw new GatewayError(GW_ERR.UNSUPPORTED_OPERATION, `The model "${model.name}" is a router, race or split model; a Realtime session needs a model served by a pool or backend.`, { param })
    const release = d.inflight.acquire(snapshot, principal)
    const abort = new AbortController()
    const onGone = () => abort.abort()
    socket.once('close', onGone)
    let upstream: { ws: WebSocket; backendId: string }
    try {
      upstream = await connectMember(rt, model, id, principal, headers, cfg.connectTimeout, abort.signal, req)
    } catch (err) {
      release()
      throw err
    } finally {
      socket.off('close', onGone)
    }
    if (abort.signal.aborted || socket.destroyed) {
      release()
      upstream.ws.terminate()
      return
    }
    answered.set(req, { id, backend: upstream.backendId })
    serverFor(cfg.maxMessageBytes).handleUpgrade(req, socket, head, (client) => {
      const governor = new SessionGovernor({
        sessionId: id, model: model.name, backendId: upstream.backendId, principal,
        info: { method: 'GET', path, ip: req.socket.remoteAddress ?? '', headers },
        policies: rt.pipelineFor(principal.productId).policies, now: d.now,
        ledger: d.ledger ?? undefined, telemetry: d.telemetry, logger,
      })
      metrics.opened()
      const session = new RealtimeSession({
        id, model: model.name, client, upstream: upstream.ws, governor, cfg, now: d.now, logger,
        onEnd: (reason) => {
          sessions.delete(session)
          release()
          metrics.closed(model.name, reason)
        },
      })
      sessions.add(session)
    })
  }

  /**
   * The first member of the model's pool whose Realtime endpoint accepts the session: the router's plan
   * (strategy, affinity, breakers, fallbacks); a member that fails is counted against its breaker and the
   * next one is tried, up to the model's attempts. Members of providers without Realtime are passed over.
   */
  const connectMember = async (rt: Runtime, model: ModelConfig, id: string, principal: Principal, headers: IncomingMessage['headers'], timeoutMs: number, signal: AbortSignal, req: IncomingMessage) => {
    const ctx = createRequestContext({
      id, startedAt: d.now(), operation: 'realtime', info: { method: 'GET', path: '/v1/realtime', ip: req.socket.remoteAddress ?? '', headers },
      signal, model: model.name, body: {}, stream: true, clientWantsStreamUsage: true,
    })
    ctx.principal = principal
    const plan = rt.router.planFor(ctx, model)
    const beta = req.headers['openai-beta']
    const passHeaders: Record<string, string> = typeof beta === 'string' && beta.length <= 200 ? { 'openai-beta': beta } : {}
    let tries = 0
    let last: GatewayError | null = null
    let anyRealtime = false
    while (tries < model.maxAttempts) {
      const choice = await plan.next()
      if (!choice) break
      const backend = choice.backend
      if (!speaksRealtime(backend)) continue
      anyRealtime = true
      tries++
      const upstreamModel = backend.models?.[choice.model.name] ?? choice.model.name
      try {
        const ws = await connectUpstream({
          target: realtimeTarget(backend, d.baseUrlOf(backend), upstreamModel), credentials: d.clients.credentials.of(backend),
          passHeaders, timeoutMs, maxPayload: UPSTREAM_MAX_PAYLOAD, signal,
        })
        if (choice.trial) void rt.router.breakers.succeeded(backend.id)
        return { ws, backendId: backend.id }
      } catch (err) {
        if (signal.aborted) throw new GatewayError(GW_ERR.INVALID_REQUEST, 'The client went away.')
        const status = err instanceof UpstreamConnectError ? err.status : null
        // A 4xx other than auth and rate limits is about this request (an unknown deployment): no breaker.
        const backendFault = status === null || status >= 500 || status === 401 || status === 403 || status === 429
        const failure = new UpstreamFailure(status === 429 ? GW_ERR.RATE_LIMIT_EXCEEDED : GW_ERR.BAD_GATEWAY, `Backend "${backend.id}" did not accept the Realtime session.`, status === null ? 'connect' : 'status', backend.id, status)
        if (backendFault) plan.note(backend.id, await rt.router.breakers.failed(backend.id, failure))
        logger.debug({ reqId: id, backend: backend.id, reason: (err as Error).message }, 'realtime: backend refused the session; trying the next member')
        last = failure
      }
    }
    if (!anyRealtime && last === null) {
      const comeback = plan.comeback()
      if (comeback !== null) throw noHealthyBackend(model.name, comeback, d.now())
      throw new GatewayError(GW_ERR.UNSUPPORTED_OPERATION, `No backend of the model "${model.name}" speaks the Realtime API (OpenAI, Azure OpenAI and OpenAI-compatible backends do).`)
    }
    throw last ?? noHealthyBackend(model.name, plan.comeback(), d.now())
  }

  // A plain GET on a Realtime path (no upgrade) is told what it needs.
  for (const path of PATHS.keys()) {
    app.get(path, async (req, reply) => reply.code(426).header('upgrade', 'websocket').header('x-request-id', req.id)
      .send(new GatewayError(UPGRADE_REQUIRED, `${path} is a WebSocket endpoint: open it with a WebSocket (Realtime) client.`).toJSON()))
  }

  // Shutdown: sessions have no natural end, so they are told to go (1001) when the listener closes.
  app.addHook('preClose', (done) => {
    closing = true
    for (const s of [...sessions]) s.shutdown()
    for (const s of servers.values()) s.close()
    done()
  })
}

/** The handshake's headers, with a key from the subprotocol (browsers) or Azure's `api-key` query parameter. */
function headersWithKey(req: IncomingMessage, query: URLSearchParams, path: string): IncomingMessage['headers'] {
  if (presentedKey(req.headers) !== null) return req.headers
  const protocols = req.headers['sec-websocket-protocol']
  if (typeof protocols === 'string') {
    for (const p of protocols.split(',')) {
      const t = p.trim()
      if (t.startsWith(KEY_PROTOCOL) && t.length > KEY_PROTOCOL.length) return { ...req.headers, authorization: `Bearer ${t.slice(KEY_PROTOCOL.length)}` }
    }
  }
  const queryKey = path.startsWith('/openai/') ? query.get('api-key') : null
  if (queryKey) return { ...req.headers, 'api-key': queryKey }
  return req.headers
}

const REASONS: Record<number, string> = { 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 413: 'Payload Too Large', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout' }

/** A refused handshake: an HTTP answer in OpenAI's error shape on the raw socket, then the connection is closed. */
function refuse(socket: Duplex, id: string, err: GatewayError): void {
  if (socket.destroyed || !socket.writable) return void socket.destroy()
  const body = JSON.stringify(err.toJSON())
  const extra = Object.entries(err.headers).filter(([k, v]) => /^[a-z0-9-]{1,64}$/i.test(k) && !/[\r\n]/.test(v)).map(([k, v]) => `${k}: ${v}\r\n`).join('')
  socket.end(`HTTP/1.1 ${err.status} ${REASONS[err.status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nx-request-id: ${id}\r\n${extra}connection: close\r\n\r\n${body}`)
  setTimeout(() => socket.destroy(), 1000).unref()
}

