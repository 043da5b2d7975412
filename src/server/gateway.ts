import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import pino, { type Logger } from 'pino'
import { logDestination } from '../telemetry/log-destination.ts'
import { RequestIds } from '../core/request-id.ts'
import { systemClock, type Clock } from '../core/clock.ts'
import type { Operation } from '../core/context.ts'
import { GatewayError, GW_ERR, toGatewayError } from '../core/errors.ts'
import { loadConfigFile, formatProblems, ConfigError, type ConfigProblem } from '../config/load.ts'
import type { GatewayConfig } from '../config/schema.ts'
import { buildSnapshot } from '../config/snapshot.ts'
import { builtinPolicies } from '../policies/registry.ts'
import type { PolicyRegistry } from '../policies/types.ts'
import { defaultBaseUrl } from '../providers/index.ts'
import type { KeyStore } from '../stores/keys.ts'
import { createStores } from '../stores/index.ts'
import { closeSharedStores } from '../cache/store-registry.ts'
import type { Stores } from '../stores/types.ts'
import { UpstreamClients } from '../upstream/client.ts'
import { noopMetrics, type MetricsSink } from '../telemetry/sink.ts'
import { registerAdminRoutes } from '../control/admin.ts'
import { createTelemetry } from '../telemetry/gateway-telemetry.ts'
import { teeSink } from '../telemetry/telemetry.ts'
import { Authenticator } from './auth.ts'
import { MockFleet } from './mock-fleet.ts'
import { proxyRequest, refuseBeforeBody, sendError, type ProxyDeps } from './proxy.ts'
import { BodyBudget, parseJsonBody } from './body-guard.ts'
import { admissionHook, clientErrorHandler, registerMethodNotAllowed, trackRoutes } from './front-door.ts'
import { InflightLimits } from './inflight-limits.ts'
import { errorSummary, installProcessGuards } from './process-guards.ts'
import { clipText } from '../core/bounded.ts'
import { anthropicDoor, countTokens } from './front-doors/anthropic.ts'
import { openaiDoor } from './front-doors/openai.ts'
import { buildRuntime, type Runtime } from './runtime.ts'
import { modelAllowed } from '../config/snapshot.ts'
import { createKeyStore } from '../stores/key-store.ts'
import { createLedgerStore } from '../stores/ledger-store.ts'
import type { LedgerStore } from '../stores/ledger.ts'
import { batchingOf, Ledger } from '../ledger/ledger.ts'
import { Journal } from '../ledger/journal.ts'
import { journalSettingsOf, journalSlotOf } from '../ledger/journal-config.ts'
import { createFinops, type Finops } from '../finops/wiring.ts'
import { registerSelfService } from '../finops/self-service.ts'
import type { ManagementStore } from '../control/management/store.ts'
import { registerMcp } from '../mcp/routes.ts'
import { registerRealtime } from '../realtime/routes.ts'
import { registerPassthrough } from '../passthrough/routes.ts'
import { registerFiles } from '../files/routes.ts'
import { registerMedia } from '../media/routes.ts'
import { registerResponses } from '../responses/routes.ts'
import { ResponsesService } from '../responses/service.ts'
import { createResponseStore } from '../responses/factory.ts'
import type { ClusterPlane } from '../cluster/member.ts'
import type { Telemetry } from '../telemetry/telemetry.ts'

export interface GatewayOptions {
  readonly config: GatewayConfig
  /** The file the config came from; reloads read it again. */
  readonly configFile?: string
  readonly registry?: PolicyRegistry
  readonly clock?: Clock
  readonly logger?: Logger
  readonly stores?: Stores
  readonly keyStore?: KeyStore | null
  readonly env?: Readonly<Record<string, string | undefined>>
  readonly metrics?: MetricsSink
  /** Overrides the ledger store the config names (null: no ledger). */
  readonly ledgerStore?: LedgerStore | null
  /** Process-level handlers that log and count errors thrown outside any request (default on). */
  readonly processGuards?: boolean
  /** Overrides where run-time consumers, products and the audit log are kept (default: beside the ledger). */
  readonly managementStore?: ManagementStore
  /** Set in a worker of `listen.workers` > 1: reloads and /metrics span every worker, worker 0 serves the admin plane. */
  readonly cluster?: ClusterPlane
}

