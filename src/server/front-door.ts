import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { FastifyInstance, FastifyReply, FastifyRequest, HTTPMethods, onRequestHookHandler } from 'fastify'
import type { Logger } from 'pino'
import type { Principal } from '../core/context.ts'
import { GatewayError, GW_ERR, toGatewayError } from '../core/errors.ts'
import type { Runtime } from './runtime.ts'
import type { Authenticator } from './auth.ts'
import type { BodyBudget } from './body-guard.ts'
import type { InflightLimits } from './inflight-limits.ts'

/** What the front door settled about a request before its body was read. */
export interface Admission {
  /** The runtime the request was authenticated against; the request keeps it to the end. */
  readonly runtime: Runtime
  readonly principal: Principal
  /** Gives back the body bytes reserved in the budget (once the body is parsed or the exchange ends). */
  bodyDone(): void
  /** performance.now() when admission began and when it ended (request tracing and debug timings). */
  readonly arrivedAt: number
  readonly admittedAt: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set by the admission hook on the data plane's proxy routes. */
    sluice: Admission | null
  }
}

export interface AdmissionDeps {
  readonly runtime: () => Runtime
  readonly auth: Authenticator
  readonly budget: BodyBudget
  readonly inflight: InflightLimits
  readonly bodyLimit: number
  /** Answers a refusal made before the body was read (and records it). */
  readonly refuse: (req: FastifyRequest, reply: FastifyReply, err: GatewayError) => void
}

/**
 * The `onRequest` hook of every proxy route: authenticate from the headers, take an in-flight slot and
 * reserve the body's bytes, all before a byte of the body is read. So a caller without a key, over its
 * concurrency, or arriving while the body budget is spent is answered at once (with `connection: close`)
 * and can never make the gateway hold its upload.
 */
export function admissionHook(deps: AdmissionDeps): onRequestHookHandler {
  return function admit(req, reply, done) {
    const arrivedAt = performance.now()
    const rt = deps.runtime()
    const refuse = (err: unknown) => deps.refuse(req, reply, toGatewayError(err))
    const admitted = (principal: Principal) => {
      let releaseSlot: () => void
      try {
        releaseSlot = deps.inflight.acquire(rt.snapshot, principal)
      } catch (err) {
        return refuse(err)
      }
      const declared = req.headers['content-length']
      // Undeclared (chunked) bodies reserve the most they may be; fastify refuses a declared length over the limit.
      const bytes = declared === undefined ? (req.headers['transfer-encoding'] ? deps.bodyLimit : 0) : Math.min(Number(declared) || 0, deps.bodyLimit)
      if (!deps.budget.tryReserve(bytes)) {
        releaseSlot()
        return refuse(new GatewayError(GW_ERR.SERVER_BUSY, 'The gateway is reading as many request bodies as it allows at once; retry shortly.', { headers: { 'retry-after': '1' } }))
      }
      let reserved = bytes
      const bodyDone = () => {
        if (reserved === 0) return
        deps.budget.release(reserved)
        reserved = 0
      }
      req.sluice = { runtime: rt, principal, bodyDone, arrivedAt, admittedAt: performance.now() }
      reply.raw.once('close', () => { bodyDone(); releaseSlot() })
      done()
    }
    let principal: Principal | Promise<Principal>
    try {
      principal = deps.auth.resolve(rt.snapshot, req.headers, req.ip)
    } catch (err) {
      return refuse(err)
    }
    if (principal instanceof Promise) principal.then(admitted, refuse)
    else admitted(principal)
  }
}

const STATUS_OF: Record<string, GatewayError> = {}

/**
 * Node's own HTTP parser errors (headers too large, malformed request, request timeout) answered like every
 * other error: OpenAI-shaped JSON with an `x-request-id`, then the connection closed. Nothing of the
 * client's bytes is echoed.
 */
