import { randomUUID } from 'node:crypto'
import { pipeline } from 'node:stream/promises'
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js'
import { LATEST_PROTOCOL_VERSION, SUPPORTED_PROTOCOL_VERSIONS } from '@modelcontextprotocol/sdk/types.js'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import type { Principal } from '../core/context.ts'
import { GatewayError } from '../core/errors.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { Ledger } from '../ledger/ledger.ts'
import type { Authenticator } from '../server/auth.ts'
import type { Runtime } from '../server/runtime.ts'
import type { Stores } from '../stores/types.ts'
import type { Telemetry } from '../telemetry/telemetry.ts'
import type { BaseUrlOf } from '../upstream/router.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import { isScreeningPolicy } from '../policies/content-safety/screen.ts'
import { ToolContentScreen } from './content-screen.ts'
import { ClientRequests, isReply, RedisReplyBus, RELAY_ID_PREFIX, relayedCapabilities } from './client-requests.ts'
import { buildEndpoint } from './endpoint.ts'
import { MCP_ERR, originOf, rpcErrorBody, sendRpc } from './rpc.ts'
import type { McpMetrics } from './metrics.ts'
import { buildMcpRuntime, type McpRuntime, type McpServerRuntime } from './runtime.ts'
import { MemorySessionStore, RedisSessionStore, type McpSession, type McpSessionStore } from './session-store.ts'
import type { UpstreamBinding } from './source.ts'
import type { McpRouteDeps } from './routes.ts'

const VERSION = '1.0.0'
const SESSION_ID = /^[A-Za-z0-9-]{1,128}$/
const RELAYED_NOTIFICATIONS = new Set(['notifications/cancelled', 'notifications/roots/list_changed'])

type Req = FastifyRequest<{ Params: { id: string } }>

/** The handlers of the MCP routes (registered by routes.ts, which loads this module on first need). */
export interface McpPlane {
  post(req: Req, reply: FastifyReply): Promise<FastifyReply>
  get(req: Req, reply: FastifyReply): Promise<FastifyReply>
  delete(req: Req, reply: FastifyReply): Promise<FastifyReply>
  metadata(req: Req, reply: FastifyReply): Promise<FastifyReply>
  /** Closes the cross-replica bus of client requests (the server is closing). */
  closeRequests(): Promise<void>
  close(): Promise<void>
}

/**
 * The MCP gateway's request handling, with everything that needs the MCP SDK (its server transport, the
 * endpoints, the upstream clients): built once, the first time an MCP route needs it.
 */
