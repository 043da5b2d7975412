import { createHash } from 'node:crypto'
import { once } from 'node:events'
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods } from 'fastify'
import type { BackendConfig } from '../config/schema.ts'
import { GatewayError, GW_ERR, toGatewayError } from '../core/errors.ts'
import type { Snapshot } from '../config/snapshot.ts'
import { admissionHook } from '../server/front-door.ts'
import type { Authenticator } from '../server/auth.ts'
import type { BodyBudget } from '../server/body-guard.ts'
import type { InflightLimits } from '../server/inflight-limits.ts'
import { refuseBeforeBody, sendError, type ProxyDeps } from '../server/proxy.ts'
import type { Runtime } from '../server/runtime.ts'
import { ClientAbortError, type UpstreamClients } from '../upstream/client.ts'
import { UpstreamFailure } from '../upstream/failure.ts'
import type { BaseUrlOf } from '../upstream/router.ts'
import type { PassthroughRoute } from './config.ts'
import { admitCall, startCall, type RelayedCall } from './call.ts'
import { unsafeSubPath } from './path.ts'
import { UsageTap } from './usage-tap.ts'
import {
  backendBase, backendCredentialHeaders, BodyCutError, BodyTooLargeError, callBackend, discard, enterCircuit, forwardedRequestHeaders,
  leaveCircuit, limitedBody, readWhole, relayedResponseHeaders,
} from './upstream.ts'

export interface PassthroughDeps {
  readonly proxy: ProxyDeps
  readonly runtime: () => Runtime
  readonly auth: Authenticator
  readonly budget: BodyBudget
  readonly inflight: InflightLimits
  readonly clients: UpstreamClients
  readonly baseUrlOf: BaseUrlOf
  /** The routes of the configuration the gateway started with (prefixes are routes; their settings follow reloads). */
  readonly routes: readonly PassthroughRoute[]
}

const METHODS: HTTPMethods[] = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']

/** How long a connection whose body was refused unread stays open for the client to read the answer. */
const REFUSED_LINGER_MS = 1000

/**
 * `passthrough:` routes: every method and sub-path under a prefix forwarded to one backend, for a provider's
 * native API. Sluice's key is required (checked from the headers before any byte of the body is read); the
 * client's credentials and hop-by-hop headers are stripped and the backend's are injected; the body goes up
 * byte for byte, streamed (read whole first, within the limit, only where a SigV4 signature must cover its
 * hash); the answer comes back as it arrives, its token usage read on the way. The product's request-rate
 * limits, the backend's circuit breaker, the size limits and a ledger row per call apply as to any request.
 *
 * The routes live in their own encapsulated plugin whose content-type parser reads nothing, so a body is
 * never parsed (or buffered) as the JSON routes' bodies are.
 */
export function registerPassthrough(app: FastifyInstance, deps: PassthroughDeps): void {
  if (deps.routes.length === 0) return
  void app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', (_req, _payload, done) => done(null, undefined))
    const snapshot = deps.runtime().snapshot
    for (const route of deps.routes) {
      // Only a SigV4 backend's body is held (to hash it before signing): only then is it reserved in the budget.
      const signs = snapshot.backends.get(route.backend)?.auth?.awsSigV4 !== undefined
      const onRequest = admissionHook({
        runtime: deps.runtime, auth: deps.auth, budget: deps.budget, inflight: deps.inflight, bodyLimit: signs ? route.maxRequestBytes : 0,
        refuse: (req, reply, err) => refuseBeforeBody(deps.proxy, req, reply, 'chat.completions', err),
      })
      const handler = (req: FastifyRequest, reply: FastifyReply) => forward(deps, route.prefix, req, reply)
      scope.route({ method: METHODS, url: route.prefix, onRequest, handler })
      scope.route({ method: METHODS, url: `${route.prefix}/*`, onRequest, handler })
    }
  })
}