export interface Gateway {
  /** Starts both listeners; ports 0 pick free ones. */
  listen(): Promise<{ url: string; adminUrl: string | null }>
  /** Swaps in a new configuration atomically; throws ConfigError and keeps the old one when it is invalid. */
  reload(config?: GatewayConfig): Promise<number>
  /** Stops accepting, lets requests and streams in flight finish up to the grace period, then closes stores. */
  close(): Promise<void>
  runtime(): Runtime
  readonly app: FastifyInstance
  readonly admin: FastifyInstance
  readonly mocks: MockFleet
  readonly keyStore: KeyStore | null
  readonly auth: Authenticator
  readonly inflight: { count: number }
  /** The usage ledger, null with `ledger: { type: none }`. */
  readonly ledger: Ledger | null
  /** Budgets' alerts and webhooks, run-time consumers/products and suspensions. */
  readonly finops: Finops
  /** The Prometheus registry and dashboard activity of this process. */
  readonly telemetry: Telemetry
}

const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/
/** The crash journal's checkpoint is rewritten at most this often (it was once per committed batch: a write and a rename each). */
const JOURNAL_CHECKPOINT_MS = 200

export async function createGateway(opts: GatewayOptions): Promise<Gateway> {
  const registry = opts.registry ?? builtinPolicies()
  const clock = opts.clock ?? systemClock
  // Logs are written in 4 KiB batches (asynchronously unless the destination is a regular file, see
  // logDestination) so a log line never blocks the request path; close() flushes.
  const baseLogger = opts.logger ?? pino({ level: opts.config.logging.level, base: undefined }, logDestination())
  // Whatever logger is given, an error is logged as its kind and a cut message: never a stack.
  const logger = baseLogger.child({}, { serializers: { err: errorSummary } })
  const logFlusher = setInterval(() => logger.flush(), 1000).unref()
  const telemetry = await createTelemetry(opts.config, () => clock.now(), (id) => current.snapshot.backends.get(id), (b) => baseUrlOf(b))
  // The real metrics always; a sink the caller brings (tests) hears every event as well.
  const metrics: MetricsSink = opts.metrics ? teeSink(telemetry, opts.metrics) : telemetry
  const stores = opts.stores ?? (await createStores(opts.config.store, { logger, metrics }))
  const keyStore = opts.keyStore !== undefined ? opts.keyStore : await createKeyStore(opts.config.ledger)
  const clients = new UpstreamClients(() => clock.now())
  const requestIds = new RequestIds()
  const mocks = new MockFleet()
  const auth = new Authenticator(keyStore, () => clock.now(), opts.config.auth.keyCacheTtl)
  const inflight = { count: 0 }

  const ledgerStore = opts.ledgerStore !== undefined ? opts.ledgerStore : await createLedgerStore(opts.config.ledger, { writerThread: true })
  // The crash journal (one per process, in its own slot of the directory) only for a ledger the config names.
  const journalSettings = ledgerStore && opts.ledgerStore === undefined ? journalSettingsOf(opts.config.ledger) : null
  let journal: Journal | null = null
  try {
    if (journalSettings) journal = Journal.open({ ...journalSettings, checkpointInterval: JOURNAL_CHECKPOINT_MS, slot: journalSlotOf(opts.env ?? process.env), logger })
  } catch (err) {
    await ledgerStore?.close().catch(() => {})
    throw err
  }
  const ledger = ledgerStore ? new Ledger({ store: ledgerStore, snapshot: () => current.snapshot, batching: batchingOf(opts.config.ledger), metrics, logger, journal }) : null

  const baseUrlOf = (b: GatewayConfig['backends'][number]): string => {
    const url = b.url ?? defaultBaseUrl(b) ?? mocks.urlOf(b.id)
    if (!url) throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${b.id}" has no address.`)
    return url
  }
  const finops = await createFinops({ config: opts.config, stores, logger, clock, registry, keyStore, store: opts.managementStore })
  let fileConfig = opts.config
  const makeRuntime = (config: GatewayConfig) => {
    const rt = buildRuntime(buildSnapshot(finops.effective(config), clock.now()), {
      registry, clients, baseUrlOf, clock, logger, stores, metrics, telemetry, ledger: ledger ?? undefined,
      alerts: finops.alerts, consumers: finops.directory, prelude: [finops.prelude],
    })
    telemetry.prom.syncBackends(config.backends.map((b) => b.id))
    auth.warm(rt.snapshot) // JWT issuers' signing keys are fetched now, not by the first request
    return rt
  }

  let current: Runtime
  try {
    await mocks.sync(opts.config.backends)
    current = makeRuntime(opts.config)
  } catch (err) {
    // A policy that cannot be built (e.g. a metric whose dimensions clash) fails start-up: release what was opened.
    clearInterval(logFlusher)
    await Promise.allSettled([mocks.close(), ledger?.close(), finops.close(), stores.close(), keyStore?.close(), telemetry.close()])
    throw err
  }
  const runtime = () => current
  // A run-time consumer or product changed (here or on another replica): rebuild on the same file config.
  finops.directory.onChange(() => {
    try {
      current = makeRuntime(fileConfig)
    } catch (err) {
      logger.error({ err }, 'management: the changed consumers/products could not be applied; the previous set keeps serving')
    }
    auth.invalidate()
  })
  finops.directory.onNotify(() => auth.invalidate())
  const management = finops.service(runtime, () => auth.invalidate())

  const listenCfg = opts.config.listen
  const app = Fastify({
    logger: false,
    bodyLimit: listenCfg.bodyLimit,
    // A whole request (headers and body) must arrive within requestTimeout, its headers within headersTimeout;
    // Node checks every connection at this interval, so a stalled upload is cut within a second of its deadline.
    requestTimeout: listenCfg.requestTimeout,
    http: { headersTimeout: Math.min(listenCfg.headersTimeout, listenCfg.requestTimeout), connectionsCheckingInterval: Math.min(1000, Math.max(50, Math.floor(listenCfg.headersTimeout / 4))) },
    clientErrorHandler: clientErrorHandler(logger),
    // Path parameters are model and deployment names: longer ones are refused (414) by the router itself.
    routerOptions: { maxParamLength: 256 },
    frameworkErrors: (err, req, reply) => { void reply.header('x-request-id', req.id); sendError(reply, frameworkError(err), null, doorOf(req.url)) },
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : requestIds.next()
    },
    forceCloseConnections: 'idle',
    keepAliveTimeout: 72_000,
    return503OnClosing: true,
  })
  // Clients send JSON with all sorts of content types (or none); the body is parsed once, as JSON, whatever it says.
  app.removeAllContentTypeParsers()
  app.decorateRequest('sluice', null)
  const maxDepth = listenCfg.maxJsonDepth
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: listenCfg.bodyLimit }, (req, text, done) => {
    req.sluice?.bodyDone() // the upload is in memory as one string now; its reservation is freed
    // A wrong method is answered 405 whatever it carried (a DELETE with a JSON content type and no body).
    if ((req.routeOptions.config as { methodNotAllowed?: boolean } | undefined)?.methodNotAllowed) return done(null, undefined)
    try {
      done(null, parseJsonBody((text as string | undefined) ?? '', maxDepth))
    } catch (err) {
      done(err as GatewayError, undefined)
    }
  })
  app.addHook('onRequest', (req, reply, done) => {
    reply.header('x-request-id', req.id)
    done()
  })
  // Errors raised before a route runs (body parsing, auth on the helper routes) answer in the shape of the door they came to.
  app.setErrorHandler((err, req, reply) => {
    req.sluice?.bodyDone()
    sendError(reply, fastifyErrorToGateway(err, logger, req.id), null, doorOf(req.url))
  })
  app.setNotFoundHandler((req, reply) => {
    sendError(reply, new GatewayError(GW_ERR.NOT_FOUND, `Unknown endpoint ${req.method} ${clipText(req.url.split('?')[0]!)}.`), null, doorOf(req.url))
  })
  const routes = trackRoutes(app)

  const deps: ProxyDeps = { runtime, auth, logger, now: () => clock.now(), inflight, telemetry, ledger: ledger ?? undefined, tracing: telemetry.tracing }
  const budget = new BodyBudget(listenCfg.maxBodyBytesInFlight)
  const inflightLimits = new InflightLimits()
  const admit = (op: Operation, door = openaiDoor) => admissionHook({
    runtime, auth, budget, inflight: inflightLimits, bodyLimit: listenCfg.bodyLimit,
    refuse: (req, reply, err) => refuseBeforeBody(deps, req, reply, op, err, door),
  })
  const route = (path: string, op: Operation) =>
    app.post(path, { onRequest: admit(op) }, (req, reply) => proxyRequest(deps, req, reply, op, null))
  route('/v1/chat/completions', 'chat.completions')
  route('/v1/completions', 'completions')
  route('/v1/embeddings', 'embeddings')
  // Azure OpenAI's v1 surface: OpenAI's own paths under /openai/v1, the deployment (a model name here) in the body.
  route('/openai/v1/chat/completions', 'chat.completions')
  route('/openai/v1/completions', 'completions')
  route('/openai/v1/embeddings', 'embeddings')
  // Anthropic's Messages API, served from any backend (front-doors/anthropic.ts), admitted like the others.
  app.post('/v1/messages', { onRequest: admit('chat.completions', anthropicDoor) }, (req, reply) => proxyRequest(deps, req, reply, 'chat.completions', null, anthropicDoor))
  app.post('/v1/messages/count_tokens', { onRequest: admit('chat.completions', anthropicDoor) }, (req, reply) => countTokens(deps, req, reply))
  const azureRoute = (suffix: string, op: Operation) =>
    app.post<{ Params: { deployment: string } }>(`/openai/deployments/:deployment/${suffix}`, { onRequest: admit(op) }, (req, reply) => proxyRequest(deps, req, reply, op, req.params.deployment))
  azureRoute('chat/completions', 'chat.completions')
  azureRoute('completions', 'completions')
  azureRoute('embeddings', 'embeddings')
  // Images, audio, moderations, rerank (src/media/): multipart uploads streamed through, answers in their own forms.
  registerMedia(app, { ...deps, limits: () => current.snapshot.config.media, admit: (op) => admit(op) })
  // The Responses API on every backend, its stored conversations beside the ledger (src/responses/).
  const responsesService = new ResponsesService(await createResponseStore(opts.config.ledger), () => current.snapshot.config.responses, () => clock.now(), logger)
  registerResponses(app, { proxy: deps, service: responsesService, clients, baseUrlOf, admit: admit('chat.completions') })

  const listModels = async (req: FastifyRequest, reply: FastifyReply) => {
    const rt = current
    const principal = await auth.resolve(rt.snapshot, req.headers, req.ip)
    const data = [...rt.snapshot.models.keys()]
      .filter((m) => modelAllowed(rt.snapshot, principal.productId, m))
      .map((id) => ({ id, object: 'model', created: Math.floor(rt.snapshot.loadedAt / 1000), owned_by: 'sluice' }))
    return reply.send({ object: 'list', data })
  }
  app.get('/v1/models', listModels)
  app.get('/openai/v1/models', listModels)
  registerSelfService(app, { runtime, auth, keyStore, consumers: finops.directory, service: management, ledger, now: () => clock.now() })
  app.get<{ Params: { model: string } }>('/v1/models/:model', async (req, reply) => {
    const rt = current
    const principal = await auth.resolve(rt.snapshot, req.headers, req.ip)
    const id = req.params.model
    if (!rt.snapshot.models.has(id) || !modelAllowed(rt.snapshot, principal.productId, id)) {
      throw new GatewayError(GW_ERR.MODEL_NOT_FOUND, `The model "${clipText(id)}" does not exist or you do not have access to it.`, { param: 'model' })
    }
    return reply.send({ id, object: 'model', created: Math.floor(rt.snapshot.loadedAt / 1000), owned_by: 'sluice' })
  })
  let closing = false
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const storesUp = await stores.ping().catch(() => false)
    const ready = !closing && storesUp
    // Replay of the crash journal is reported, not gated on: the gateway serves (and journals) meanwhile.
    const replay = ledger?.replayStatus()
    return reply.code(ready ? 200 : 503).send({
      status: ready ? 'ready' : 'not ready', configVersion: current.snapshot.version, stores: storesUp ? 'up' : 'down',
      ...(replay ? { ledger: { replay: replay.state, replayedRecords: replay.records } } : {}),
    })
  })
  registerMcp(app, { runtime, auth, stores, clients, baseUrlOf, ledger, telemetry, clock, logger, inflight })
  registerRealtime(app, { runtime, auth, inflight: inflightLimits, clients, baseUrlOf, ledger, telemetry, now: () => clock.now(), logger, requestIds })
  registerPassthrough(app, { proxy: deps, runtime, auth, budget, inflight: inflightLimits, clients, baseUrlOf, routes: opts.config.passthrough })
  registerFiles(app, { proxy: deps, runtime, auth, budget, inflight: inflightLimits, clients, baseUrlOf, ledgerConfig: opts.config.ledger, ledger })
  registerMethodNotAllowed(app, routes, (reply, err) => sendError(reply, err, null))

  const reload = async (config?: GatewayConfig): Promise<number> => {
    let next = config
    if (!next) {
      if (!opts.configFile) throw new ConfigError([{ path: '', line: null, message: 'no configuration file to reload from' }])
      const res = await loadConfigFile(opts.configFile, { registry, env: opts.env ?? process.env })
      if (!res.ok) throw new ConfigError(res.problems, opts.configFile)
      next = res.config
    }
    await mocks.sync(next.backends)
    const rt = makeRuntime(next)
    current = rt // the swap: requests already running keep the runtime they started with
    fileConfig = next
    finops.webhooks.setHooks(next.webhooks)
    clients.retain(next.backends)
    logger.info({ configVersion: rt.snapshot.version }, 'configuration reloaded')
    return rt.snapshot.version
  }

  const adminCfg = opts.config.admin
  const admin = Fastify({
    logger: false,
    genReqId: () => requestIds.next(),
    forceCloseConnections: true,
    bodyLimit: adminCfg.bodyLimit,
    requestTimeout: listenCfg.requestTimeout,
    http: { headersTimeout: Math.min(listenCfg.headersTimeout, listenCfg.requestTimeout), connectionsCheckingInterval: 1000 },
    clientErrorHandler: clientErrorHandler(logger),
    frameworkErrors: (err, req, reply) => { void reply.header('x-request-id', req.id); sendError(reply, frameworkError(err), null, doorOf(req.url)) },
  })
  registerAdminRoutes(admin, {
    runtime, reload: opts.cluster ? () => opts.cluster!.reloadEverywhere() : reload, metricsText: opts.cluster?.metricsText.bind(opts.cluster), keyStore, auth, token: adminCfg.token ?? null, logger, stores, telemetry, ledger,
    host: adminCfg.host, allowedHosts: adminCfg.allowedHosts, maxJsonDepth: maxDepth,
    management: { service: management, directory: finops.directory, now: () => clock.now() },
  })
  opts.cluster?.register(app, admin)
  const uninstallGuards = opts.processGuards === false ? () => {} : installProcessGuards(logger, telemetry)

  let listening = false
  return {
    app, admin, mocks, keyStore, auth, inflight, runtime, reload, ledger, finops, telemetry,
    async listen() {
      const url = await app.listen({ host: opts.config.listen.host, port: opts.config.listen.port })
      listening = true
      let adminUrl: string | null = null
      if (opts.config.admin.enabled && opts.cluster?.servesAdmin !== false) adminUrl = await admin.listen({ host: opts.config.admin.host, port: opts.config.admin.port })
      return { url, adminUrl }
    },
    async close() {
      closing = true
      const deadline = Date.now() + current.snapshot.config.listen.shutdownGrace
      const closed = listening ? app.close() : Promise.resolve()
      while (inflight.count > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25))
      // Nothing is in flight (or the grace is over): keep-alive connections left open would hold close() up.
      if (listening) app.server.closeAllConnections()
      let timer: NodeJS.Timeout | undefined
      await Promise.race([closed, new Promise((r) => { timer = setTimeout(r, Math.max(0, deadline - Date.now())) })])
      clearTimeout(timer)
      await admin.close()
      await clients.close()
      await mocks.close()
      await telemetry.close()
      // Every request has ended: drain the ledger's queue (retrying an unreachable store up to its deadline).
      await ledger?.close()
      await responsesService.close()
      await finops.close()
      await closeSharedStores(stores)
      await stores.close()
      await keyStore?.close()
      clearInterval(logFlusher)
      uninstallGuards()
      await new Promise<void>((resolve) => logger.flush(() => resolve()))
    },
  }
}

