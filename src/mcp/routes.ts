import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Clock } from '../core/clock.ts'
import { GatewayError } from '../core/errors.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { Ledger } from '../ledger/ledger.ts'
import type { Authenticator } from '../server/auth.ts'
import type { Runtime } from '../server/runtime.ts'
import type { Stores } from '../stores/types.ts'
import type { Telemetry } from '../telemetry/telemetry.ts'
import type { BaseUrlOf } from '../upstream/router.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import { McpMetrics } from './metrics.ts'
import type { McpPlane } from './plane.ts'
import { sendRpc } from './rpc.ts'
import type { McpSessionStore } from './session-store.ts'

export interface McpRouteDeps {
  readonly runtime: () => Runtime
  readonly auth: Authenticator
  readonly stores: Stores
  readonly clients: UpstreamClients
  readonly baseUrlOf: BaseUrlOf
  readonly ledger: Ledger | null
  readonly telemetry: Telemetry
  readonly clock: Clock
  readonly logger: Logger
  /** The gateway's in-flight counter (shutdown waits for it). */
  readonly inflight: { count: number }
  /** Overrides the session store the `store:` section implies (tests). */
  readonly sessions?: McpSessionStore
}

type Req = FastifyRequest<{ Params: { id: string } }>

const hasServers = (snapshot: Snapshot) => snapshot.config.mcp.servers.length > 0

/**
 * The MCP gateway on the data plane: `POST|GET|DELETE /mcp/{server-id}` (Streamable HTTP) and the OAuth
 * Protected Resource Metadata (RFC 9728) of each endpoint. Consumers authenticate like on every other
 * route; a 401 points at the metadata (`WWW-Authenticate: Bearer resource_metadata=…`). Nothing here can
 * start a local process: servers are REST APIs or remote MCP servers named in the configuration.
 *
 * The handling itself (plane.ts) needs the MCP SDK, ~15–20 MiB of modules and zod schemas: it is loaded
 * when the configuration names an MCP server (at start), else on the first request to an MCP route once a
 * reload has added one. A gateway without MCP servers answers these routes' 404 without ever loading it.
 */
export function registerMcp(app: FastifyInstance, d: McpRouteDeps): { close(): Promise<void> } {
  // Registered at start whatever the configuration, so /metrics lists the MCP series from the first scrape.
  const metrics = new McpMetrics(d.telemetry.prom.registry, d.runtime().snapshot.config.telemetry.maxSeries)
  const logger = d.logger.child({ component: 'mcp' })
  let plane: Promise<McpPlane> | null = null
  const planeOf = (): Promise<McpPlane> => (plane ??= import('./plane.ts').then((m) => m.buildMcpPlane(d, metrics), (err: unknown) => {
    plane = null // a later request tries again
    throw err
  }))
  if (hasServers(d.runtime().snapshot)) {
    planeOf().catch((err: Error) => logger.error({ err: { type: err.name, message: String(err.message).slice(0, 200) } }, 'mcp: the MCP modules could not be loaded'))
  }
  // The cross-replica bus's subscriber connection is closed with the server (the gateway ignores the return).
  app.addHook('onClose', async () => { if (plane) await (await plane.catch(() => null))?.closeRequests() })

  /** The plane, or null with the 404 sent when no MCP server is configured (the SDK stays unloaded). */
  const planeFor = async (req: Req, reply: FastifyReply): Promise<McpPlane | null> => {
    if (plane || hasServers(d.runtime().snapshot)) return planeOf()
    sendRpc(reply, 404, -32601, `Unknown MCP server "${req.params.id.slice(0, 64)}".`, { code: 'not_found' })
    return null
  }

  const rpcErrors = { errorHandler: (err: FastifyError, _req: FastifyRequest, reply: FastifyReply) => {
    const g = err instanceof GatewayError ? err : null
    const status = g?.status ?? (err.statusCode && err.statusCode >= 400 && err.statusCode < 500 ? err.statusCode : 500)
    if (status === 413) return sendRpc(reply, 413, -32600, 'The request body is larger than the gateway accepts.', { code: 'request_too_large' })
    if (status >= 500) {
      logger.error({ err: { type: err.name, message: String(err.message).slice(0, 200) } }, 'mcp: unhandled error')
      return sendRpc(reply, 500, -32603, 'Internal error', { code: 'internal_error' })
    }
    return sendRpc(reply, 400, -32700, 'Parse error: the body is not valid JSON.', { code: 'invalid_request_error' })
  } }

  app.post<{ Params: { id: string } }>('/mcp/:id', rpcErrors, async (req, reply) => (await planeFor(req, reply))?.post(req, reply) ?? reply)
  app.get<{ Params: { id: string } }>('/mcp/:id', rpcErrors, async (req, reply) => (await planeFor(req, reply))?.get(req, reply) ?? reply)
  app.delete<{ Params: { id: string } }>('/mcp/:id', rpcErrors, async (req, reply) => (await planeFor(req, reply))?.delete(req, reply) ?? reply)
  app.get<{ Params: { id: string } }>('/.well-known/oauth-protected-resource/mcp/:id', async (req, reply) => (await planeFor(req, reply))?.metadata(req, reply) ?? reply)

  return { close: async () => { if (plane) await (await plane.catch(() => null))?.close() } }
}
