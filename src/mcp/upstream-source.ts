import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import {
  CallToolResultSchema, CreateMessageRequestSchema, ElicitRequestSchema, ListRootsRequestSchema, ListToolsResultSchema, LoggingMessageNotificationSchema, McpError,
  PingRequestSchema, ResultSchema, type CallToolResult, type ClientCapabilities, type ServerCapabilities,
} from '@modelcontextprotocol/sdk/types.js'
import type { Logger } from 'pino'
import { fetch as undiciFetch, type Dispatcher } from 'undici'
import type { BackendConfig } from '../config/schema.ts'
import type { UpstreamClients } from '../upstream/client.ts'
import type { McpServerConfig } from './config.ts'
import { MCP_ERR, mcpError } from './errors.ts'
import { uniqueRequestIds } from './request-ids.ts'
import type { CallContext, ExposedTool, ToolOrigin, ToolSource, UpstreamBinding, UpstreamSessionRef } from './source.ts'

type UpstreamConfig = Extract<McpServerConfig, { upstream: unknown }>
const MAX_PAGES = 50
/** How long messages still being posted upstream may take to go out once an exchange ends. */
const FLUSH_SENDS_MS = 5_000

/** What initialize told us about the upstream server, for the gateway's own initialize answer. */
export interface UpstreamHello {
  readonly capabilities: ServerCapabilities
  readonly instructions?: string
  readonly protocolVersion: string | null
}

/**
 * Passthrough to an existing MCP server over Streamable HTTP, with the SDK's client. The gateway speaks to
 * the server with its own credential (never the consumer's). The upstream session id is kept in the
 * gateway session record, so whichever gateway process serves the next request continues the same upstream
 * session; without a gateway session (stateless mode, aggregates) one process-wide session per server is used.
 * Every upstream answer is read through a byte cap, so an oversized result cannot fill memory.
 */
export class UpstreamSource implements ToolSource {
  private readonly shared = new Map<string, UpstreamSessionRef>()
  private readonly sharedBinding: UpstreamBinding = {
    get: (id) => this.shared.get(id) ?? null,
    set: async (id, ref) => { if (ref) this.shared.set(id, ref); else this.shared.delete(id) },
  }
  private readonly pseudoBackend: BackendConfig

  constructor(private readonly cfg: UpstreamConfig, private readonly clients: UpstreamClients, private readonly logger: Logger, private readonly version: string) {
    // The connection pool is keyed like a backend's; the upstream is not a Sluice backend, so it gets a pool id of its own.
    this.pseudoBackend = { id: `mcp-upstream:${cfg.id}`, maxConnections: cfg.upstream.maxConnections, connectTimeout: cfg.upstream.connectTimeout } as BackendConfig
  }

  get id(): string {
    return this.cfg.id
  }

  private headers(): Record<string, string> {
    const h: Record<string, string> = { ...this.cfg.upstream.headers }
    const a = this.cfg.upstream.auth
    if (a) {
      if (a.header) h[a.header.toLowerCase()] = a.apiKey
      else h.authorization = `Bearer ${a.apiKey}`
    }
    return h
  }

