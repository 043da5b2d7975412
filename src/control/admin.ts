import { timingSafeEqual, createHash } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
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
  /** The usage ledger behind `/admin/usage` (503 without one). */
  readonly ledger?: UsageSource | null
  /** Run-time consumers, products, keys, suspensions, budgets and the audit log. */
  readonly management?: { readonly service: ManagementService; readonly directory: ManagementDirectory; readonly now: () => number }
}

const digest = (s: string) => createHash('sha256').update(s).digest()

/** The control plane: its own listener, bearer-token protected, never on the data plane's port. */
export function registerAdminRoutes(app: FastifyInstance, deps: AdminDeps): void {
  const expected = deps.token ? digest(deps.token) : null
  // An empty body with a JSON content type (curl -X DELETE -H 'content-type: application/json') is no body, not an error.
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, text, done) => {
    if (text === '') return done(null, undefined)
    try {
      done(null, JSON.parse(text as string))
    } catch {
      done(new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body is not valid JSON.'), undefined)
    }
  })
  app.setErrorHandler((err, _req, reply) => {
    const gw = err instanceof GatewayError ? err : new GatewayError(GW_ERR.INVALID_REQUEST, 'The admin request could not be processed.')
    if (!(err instanceof GatewayError) && !(err as { statusCode?: number }).statusCode) deps.logger.error({ err }, 'admin error')
    void reply.code(gw.status).headers(gw.headers).send(gw.toJSON())
  })
  app.addHook('onRequest', async (req) => {
    // Static dashboard files carry no data (the page then calls the API with the token), so they are public.
    if (expected === null || (req.routeOptions.config as { public?: boolean } | undefined)?.public === true) return
    const h = req.headers.authorization
    const given = typeof h === 'string' && h.toLowerCase().startsWith('bearer ') ? h.slice(7).trim() : (req.query as Record<string, string>)?.token
    if (!given || !timingSafeEqual(digest(given), expected)) throw new GatewayError(GW_ERR.UNAUTHORIZED_ADMIN, 'A valid admin token is required.')
  })

  if (deps.telemetry) registerTelemetryRoutes(app, deps.telemetry)
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
}
