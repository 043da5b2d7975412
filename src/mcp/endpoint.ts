import { Server } from '@modelcontextprotocol/sdk/server/index.js'
import {
  CallToolRequestSchema, CompleteRequestSchema, GetPromptRequestSchema, ListPromptsRequestSchema, ListResourcesRequestSchema,
  ListResourceTemplatesRequestSchema, ListToolsRequestSchema, McpError, ReadResourceRequestSchema, SetLevelRequestSchema,
  SubscribeRequestSchema, UnsubscribeRequestSchema, type CallToolResult, type ClientCapabilities, type ServerCapabilities,
} from '@modelcontextprotocol/sdk/types.js'
import type { Logger } from 'pino'
import type { Principal } from '../core/context.ts'
import type { ClientRequests } from './client-requests.ts'
import type { ToolContentScreen } from './content-screen.ts'
import type { Governance } from './governance.ts'
import { MCP_ERR, mcpError } from './errors.ts'
import type { ToolCallStatus } from './metrics.ts'
import type { CallContext, ExposedTool, ToolSource, UpstreamBinding } from './source.ts'
import type { UpstreamSource } from './upstream-source.ts'

export interface EndpointRequest {
  readonly serverId: string
  readonly source: ToolSource
  /** Set for a passthrough endpoint: resources, prompts and the rest are relayed to it. */
  readonly upstream: UpstreamSource | null
  readonly principal: Principal
  readonly requestId: string
  readonly binding: UpstreamBinding | null
  readonly governance: Governance
  readonly maxResultBytes: number
  readonly now: () => number
  readonly logger: Logger
  readonly version: string
  /** What initialize answers (passthrough: what the upstream server offers); null = the gateway's own set. */
  /** Server-to-client requests relayed to this consumer, and the session they belong to. */
  readonly clientRequests: ClientRequests
  readonly sessionId: string | null
  readonly clientCapabilities: ClientCapabilities | null
  /** Content safety on this consumer's tool arguments and results (its content-safety policies). */
  readonly screen: ToolContentScreen
  readonly capabilities?: ServerCapabilities
  readonly instructions?: string
}

const TOOLS_ONLY: ServerCapabilities = { tools: { listChanged: false } }
/** The methods relayed to a passthrough server besides tools. */
const RELAYED = [
  [ListResourcesRequestSchema, 'resources'], [ListResourceTemplatesRequestSchema, 'resources'], [ReadResourceRequestSchema, 'resources'],
  [SubscribeRequestSchema, 'resources'], [UnsubscribeRequestSchema, 'resources'],
  [ListPromptsRequestSchema, 'prompts'], [GetPromptRequestSchema, 'prompts'],
  [CompleteRequestSchema, 'completions'], [SetLevelRequestSchema, 'logging'],
] as const

/**
 * The MCP server the gateway presents on `/mcp/{id}` for one HTTP request (the SDK's `Server`, so
 * initialize, protocol-version negotiation, ping and JSON-RPC framing are the SDK's). Sessions live in the
 * session store rather than in this object, which is why one is built per request: any process can serve
 * any session. tools/list is filtered by the product's allow/deny and sorted by name (a stable order,
 * whatever order upstream members answer in); tools/call is checked, limited, relayed and recorded.
 */