  /** fetch over the gateway's pooled connections, every body read through the result cap. */
  private fetcher(guard?: { tooLarge: boolean; abort: AbortController }): (url: string | URL, init?: RequestInit) => Promise<Response> {
    const origin = new URL(this.cfg.upstream.url).origin
    const max = this.cfg.maxResultBytes
    return async (url, init) => {
      const pool = this.clients.poolFor(this.pseudoBackend, origin) as unknown as Dispatcher
      const res = await undiciFetch(url, { ...(init as object), dispatcher: pool } as Parameters<typeof undiciFetch>[1])
      if (!res.body) return res as unknown as Response
      let seen = 0
      const body = res.body as unknown as ReadableStream<Uint8Array>
      const capped = body.pipeThrough(new TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.byteLength
          if (seen > max) {
            controller.error(new ResultTooLarge(max))
            // The SDK only logs a broken stream; the request waiting on it must fail now, not at its timeout.
            if (guard) {
              guard.tooLarge = true
              guard.abort.abort()
            }
          } else controller.enqueue(chunk)
        },
      }))
      return new Response(capped as ReadableStream, { status: res.status, statusText: res.statusText, headers: res.headers as unknown as Headers })
    }
  }

  /**
   * Runs `fn` with a client on the upstream session of `binding` (initialising one when there is none, and
   * once more when the server says the stored session is gone).
   */
  async withClient<T>(ctx: Pick<CallContext, 'signal'> & { binding: UpstreamBinding | null; clientCapabilities?: ClientCapabilities | null }, fn: (client: Client, hello: UpstreamHello | null, signal: AbortSignal) => Promise<T>): Promise<T> {
    const binding = ctx.binding ?? this.sharedBinding
    for (let attempt = 0; ; attempt++) {
      const saved = binding.get(this.cfg.id)
      const guard = { tooLarge: false, abort: new AbortController() }
      const signal = AbortSignal.any([ctx.signal, guard.abort.signal])
      const transport = new StreamableHTTPClientTransport(new URL(this.cfg.upstream.url), {
        sessionId: saved?.sessionId ?? undefined,
        fetch: this.fetcher(guard),
        requestInit: { headers: this.headers() },
        reconnectionOptions: { maxReconnectionDelay: 1000, initialReconnectionDelay: 100, reconnectionDelayGrowFactor: 2, maxRetries: 0 },
      })
      if (saved?.protocolVersion) transport.setProtocolVersion(saved.protocolVersion)
      uniqueRequestIds(transport)
      // Messages still being posted when the exchange ends (a cancellation sent as the call is aborted) finish first.
      const sending = new Set<Promise<void>>()
      const send = transport.send.bind(transport)
      transport.send = (message, options) => {
        const p = send(message, options)
        sending.add(p)
        void p.finally(() => sending.delete(p)).catch(() => {})
        return p
      }
      // The consumer's own capabilities (sampling, elicitation, roots): the server may ask it those, through the gateway.
      const client = new Client({ name: 'sluice-gateway', version: this.version }, { capabilities: ctx.clientCapabilities ?? {} })
      try {
        let hello: UpstreamHello | null = null
        if (saved?.sessionId) {
          await client.connect(transport)
        } else {
          await client.connect(transport, { timeout: this.cfg.upstream.timeout, signal })
          hello = { capabilities: client.getServerCapabilities() ?? {}, instructions: client.getInstructions(), protocolVersion: transport.protocolVersion ?? null }
          await binding.set(this.cfg.id, { sessionId: transport.sessionId ?? null, protocolVersion: transport.protocolVersion ?? null })
        }
        return await fn(client, hello, signal)
      } catch (err) {
        if (guard.tooLarge) throw this.translate(new ResultTooLarge(this.cfg.maxResultBytes), ctx.signal)
        if (attempt === 0 && saved?.sessionId && sessionGone(err)) {
          await binding.set(this.cfg.id, null)
          continue
        }
        throw this.translate(err, ctx.signal)
      } finally {
        // Ends this HTTP exchange only: the upstream session stays open for the next request.
        const close = () => void client.close().catch(() => {})
        if (sending.size === 0) close()
        else void Promise.race([Promise.allSettled([...sending]), new Promise((r) => setTimeout(r, FLUSH_SENDS_MS).unref())]).then(close)
      }
    }
  }

  private translate(err: unknown, signal: AbortSignal): unknown {
    if (err instanceof ResultTooLarge || (err as { cause?: unknown })?.cause instanceof ResultTooLarge || /larger than the gateway relays/.test(String((err as Error)?.message))) {
      return mcpError(MCP_ERR.RESULT_TOO_LARGE, `The upstream answer is larger than the gateway relays (${this.cfg.maxResultBytes} bytes).`, { code: 'result_too_large', maxBytes: this.cfg.maxResultBytes })
    }
    if (err instanceof McpError) {
      if (err.code === -32001) return mcpError(MCP_ERR.GATEWAY_TIMEOUT, `The MCP server "${this.cfg.id}" did not answer in time.`, { code: 'gateway_timeout' })
      return err // the server's own JSON-RPC error, relayed as it is
    }
    if (signal.aborted) return err
    this.logger.warn({ server: this.cfg.id, reason: String((err as Error)?.message ?? err).slice(0, 200) }, 'mcp: upstream server failed')
    return mcpError(MCP_ERR.BAD_GATEWAY, `The MCP server "${this.cfg.id}" could not be reached or answered badly.`, { code: 'bad_gateway' })
  }

  /** Initialises a fresh upstream session for a new gateway session and reports what the server offers. */
  async hello(ctx: Pick<CallContext, 'signal'> & { binding: UpstreamBinding | null; clientCapabilities?: ClientCapabilities | null }): Promise<UpstreamHello> {
    return this.withClient(ctx, async (_c, hello) => hello ?? { capabilities: {}, protocolVersion: null })
  }

  async listTools(ctx: CallContext): Promise<ExposedTool[]> {
    return this.withClient(ctx, async (client, _hello, signal) => {
      const out: ExposedTool[] = []
      let cursor: string | undefined
      for (let page = 0; page < MAX_PAGES; page++) {
        const res = await client.request({ method: 'tools/list', params: cursor ? { cursor } : {} }, ListToolsResultSchema, { timeout: this.cfg.upstream.timeout, signal })
        for (const tool of res.tools) out.push({ tool, origin: { server: this.cfg.id, tool: tool.name, backend: this.cfg.id } })
        cursor = res.nextCursor
        if (!cursor) break
      }
      return out
    })
  }

  async resolve(name: string): Promise<ToolOrigin | null> {
    return { server: this.cfg.id, tool: name, backend: this.cfg.id }
  }

  async callTool(ctx: CallContext, name: string, args: Record<string, unknown>): Promise<CallToolResult> {
    return this.withClient(ctx, async (client, _hello, signal) => {
      // Log messages the server sends while it works are relayed on the consumer's stream.
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => ctx.notify(n as never))
      this.relayClientRequests(client, ctx)
      const onprogress = ctx.progressToken === undefined ? undefined : (p: { progress: number; total?: number; message?: string }) => {
        void ctx.notify({ method: 'notifications/progress', params: { ...p, progressToken: ctx.progressToken } })
      }
      return (await client.request({ method: 'tools/call', params: { name, arguments: args } }, CallToolResultSchema, {
        timeout: this.cfg.upstream.timeout, signal, onprogress, resetTimeoutOnProgress: true, maxTotalTimeout: this.cfg.upstream.timeout * 10,
      })) as CallToolResult
    })
  }

  /** Any other request (resources, prompts, completion, logging level, ping), relayed as it is. */
  async forward(ctx: CallContext, method: string, params: Record<string, unknown> | undefined): Promise<Record<string, unknown>> {
    return this.withClient(ctx, async (client, _hello, signal) => {
      this.relayClientRequests(client, ctx)
      return (await client.request({ method, params } as never, ResultSchema, { timeout: this.cfg.upstream.timeout, signal })) as Record<string, unknown>
    })
  }

  /**
   * What the server asks of the client while it serves a request (sampling, elicitation, roots — those the
   * consumer declared — and ping) is asked of the consumer on its request's stream; its answer (or error)
   * goes back to the server. Without a way to ask, the SDK's defaults stand (ping answered, the rest refused).
   */
  private relayClientRequests(client: Client, ctx: CallContext): void {
    const ask = ctx.askClient
    if (!ask) return
    // A person may be answering an elicitation: as long as a whole tool call may take.
    const timeoutMs = this.cfg.upstream.timeout * 10
    const relay = (req: { method: string; params?: Record<string, unknown> }, extra: { signal: AbortSignal }) => ask(req.method, req.params, extra.signal, timeoutMs) as never
    const caps = ctx.clientCapabilities ?? {}
    client.setRequestHandler(PingRequestSchema, relay)
    if (caps.sampling) client.setRequestHandler(CreateMessageRequestSchema, relay)
    if (caps.elicitation) client.setRequestHandler(ElicitRequestSchema, relay)
    if (caps.roots) client.setRequestHandler(ListRootsRequestSchema, relay)
  }

  /**
   * The consumer's answers to requests the server sent on the standalone GET stream (relayed byte for byte,
   * so under the server's own ids): posted to the server on the bound upstream session.
   */
  async forwardReplies(binding: UpstreamBinding | null, replies: readonly Record<string, unknown>[], signal: AbortSignal): Promise<boolean> {
    // (also the notifications meant for the server's session, such as roots/list_changed)
    const saved = (binding ?? this.sharedBinding).get(this.cfg.id)
    if (!saved?.sessionId) return false
    const headers = { ...this.headers(), 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': saved.sessionId, ...(saved.protocolVersion ? { 'mcp-protocol-version': saved.protocolVersion } : {}) }
    try {
      const res = await this.fetcher()(this.cfg.upstream.url, { method: 'POST', headers, body: JSON.stringify(replies.length === 1 ? replies[0] : replies), signal })
      await res.body?.cancel().catch(() => {})
      return res.status >= 200 && res.status < 300
    } catch (err) {
      this.logger.warn({ server: this.cfg.id, reason: String((err as Error)?.message).slice(0, 200) }, 'mcp: a client answer could not be forwarded to the server')
      return false
    }
  }

  /** Ends the upstream session bound to a gateway session that is being deleted. */
  async terminate(binding: UpstreamBinding, signal: AbortSignal): Promise<void> {
    const saved = binding.get(this.cfg.id)
    if (!saved?.sessionId) return
    const transport = new StreamableHTTPClientTransport(new URL(this.cfg.upstream.url), { sessionId: saved.sessionId, fetch: this.fetcher(), requestInit: { headers: this.headers(), signal } })
    try {
      await transport.terminateSession()
    } catch (err) {
      this.logger.debug({ server: this.cfg.id, reason: String((err as Error)?.message).slice(0, 200) }, 'mcp: upstream session could not be terminated')
    }
  }

  /** Where a standalone GET stream (server-to-client messages) is opened, with the gateway's headers. */
  streamTarget(binding: UpstreamBinding | null): { url: string; origin: string; headers: Record<string, string>; backend: BackendConfig } | null {
    const saved = (binding ?? this.sharedBinding).get(this.cfg.id)
    if (!saved?.sessionId) return null
    const headers = { ...this.headers(), accept: 'text/event-stream', 'mcp-session-id': saved.sessionId, ...(saved.protocolVersion ? { 'mcp-protocol-version': saved.protocolVersion } : {}) }
    return { url: this.cfg.upstream.url, origin: new URL(this.cfg.upstream.url).origin, headers, backend: this.pseudoBackend }
  }

  get streamIdleTimeout(): number {
    return this.cfg.upstream.timeout
  }
}

class ResultTooLarge extends Error {
  constructor(readonly maxBytes: number) {
    super(`the answer is larger than the gateway relays (${maxBytes} bytes)`)
  }
}

function sessionGone(err: unknown): boolean {
  return (err instanceof StreamableHTTPError && err.code === 404) || /\b404\b|session not found/i.test(String((err as Error)?.message))
}
