import { timingSafeEqual, createHash } from 'node:crypto'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Logger } from 'pino'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import { ConfigError } from '../config/load.ts'
import type { KeyStore } from '../stores/keys.ts'
import type { Stores } from '../stores/types.ts'
import type { Authenticator } from '../server/auth.ts'
import type { Runtime } from '../server/runtime.ts'
import { registerManagementRoutes } from './management/routes.ts'
import type { ManagementService } from './management/service.ts'
import type { ManagementDirectory } from './management/directory.ts'
import { registerBudgetRoutes } from './budgets.ts'
import { limitsForKey } from '../policies/limits-common/admin-view.ts'
import type { Telemetry } from '../telemetry/telemetry.ts'
import { registerTelemetryRoutes } from './telemetry-routes.ts'
import { registerUsageRoutes, type UsageSource } from './usage.ts'
import { parseJsonBody } from '../server/body-guard.ts'
import { adminHostAllowed, registerMethodNotAllowed, trackRoutes } from '../server/front-door.ts'
import { clipText } from '../core/bounded.ts'

export interface AdminDeps {
  readonly runtime: () => Runtime
  readonly reload: () => Promise<number>
  readonly keyStore: KeyStore | null
  readonly auth: Authenticator
  /** Bearer token for the admin plane; null leaves it open (it binds to loopback by default). */
  readonly token: string | null
  readonly logger: Logger
  readonly stores: Stores
  /** Serves `/metrics`, the dashboard and its summary endpoint when present. */
  readonly telemetry?: Telemetry
  /** `/metrics` from elsewhere than this process's registry (every worker's, aggregated). */
  readonly metricsText?: () => Promise<{ contentType: string; text: string }>
  /** The usage ledger behind `/admin/usage` (503 without one). */
  readonly ledger?: UsageSource | null
  /** The address the admin plane binds to, and extra Host names it answers (DNS-rebinding guard). */
  readonly host?: string
  readonly allowedHosts?: readonly string[]
  readonly maxJsonDepth?: number
  /** Run-time consumers, products, keys, suspensions, budgets and the audit log. */
  readonly management?: { readonly service: ManagementService; readonly directory: ManagementDirectory; readonly now: () => number }
}

const digest = (s: string) => createHash('sha256').update(s).digest()