/** The front door a URL belongs to, for errors raised outside the request path. */
function doorOf(url: string) {
  return url === '/v1/messages' || url.startsWith('/v1/messages/') || url.startsWith('/v1/messages?') ? anthropicDoor : openaiDoor
}

/** The router's own refusals (a path parameter too long, a malformed URL), in the gateway's error shape. */
function frameworkError(err: { code?: string }): GatewayError {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH') return new GatewayError(GW_ERR.URI_TOO_LONG, 'A name in the request path is longer than the gateway accepts.')
  return new GatewayError(GW_ERR.INVALID_REQUEST, 'The request URL is not valid.')
}

function fastifyErrorToGateway(err: unknown, logger: Logger, reqId: string): GatewayError {
  if (err instanceof GatewayError) return err
  const code = (err as { code?: string }).code
  if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') return new GatewayError(GW_ERR.REQUEST_TOO_LARGE, 'The request body is larger than the gateway accepts.')
  if (code === 'ECONNRESET' || code === 'ECONNABORTED' || (err as { message?: string }).message === 'aborted') return new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body was not received completely.')
  if (code === 'FST_ERR_CTP_INVALID_CONTENT_LENGTH' || code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
    return new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body could not be read as JSON.')
  }
  const status = (err as { statusCode?: number }).statusCode
  if (status && status >= 400 && status < 500) return new GatewayError(GW_ERR.INVALID_REQUEST, 'The request could not be processed.')
  logger.error({ err: errorSummary(err), reqId }, 'unhandled error')
  return toGatewayError(err)
}

export { formatProblems, type ConfigProblem }