/** Answers before the body is read and closes the connection after a short linger, so the upload is not drained. */
function refuseUnread(reply: FastifyReply, err: GatewayError): void {
  void reply.header('connection', 'close')
  const socket = reply.request.raw.socket
  reply.raw.once('finish', () => { setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref() })
  sendError(reply, err, null)
}

async function forward(deps: PassthroughDeps, prefix: string, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const rt = req.sluice?.runtime ?? deps.runtime()
  const route = rt.snapshot.config.passthrough.find((r) => r.prefix === prefix)
  const rawUrl = req.raw.url ?? '/'
  const q = rawUrl.indexOf('?')
  const rawPath = q === -1 ? rawUrl : rawUrl.slice(0, q)
  const rest = rawPath.slice(prefix.length)
  const backend = route ? rt.snapshot.backends.get(route.backend) : undefined
  if (!route || !backend) return refuseBeforeBody(deps.proxy, req, reply, 'chat.completions', new GatewayError(GW_ERR.NOT_FOUND, `Unknown endpoint ${req.method} ${prefix}.`))
  const unsafe = unsafeSubPath(rest)
  if (unsafe) return refuseBeforeBody(deps.proxy, req, reply, 'chat.completions', new GatewayError(GW_ERR.INVALID_REQUEST, `The path under ${prefix} is refused: ${unsafe}.`))
  const declared = Number(req.headers['content-length'] ?? 0)
  if (declared > route.maxRequestBytes) {
    return refuseBeforeBody(deps.proxy, req, reply, 'chat.completions', new GatewayError(GW_ERR.REQUEST_TOO_LARGE, `The request body (${declared} bytes declared) is larger than the ${route.maxRequestBytes} bytes this route accepts.`))
  }
  const call = startCall(deps.proxy, req, reply, modelOf(rt.snapshot, backend, route, rest), false)
  const { ctx } = call
  ctx.backendId = backend.id
  let bodyUnread = hasBody(req)
  let trial = false
  let called = false
  try {
    await admitCall(rt, ctx)
    trial = await enterCircuit(rt.router.breakers, backend.id)
    const baseUrl = deps.baseUrlOf(backend)
    const base = backendBase(baseUrl)
    const target = new URL(base.origin + base.prefix + (rest === '' ? '' : rest) + (q === -1 ? '' : rawUrl.slice(q)))
    const headers = forwardedRequestHeaders(req.headers)
    let body: Buffer | ReturnType<typeof limitedBody> | null = null
    let payloadSha256: string | null = null
    if (bodyUnread && backend.auth?.awsSigV4) {
      // SigV4 signs the payload's SHA-256, which must be known before the first byte goes up.
      body = await readWhole(req.raw, route.maxRequestBytes)
      bodyUnread = false
      req.sluice?.bodyDone()
      payloadSha256 = createHash('sha256').update(body).digest('hex')
      headers['content-length'] = String(body.length)
      headers['content-type'] ??= 'application/json'
    } else if (bodyUnread) {
      body = limitedBody(req.raw, route.maxRequestBytes)
    } else if (backend.auth?.awsSigV4) {
      payloadSha256 = createHash('sha256').update('').digest('hex')
    }
    const sent = await backendCredentialHeaders(deps.clients, backend, baseUrl, { method: req.method, url: target.href, headers, payloadSha256 }, ctx.signal)
    ctx.attempts = 1
    called = true
    const res = await callBackend(deps.clients, backend, target.origin, { method: req.method, path: target.pathname + target.search, headers: sent, body, signal: ctx.signal })
    bodyUnread = false
    leaveCircuit(rt.router.breakers, backend.id, trial, { status: res.statusCode, headers: res.headers })
    const length = Number(res.headers['content-length'] ?? NaN)
    if (length > route.maxResponseBytes) {
      discard(res.body)
      throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${backend.id}" answered ${length} bytes, more than the ${route.maxResponseBytes} this route relays.`)
    }
    await relay(call, reply, res, backend.id, route.maxResponseBytes, Number.isFinite(length) ? length : null)
  } catch (err) {
    if (err instanceof ClientAbortError || (ctx.signal.aborted && !(err instanceof GatewayError))) {
      call.finish(499, null, null)
      if (!reply.raw.headersSent && !reply.raw.destroyed) reply.raw.destroy()
      return
    }
    const gwErr = toGatewayError(err)
    if (err instanceof UpstreamFailure && called) leaveCircuit(rt.router.breakers, backend.id, trial, err)
    if (gwErr.code === GW_ERR.INTERNAL.code) deps.proxy.logger.error({ err, reqId: req.id }, 'unexpected error on a passthrough route')
    call.finish(gwErr.status, null, gwErr)
    if (reply.raw.headersSent || reply.sent) { if (!reply.raw.writableEnded) reply.raw.destroy(); return }
    if (bodyUnread || err instanceof BodyTooLargeError || err instanceof BodyCutError) refuseUnread(reply, gwErr)
    else sendError(reply, gwErr, null)
  }
}