export function buildEndpoint(r: EndpointRequest): Server {
  const passthroughCaps: ServerCapabilities = r.upstream
    ? { tools: { listChanged: false }, resources: { subscribe: true, listChanged: false }, prompts: { listChanged: false }, completions: {}, logging: {} }
    : TOOLS_ONLY
  const capabilities = r.capabilities ? { ...r.capabilities, tools: r.capabilities.tools ?? { listChanged: false } } : passthroughCaps
  const server = new Server({ name: `sluice/${r.serverId}`, version: r.version }, { capabilities, instructions: r.instructions })

  const ctxOf = (extra: { signal: AbortSignal; requestId: string | number; sendNotification: (n: never) => Promise<void>; _meta?: { progressToken?: string | number } }): CallContext => ({
    signal: extra.signal, principal: r.principal, requestId: r.requestId, binding: r.binding,
    notify: (n) => extra.sendNotification(n as never).catch(() => {}),
    progressToken: extra._meta?.progressToken,
    clientCapabilities: r.clientCapabilities,
    // On the stream of the consumer's request being served (its SSE answer), under a gateway id.
    askClient: (method, params, signal, timeoutMs) => r.clientRequests.ask({
      session: r.sessionId, consumer: r.principal.consumerId, method, params, signal: AbortSignal.any([signal, extra.signal]), timeoutMs,
      send: async (message) => {
        if (!server.transport) throw new Error('no stream')
        await server.transport.send(message, { relatedRequestId: extra.requestId })
      },
    }),
  })

  server.setRequestHandler(ListToolsRequestSchema, async (_req, extra) => {
    const tools = await guard(r, () => r.source.listTools(ctxOf(extra as never)))
    const visible = tools.filter((t: ExposedTool) => r.governance.allowed(r.principal, t.origin))
    visible.sort((a, b) => (a.tool.name < b.tool.name ? -1 : a.tool.name > b.tool.name ? 1 : 0))
    return { tools: visible.map((t) => t.tool) }
  })

  server.setRequestHandler(CallToolRequestSchema, async (req, extra) => {
    const startedAt = r.now()
    const name = req.params.name
    const args = (req.params.arguments ?? {}) as Record<string, unknown>
    const argsText = JSON.stringify(args)
    const origin = await guard(r, () => r.source.resolve(name))
    // A denied tool and an unknown one get the same answer: the consumer learns nothing about tools it may not use.
    if (!origin || !r.governance.allowed(r.principal, origin)) throw mcpError(MCP_ERR.UNKNOWN_TOOL, `Unknown tool: ${name.slice(0, 64)}`, { code: 'tool_not_found' })
    let status: ToolCallStatus = 'error'
    let resultText: string | null = null
    let bytesOut = 0
    try {
      await r.governance.admit(r.principal, r.serverId, origin)
      if (r.screen.active) await r.screen.arguments(args, extra.signal)
      const result: CallToolResult = await r.source.callTool(ctxOf(extra as never), name, args)
      let text = JSON.stringify(result)
      bytesOut = Buffer.byteLength(text)
      if (bytesOut > r.maxResultBytes) {
        throw mcpError(MCP_ERR.RESULT_TOO_LARGE, `The tool result is larger than the gateway relays (${r.maxResultBytes} bytes).`, { code: 'result_too_large', maxBytes: r.maxResultBytes })
      }
      if (r.screen.active) {
        await r.screen.result(result, extra.signal)
        text = JSON.stringify(result)
      }
      status = result.isError ? 'tool_error' : 'ok'
      resultText = text
      return result
    } catch (err) {
      status = statusOf(err)
      throw safe(r, err)
    } finally {
      r.governance.record({
        principal: r.principal, requestId: r.requestId, endpoint: r.serverId, origin, status, startedAt, endedAt: r.now(),
        bytesIn: Buffer.byteLength(argsText), bytesOut, args, resultText,
      })
    }
  })

  if (r.upstream) {
    const upstream = r.upstream
    for (const [schema, cap] of RELAYED) {
      if (!(capabilities as Record<string, unknown>)[cap]) continue
      server.setRequestHandler(schema as typeof ListResourcesRequestSchema, async (req, extra) =>
        guard(r, () => upstream.forward(ctxOf(extra as never), req.method, req.params as Record<string, unknown> | undefined)) as never)
    }
  }
  return server
}

async function guard<T>(r: EndpointRequest, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn()
  } catch (err) {
    throw safe(r, err)
  }
}

/** Errors the consumer may see: JSON-RPC errors as they are; anything else becomes a bare internal error (logged). */
function safe(r: EndpointRequest, err: unknown): McpError {
  if (err instanceof McpError) return err
  r.logger.error({ reqId: r.requestId, server: r.serverId, err: { type: (err as Error)?.name, message: String((err as Error)?.message ?? err).slice(0, 200) } }, 'mcp: internal error')
  return new McpError(-32603, 'Internal error')
}

function statusOf(err: unknown): ToolCallStatus {
  const code = (err as { code?: unknown })?.code
  switch (code) {
    case MCP_ERR.RATE_LIMITED: return 'rate_limited'
    case MCP_ERR.QUOTA_EXCEEDED: return 'quota_exceeded'
    case MCP_ERR.BAD_GATEWAY: return 'bad_gateway'
    case MCP_ERR.GATEWAY_TIMEOUT: return 'timeout'
    case MCP_ERR.RESULT_TOO_LARGE: return 'too_large'
    case -32602: return 'invalid'
    case MCP_ERR.CONTENT_FILTERED: return 'content_filtered'
    default: return 'error'
  }
}