export function buildMcpPlane(d: McpRouteDeps, metrics: McpMetrics): McpPlane {
  const runtimes = new WeakMap<Snapshot, McpRuntime>()
  const sessions: McpSessionStore = d.sessions ?? (d.stores.type === 'redis' && d.stores.redis ? new RedisSessionStore(d.stores.redis, d.stores.keyPrefix ?? 'sluice:') : new MemorySessionStore(() => d.clock.now()))
  const logger = d.logger.child({ component: 'mcp' })
  const clientRequests = new ClientRequests(d.stores.type === 'redis' && d.stores.redis ? new RedisReplyBus(d.stores.redis, d.stores.keyPrefix ?? 'sluice:', logger) : null, logger)

  const mcpOf = (snapshot: Snapshot): McpRuntime => {
    let rt = runtimes.get(snapshot)
    if (!rt) {
      rt = buildMcpRuntime(snapshot, { clients: d.clients, baseUrlOf: d.baseUrlOf, stores: d.stores, ledger: d.ledger, metrics, sink: d.telemetry, clock: d.clock, logger: d.logger, version: VERSION })
      runtimes.set(snapshot, rt)
    }
    return rt
  }

  /** The consumer's content-safety policies (global, then its product's), as they stand in the current runtime. */
  const screenFor = (principal: Principal): ToolContentScreen =>
    new ToolContentScreen(d.runtime().pipelineFor(principal.productId).policies.filter(isScreeningPolicy).map((p) => p.contentScreen))

  const metadataUrl = (req: FastifyRequest, id: string) => `${originOf(req)}/.well-known/oauth-protected-resource/mcp/${encodeURIComponent(id)}`

  /** The endpoint, the consumer and the snapshot of one request, or an answer already sent. */
  const admit = async (req: Req, reply: FastifyReply): Promise<{ snapshot: Snapshot; server: McpServerRuntime; mcp: McpRuntime; principal: Principal } | null> => {
    const snapshot = d.runtime().snapshot
    const mcp = mcpOf(snapshot)
    const server = mcp.servers.get(req.params.id)
    if (!server) {
      sendRpc(reply, 404, -32601, `Unknown MCP server "${req.params.id.slice(0, 64)}".`, { code: 'not_found' })
      return null
    }
    try {
      const principal = await d.auth.resolve(snapshot, req.headers)
      return { snapshot, server, mcp, principal }
    } catch (err) {
      const g = err instanceof GatewayError ? err : null
      if (g && g.status === 401) {
        reply.header('www-authenticate', `Bearer resource_metadata="${metadataUrl(req, req.params.id)}"`)
        sendRpc(reply, 401, MCP_ERR.UNAUTHORIZED, g.message, { code: g.code })
      } else {
        sendRpc(reply, g?.status ?? 503, -32603, g?.message ?? 'The gateway could not check the credential; retry shortly.', { code: g?.code ?? 'service_unavailable' })
      }
      return null
    }
  }

  /** The stored session named by the request's Mcp-Session-Id, or an answer sent (400 missing, 404 unknown). */
  const sessionOf = async (req: Req, reply: FastifyReply, principal: Principal, ttl: number): Promise<McpSession | null> => {
    const sid = req.headers['mcp-session-id']
    if (typeof sid !== 'string' || sid === '') {
      sendRpc(reply, 400, -32600, 'Bad Request: Mcp-Session-Id header is required', { code: 'invalid_request' })
      return null
    }
    let session: McpSession | null = null
    try {
      session = SESSION_ID.test(sid) ? await sessions.get(sid, ttl) : null
    } catch (err) {
      logger.warn({ reason: (err as Error).message?.slice(0, 200) }, 'mcp: session store unavailable')
      sendRpc(reply, 503, -32603, 'The session store is unavailable; retry shortly.', { code: 'service_unavailable' })
      return null
    }
    // Another consumer's session, or one made on another endpoint, does not exist as far as this caller knows.
    if (!session || session.server !== req.params.id || session.consumer !== principal.consumerId) {
      sendRpc(reply, 404, MCP_ERR.SESSION_NOT_FOUND, 'Session not found', { code: 'session_not_found' })
      return null
    }
    return session
  }

  const bindingOf = (holder: { session: McpSession }, ttl: number): UpstreamBinding => ({
    get: (id) => holder.session.upstream[id] ?? null,
    set: async (id, ref) => {
      const upstream = { ...holder.session.upstream }
      if (ref) upstream[id] = ref
      else delete upstream[id]
      holder.session = { ...holder.session, upstream }
      await sessions.put(holder.session, ttl)
    },
  })

  const post = async (req: Req, reply: FastifyReply): Promise<FastifyReply> => {
    const a = await admit(req, reply)
    if (!a) return reply
    const section = a.snapshot.config.mcp
    const body = req.body as unknown
    if (Array.isArray(body)) {
      if (body.length === 0 || body.length > section.maxBatch) return sendRpc(reply, 400, MCP_ERR.BATCH_TOO_LARGE, body.length === 0 ? 'Invalid Request: empty batch' : `Invalid Request: a batch holds at most ${section.maxBatch} messages`, { code: 'invalid_request' })
      if (body.some((m) => !m || typeof m !== 'object' || Array.isArray(m))) return sendRpc(reply, 400, -32600, 'Invalid Request: every batch element is a JSON-RPC message object', { code: 'invalid_request' })
    } else if (!body || typeof body !== 'object') {
      return sendRpc(reply, 400, -32600, 'Invalid Request: the body is a JSON-RPC message object (or a batch of them)', { code: 'invalid_request' })
    }
    let messages = (Array.isArray(body) ? body : [body]) as Array<Record<string, unknown>>
    const initialize = messages.find((m) => m.method === 'initialize')
    const ttl = section.sessionTtl
    // The consumer's answers to server-to-client requests: to the replica that asked, or to the upstream server.
    const replies = messages.filter(isReply)
    if (replies.length) {
      let session: McpSession | null = null
      if (section.sessions === 'stateful') {
        session = await sessionOf(req, reply, a.principal, ttl)
        if (!session) return reply
      }
      const handled = await deliverReplies(a.server, session, a.principal, replies, ttl)
      if (!handled) return reply.code(503).type('application/json').send(rpcErrorBody(-32603, 'The answer could not be delivered; retry shortly.', { code: 'service_unavailable' }))
      messages = messages.filter((m) => !isReply(m))
      if (messages.length === 0) return reply.code(202).send()
    }
    // Notifications about other requests or the session, which the per-request endpoint cannot act on itself.
    const notices = messages.filter((m) => m.id === undefined && typeof m.method === 'string' && RELAYED_NOTIFICATIONS.has(m.method))
    if (notices.length) {
      let session: McpSession | null = null
      if (section.sessions === 'stateful') {
        session = await sessionOf(req, reply, a.principal, ttl)
        if (!session) return reply
      }
      await relayNotifications(a.server, session, a.principal, notices, ttl)
      messages = messages.filter((m) => !notices.includes(m))
      if (messages.length === 0) return reply.code(202).send()
    }
    let holder: { session: McpSession } | null = null
    let hello: Awaited<ReturnType<NonNullable<McpServerRuntime['upstream']>['hello']>> | null = null
    const abort = new AbortController()
    reply.raw.once('close', () => abort.abort())
    if (section.sessions === 'stateful') {
      if (initialize && messages.length === 1) {
        const asked = (initialize.params as { protocolVersion?: unknown } | undefined)?.protocolVersion
        const protocolVersion = typeof asked === 'string' && SUPPORTED_PROTOCOL_VERSIONS.includes(asked) ? asked : LATEST_PROTOCOL_VERSION
        const clientCapabilities = relayedCapabilities((initialize.params as { capabilities?: unknown } | undefined)?.capabilities)
        holder = { session: { id: randomUUID(), server: req.params.id, consumer: a.principal.consumerId, protocolVersion, createdAt: d.clock.now(), upstream: {}, clientCapabilities } }
        try {
          if (a.server.upstream) hello = await a.server.upstream.hello({ signal: abort.signal, binding: bindingOf(holder, ttl), clientCapabilities })
          await sessions.put(holder.session, ttl)
        } catch (err) {
          const code = (err as { code?: unknown }).code
          if (typeof code === 'number') return sendRpc(reply, 502, code, String((err as Error).message).replace(/^MCP error -?\d+: /, ''), (err as { data?: Record<string, unknown> }).data, initialize.id as string | number)
          logger.warn({ reason: (err as Error).message?.slice(0, 200) }, 'mcp: session store unavailable')
          return sendRpc(reply, 503, -32603, 'The session store is unavailable; retry shortly.', { code: 'service_unavailable' })
        }
      } else if (!initialize) {
        const session = await sessionOf(req, reply, a.principal, ttl)
        if (!session) return reply
        holder = { session }
      }
      // (a batch that contains initialize is left to the SDK, which refuses it)
    } else if (initialize && a.server.upstream) {
      hello = await a.server.upstream.hello({ signal: abort.signal, binding: null }).catch(() => null)
    }

    const endpoint = buildEndpoint({
      serverId: req.params.id, source: a.server.source, upstream: a.server.upstream, principal: a.principal, requestId: req.id,
      binding: holder ? bindingOf(holder, ttl) : null, governance: a.mcp.governance, maxResultBytes: a.server.cfg.maxResultBytes,
      clientRequests, sessionId: holder?.session.id ?? null, clientCapabilities: holder?.session.clientCapabilities ?? null,
      screen: screenFor(a.principal), now: () => d.clock.now(), logger, version: VERSION,
      capabilities: hello ? hello.capabilities : undefined, instructions: hello?.instructions,
    })
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined })
    await endpoint.connect(transport)
    reply.hijack()
    const raw = reply.raw
    raw.setHeader('x-request-id', req.id)
    if (holder) raw.setHeader('mcp-session-id', holder.session.id)
    d.inflight.count++
    let done = false
    const finish = () => {
      if (done) return
      done = true
      d.inflight.count--
      void endpoint.close().catch(() => {})
    }
    raw.once('close', finish)
    // Each request in the body may be cancelled by a notification posted to any replica.
    const untrack = messages.filter((m) => m.method !== undefined && (typeof m.id === 'string' || typeof m.id === 'number')).map((m) =>
      clientRequests.track(holder?.session.id ?? null, a.principal.consumerId, m.id as string | number, (reason) => {
        transport.onmessage?.({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: m.id as string | number, ...(reason ? { reason } : {}) } })
        // A cancelled request gets no answer: its stream ends (when it carried nothing else).
        if (untrack.length === 1) void transport.close().catch(() => {})
      }))
    raw.once('close', () => { for (const u of untrack) u() })
    try {
      await transport.handleRequest(req.raw, raw, Array.isArray(body) ? messages : messages[0])
    } catch (err) {
      logger.error({ reqId: req.id, err: { type: (err as Error)?.name, message: String((err as Error)?.message).slice(0, 200) } }, 'mcp: transport error')
      if (!raw.headersSent) {
        raw.writeHead(500, { 'content-type': 'application/json' })
        raw.end(rpcErrorBody(-32603, 'Internal error'))
      } else raw.destroy()
      finish()
    }
    return reply
  }

  const get = async (req: Req, reply: FastifyReply): Promise<FastifyReply> => {
    const a = await admit(req, reply)
    if (!a) return reply
    const section = a.snapshot.config.mcp
    if (section.sessions !== 'stateful' || !a.server.upstream) {
      reply.header('allow', section.sessions === 'stateful' ? 'POST, DELETE' : 'POST')
      return sendRpc(reply, 405, -32600, 'This endpoint sends no server-initiated messages outside a request.', { code: 'method_not_allowed' })
    }
    const session = await sessionOf(req, reply, a.principal, section.sessionTtl)
    if (!session) return reply
    const target = a.server.upstream.streamTarget(bindingOf({ session }, section.sessionTtl))
    if (!target) {
      reply.header('allow', 'POST, DELETE')
      return sendRpc(reply, 405, -32600, 'The MCP server offers no server-initiated stream.', { code: 'method_not_allowed' })
    }
    // Server-to-client messages: the upstream's GET stream relayed byte for byte, never buffered.
    const abort = new AbortController()
    reply.raw.once('close', () => abort.abort())
    const u = new URL(target.url)
    let res
    try {
      const lastEventId = req.headers['last-event-id']
      res = await d.clients.poolFor(target.backend, target.origin).request({
        method: 'GET', path: u.pathname + u.search, headers: { ...target.headers, ...(typeof lastEventId === 'string' && lastEventId.length <= 256 ? { 'last-event-id': lastEventId } : {}) },
        signal: abort.signal, headersTimeout: a.server.upstream.streamIdleTimeout, bodyTimeout: 0,
      })
    } catch {
      if (abort.signal.aborted) return reply
      return sendRpc(reply, 502, MCP_ERR.BAD_GATEWAY, `The MCP server "${req.params.id}" could not be reached.`, { code: 'bad_gateway' })
    }
    if (res.statusCode !== 200 || !String(res.headers['content-type'] ?? '').includes('text/event-stream')) {
      await res.body.dump().catch(() => {})
      if (res.statusCode === 405) {
        reply.header('allow', 'POST, DELETE')
        return sendRpc(reply, 405, -32600, 'The MCP server offers no server-initiated stream.', { code: 'method_not_allowed' })
      }
      return sendRpc(reply, 502, MCP_ERR.BAD_GATEWAY, `The MCP server "${req.params.id}" refused the stream (${res.statusCode}).`, { code: 'bad_gateway' })
    }
    reply.hijack()
    reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'mcp-session-id': session.id, 'x-request-id': req.id })
    reply.raw.flushHeaders()
    await pipeline(res.body, reply.raw).catch(() => {
      res.body.destroy()
      if (!reply.raw.writableEnded) reply.raw.destroy()
    })
    return reply
  }

  const del = async (req: Req, reply: FastifyReply): Promise<FastifyReply> => {
    const a = await admit(req, reply)
    if (!a) return reply
    const section = a.snapshot.config.mcp
    if (section.sessions !== 'stateful') {
      reply.header('allow', 'POST')
      return sendRpc(reply, 405, -32600, 'Sessions are off on this gateway (stateless mode).', { code: 'method_not_allowed' })
    }
    const session = await sessionOf(req, reply, a.principal, section.sessionTtl)
    if (!session) return reply
    if (a.server.upstream) await a.server.upstream.terminate(bindingOf({ session }, section.sessionTtl), AbortSignal.timeout(5000))
    await sessions.delete(session.id)
    return reply.code(200).send()
  }

  // RFC 9728: where a client learns which authorization servers issue tokens for this endpoint.
  const metadata = async (req: Req, reply: FastifyReply): Promise<FastifyReply> => {
    const snapshot = d.runtime().snapshot
    const server = mcpOf(snapshot).servers.get(req.params.id)
    if (!server) return sendRpc(reply, 404, -32601, `Unknown MCP server "${req.params.id.slice(0, 64)}".`, { code: 'not_found' })
    const jwt = (snapshot.config.auth as { jwt?: ReadonlyArray<{ issuer?: string }> }).jwt
    const authorizationServers = snapshot.config.mcp.authorizationServers ?? (jwt ?? []).map((j) => j.issuer).filter((i): i is string => typeof i === 'string')
    return reply.header('cache-control', 'max-age=300').send({
      resource: `${originOf(req)}/mcp/${encodeURIComponent(req.params.id)}`,
      authorization_servers: authorizationServers,
      bearer_methods_supported: ['header'],
      resource_name: server.cfg.description ?? `Sluice MCP server ${req.params.id}`,
    })
  }

  /**
   * Answers the consumer sent to server-to-client requests: the gateway's own (relayed during a request,
   * wherever that request is being served) and the upstream server's (sent on the GET stream, relayed as
   * they were). False when an answer could not be passed on.
   */
  const deliverReplies = async (server: McpServerRuntime, session: McpSession | null, principal: Principal, replies: Array<Record<string, unknown>>, ttl: number): Promise<boolean> => {
    const theirs: Array<Record<string, unknown>> = []
    try {
      for (const m of replies) {
        if (typeof m.id === 'string' && m.id.startsWith(RELAY_ID_PREFIX)) {
          await clientRequests.deliver({ id: m.id.slice(0, 128), session: session?.id ?? null, consumer: principal.consumerId, message: { result: m.result, error: m.error as never } })
        } else theirs.push(m)
      }
    } catch (err) {
      logger.warn({ reason: String((err as Error)?.message).slice(0, 200) }, 'mcp: a client answer could not be passed to the replica that asked')
      return false
    }
    if (theirs.length && server.upstream && session) await server.upstream.forwardReplies(bindingOf({ session }, ttl), theirs, AbortSignal.timeout(10_000))
    return true
  }

  /**
   * `notifications/cancelled` stops the request wherever it is being served (the SDK's own cancellation
   * there, which cancels the upstream call too); `notifications/roots/list_changed` goes to the upstream
   * server of the session.
   */
  const relayNotifications = async (server: McpServerRuntime, session: McpSession | null, principal: Principal, notices: Array<Record<string, unknown>>, ttl: number): Promise<void> => {
    for (const n of notices) {
      const params = (n.params ?? {}) as { requestId?: unknown; reason?: unknown }
      if (n.method === 'notifications/cancelled') {
        if (typeof params.requestId !== 'string' && typeof params.requestId !== 'number') continue
        const requestId = typeof params.requestId === 'string' ? params.requestId.slice(0, 128) : params.requestId
        await clientRequests.cancel({ session: session?.id ?? null, consumer: principal.consumerId, requestId, reason: typeof params.reason === 'string' ? params.reason.slice(0, 500) : undefined })
          .catch((err: Error) => logger.warn({ reason: String(err.message).slice(0, 200) }, 'mcp: a cancellation could not be passed to the other replicas'))
      } else if (server.upstream && session) {
        await server.upstream.forwardReplies(bindingOf({ session }, ttl), [{ jsonrpc: '2.0', method: n.method }], AbortSignal.timeout(10_000))
      }
    }
  }

  return {
    post, get, delete: del, metadata,
    closeRequests: () => clientRequests.close(),
    close: async () => { await clientRequests.close(); await sessions.close() },
  }
}