/** The control plane: its own listener, bearer-token protected, never on the data plane's port. */
export function registerAdminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const expected = deps.token ? digest(deps.token) : null
  // An empty body with a JSON content type (curl -X DELETE -H 'content-type: application/json') is no body, not an error.
  app.removeContentTypeParser('application/json')
  const maxDepth = deps.maxJsonDepth ?? 128
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
    if (text === '') return done(null, undefined)
    try {
      done(null, parseJsonBody(text as string, maxDepth))
    } catch (err) {
      done(err as GatewayError, undefined)
    }
  })
  const send = (reply: FastifyReply, gw: GatewayError) => void reply.code(gw.status).headers(gw.headers).send(gw.toJSON())
  app.setErrorHandler((err, _req, reply) => {
    const code = (err as { code?: string }).code
    const gw = err instanceof GatewayError ? err
      : code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? new GatewayError(GW_ERR.REQUEST_TOO_LARGE, 'The admin request body is larger than the admin plane accepts.')
      : code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? new GatewayError(GW_ERR.INVALID_REQUEST, 'Admin request bodies are JSON (content-type: application/json).')
      : isClientError(err) ? new GatewayError(GW_ERR.INVALID_REQUEST, 'The admin request could not be processed.')
      : internalError(err, deps.logger)
    if (!(err instanceof GatewayError) && !(err as { statusCode?: number }).statusCode) deps.logger.error({ err }, 'admin error')
    send(reply, gw)
  })
  app.setNotFoundHandler((req, reply) => {
    send(reply, new GatewayError(GW_ERR.NOT_FOUND, `Unknown admin endpoint ${req.method} ${clipText(req.url.split('?')[0]!)}.`))
  })
  const boundHost = deps.host ?? '127.0.0.1'
  const allowedHosts = deps.allowedHosts ?? []
  app.addHook('onRequest', async (req, reply) => {
    void reply.header('x-request-id', req.id)
    // A DNS-rebinding page reaches this listener under its own name: only loopback names, the bound address and
    // the configured names are answered, before anything else (public dashboard files included).
    if (!adminHostAllowed(req.headers.host, boundHost, allowedHosts)) {
      throw new GatewayError(GW_ERR.HOST_NOT_ALLOWED, 'The admin plane does not answer requests for this host name; add it to admin.allowedHosts.')
    }
    // Static dashboard files carry no data (the page then calls the API with the token), so they are public.
    if (expected === null || (req.routeOptions.config as { public?: boolean } | undefined)?.public === true) return
    // The token comes only in the Authorization header: a query string ends up in logs, history and referrers.
    const h = req.headers.authorization
    const given = typeof h === 'string' && h.toLowerCase().startsWith('bearer ') ? h.slice(7).trim() : ''
    if (!given || !timingSafeEqual(digest(given), expected)) throw new GatewayError(GW_ERR.UNAUTHORIZED_ADMIN, 'A valid admin token is required.')
  })
  const routes = trackRoutes(app)

  if (deps.telemetry) registerTelemetryRoutes(app, deps.telemetry, deps.metricsText)
  registerUsageRoutes(app, deps.ledger ?? null)

  app.get('/admin/config', async () => {
    const s = deps.runtime().snapshot
    return {
      version: s.version,
      loadedAt: new Date(s.loadedAt).toISOString(),
      backends: [...s.backends.values()].map((b) => ({ id: b.id, type: b.type, url: b.url ?? null, models: b.models ?? {} })),
      pools: s.config.pools,
      models: s.config.models,
      products: s.config.products.map((p) => ({ id: p.id, models: p.models ?? null, policies: p.policies.map((e) => Object.keys(e)[0]) })),
      policies: s.config.policies.map((e) => Object.keys(e)[0]),
    }
  })
  const reload = async () => {
    try {
      return { version: await deps.reload(), status: 'reloaded' }
    } catch (err) {
      if (err instanceof ConfigError) {
        throw new GatewayError(GW_ERR.INVALID_REQUEST, `The new configuration was refused; the current one keeps serving.\n${err.message}`)
      }
      throw err
    }
  }
  app.post('/admin/config', reload)
  app.post('/admin/config/reload', reload)

  app.get<{ Querystring: { key?: string } }>('/admin/limits', async (req) => {
    const key = req.query.key
    if (typeof key !== 'string') throw new GatewayError(GW_ERR.INVALID_REQUEST, 'Give the counter key value as ?key= (e.g. a consumer id).', { param: 'key' })
    return { key, store: deps.stores.counters.kind, limits: await limitsForKey(deps.runtime(), key) }
  })

  // Circuit state is read fresh from the breaker store, so with Redis it shows trips made by any process.
  app.get('/admin/backends', async () => ({ backends: await deps.runtime().router.backendStatus() }))

  if (deps.management) {
    registerManagementRoutes(app, { runtime: deps.runtime, keyStore: deps.keyStore, ...deps.management })
    registerBudgetRoutes(app, deps.runtime, deps.management.directory, deps.management.now)
  }
  registerMethodNotAllowed(app, routes, send)
}

/** Fastify's own refusals carry a 4xx statusCode; anything else thrown by a handler is the gateway's fault. */
function isClientError(err: unknown): boolean {
  const status = (err as { statusCode?: unknown }).statusCode
  return typeof status === 'number' && status >= 400 && status < 500
}

/** A store or handler failure: a 500 with no detail (the log has it), never a misleading 400. */
function internalError(err: unknown, logger: { error: (o: object, msg: string) => void } | undefined): GatewayError {
  logger?.error({ err }, 'admin request failed')
  return new GatewayError(GW_ERR.INTERNAL, 'The admin request failed inside the gateway.')
}