/** The backend's answer to the client as it arrives, its usage read on the way; cut past `max` bytes. */
async function relay(call: RelayedCall, reply: FastifyReply, res: Awaited<ReturnType<typeof callBackend>>, backendId: string, max: number, length: number | null): Promise<void> {
  const out = reply.raw
  const tap = new UsageTap(String(res.headers['content-type'] ?? ''), res.headers)
  reply.hijack()
  out.writeHead(res.statusCode, {
    ...relayedResponseHeaders(res.headers),
    ...call.ctx.responseHeaders,
    ...(length !== null ? { 'content-length': String(length) } : {}),
    'x-request-id': call.ctx.id,
    'x-sluice-backend': backendId,
  })
  let bytes = 0
  let cut: GatewayError | null = null
  try {
    for await (const chunk of res.body) {
      const c = chunk as Buffer
      bytes += c.length
      if (bytes > max) {
        cut = new GatewayError(GW_ERR.BAD_GATEWAY, `The backend's answer went past the ${max} bytes this route relays; it was cut.`)
        break
      }
      if (call.ctx.firstTokenAt === null) call.ctx.firstTokenAt = Date.now()
      tap.push(c)
      if (!out.write(c)) await once(out, 'drain', { signal: call.ctx.signal })
    }
  } catch (err) {
    discard(res.body)
    if (call.ctx.signal.aborted) throw new ClientAbortError()
    cut = err instanceof GatewayError ? err : new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" closed the connection mid-answer.`)
  }
  if (cut) {
    discard(res.body)
    call.finish(502, tap.end(), cut)
    out.destroy()
    return
  }
  call.finish(res.statusCode, tap.end(), null)
  out.end()
}

function hasBody(req: FastifyRequest): boolean {
  const len = req.headers['content-length']
  return req.headers['transfer-encoding'] !== undefined || (len !== undefined && len !== '0')
}

/**
 * The model a native path names (Bedrock `/model/{id}/…`, Gemini and Vertex `…/models/{m}:…`), recorded
 * only when this gateway knows it: a configured model name, or a deployment a model maps to at this
 * backend. Anything else is the client's free text and is recorded as the route's `model` (default
 * `passthrough:<prefix>`).
 */
export function modelOf(snapshot: Snapshot, backend: BackendConfig, route: PassthroughRoute, rest: string): string {
  const fallback = route.model ?? `passthrough:${route.prefix}`
  const m = /\/model\/([^/]{1,512})\//.exec(rest) ?? /\/models\/([^/:]{1,512})[:/]/.exec(rest)
  if (!m) return fallback
  let id: string
  try {
    id = decodeURIComponent(m[1]!)
  } catch {
    return fallback
  }
  if (snapshot.models.has(id)) return id
  for (const [name, deployment] of Object.entries(backend.models ?? {})) if (deployment === id && snapshot.models.has(name)) return name
  return fallback
}