export function clientErrorHandler(logger: Logger): (err: NodeJS.ErrnoException, socket: Socket) => void {
  return (err, socket) => {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const gw = STATUS_OF[err.code ?? ''] ?? (STATUS_OF[err.code ?? ''] = parserError(err.code))
    const body = JSON.stringify(gw.toJSON())
    logger.debug({ code: err.code ?? null, status: gw.status }, 'client error before a request could be read')
    if (socket.writable) {
      socket.write(
        `HTTP/1.1 ${gw.status} ${STATUS_TEXT[gw.status]}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
        `x-request-id: ${randomUUID()}\r\nconnection: close\r\n\r\n${body}`,
      )
    }
    socket.destroy()
  }
}

const STATUS_TEXT: Record<number, string> = { 400: 'Bad Request', 408: 'Request Timeout', 413: 'Payload Too Large', 431: 'Request Header Fields Too Large' }

function parserError(code: string | undefined): GatewayError {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new GatewayError(GW_ERR.REQUEST_TIMEOUT, 'The request was not received in time.')
    case 'HPE_HEADER_OVERFLOW':
      return new GatewayError(GW_ERR.HEADERS_TOO_LARGE, 'The request headers are larger than the gateway accepts.')
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return new GatewayError(GW_ERR.REQUEST_TOO_LARGE, 'The request body is malformed or too large.')
    default:
      return new GatewayError(GW_ERR.INVALID_REQUEST, 'The request is not valid HTTP.')
  }
}

const METHODS: readonly HTTPMethods[] = ['GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']

/**
 * Records the routes registered from now on, so `registerMethodNotAllowed` can answer a known path asked
 * with the wrong method with 405 and an `allow` header, instead of a 404 that says the path does not exist.
 */
export function trackRoutes(app: FastifyInstance): Map<string, Set<string>> {
  const routes = new Map<string, Set<string>>()
  app.addHook('onRoute', (r) => {
    if (r.url === '*' || r.url.endsWith('*')) return
    let set = routes.get(r.url)
    if (!set) routes.set(r.url, (set = new Set()))
    for (const m of Array.isArray(r.method) ? r.method : [r.method]) set.add(m)
  })
  return routes
}

export function registerMethodNotAllowed(app: FastifyInstance, routes: Map<string, Set<string>>, send: (reply: FastifyReply, err: GatewayError) => void): void {
  for (const [url, methods] of [...routes]) {
    const missing = METHODS.filter((m) => !methods.has(m))
    if (!missing.length) continue
    const allow = [...methods].filter((m) => m !== 'HEAD').join(', ')
    app.route({
      method: missing,
      url,
      config: { public: true, methodNotAllowed: true },
      handler: (req, reply) => {
        void reply.header('allow', allow)
        send(reply, new GatewayError(GW_ERR.METHOD_NOT_ALLOWED, `${req.method} is not allowed here; use ${allow}.`))
      },
    })
  }
}

const LOOPBACK_NAMES = new Set(['localhost', '127.0.0.1', '::1', '[::1]'])
const WILDCARD = new Set(['0.0.0.0', '::', '[::]', ''])

/** The host name of a Host header value, lower-cased, without the port (`[::1]:8081` → `[::1]`). */
export function hostName(host: string): string {
  const h = host.trim().toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    return end < 0 ? h : h.slice(0, end + 1)
  }
  const colon = h.indexOf(':')
  return colon < 0 ? h : h.slice(0, colon)
}

/**
 * Whether the admin plane answers a request with this Host header: loopback names, the address it is bound
 * to, and the configured `admin.allowedHosts`. A DNS-rebinding page reaches a loopback listener under its
 * own domain name, so its requests carry that name and are refused.
 */
export function adminHostAllowed(host: string | undefined, boundHost: string, allowed: readonly string[]): boolean {
  if (host === undefined || host === '') return false
  const name = hostName(host)
  if (LOOPBACK_NAMES.has(name)) return true
  const bound = hostName(boundHost)
  if (!WILDCARD.has(bound) && (name === bound || `[${bound}]` === name)) return true
  const full = host.trim().toLowerCase()
  return allowed.some((a) => {
    const x = a.trim().toLowerCase()
    return x === full || x === name
  })
}
