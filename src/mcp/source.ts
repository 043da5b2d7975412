import type { CallToolResult, ClientCapabilities, Tool } from '@modelcontextprotocol/sdk/types.js'
import type { Principal } from '../core/context.ts'

/** Where a tool really lives: the server that defines it and its name there. Governance globs match `server.tool`. */
export interface ToolOrigin {
  readonly server: string
  readonly tool: string
  /** The Sluice backend (REST) or upstream server id that answers it, for the ledger. */
  readonly backend: string
}

export interface ExposedTool {
  /** The tool as this endpoint lists it (an aggregate's prefixed name). */
  readonly tool: Tool
  readonly origin: ToolOrigin
}

/** What a tool source needs to know about the call it serves. */
export interface CallContext {
  readonly signal: AbortSignal
  readonly principal: Principal
  readonly requestId: string
  /** Where an upstream server's session for this gateway session is kept (null: the process-wide one). */
  readonly binding: UpstreamBinding | null
  /** Relays a notification (progress, log message) to the consumer on this request's stream. */
  readonly notify: (notification: { method: string; params?: Record<string, unknown> }) => Promise<void>
  /** The consumer's progress token, when it asked for progress. */
  readonly progressToken?: string | number
  /** What the consumer can be asked (declared at initialize); null: nothing (stateless, or none declared). */
  readonly clientCapabilities: ClientCapabilities | null
  /**
   * Asks the consumer something on this request's stream (a server-to-client request: sampling,
   * elicitation, roots, ping) and waits for its answer; null where nothing can be asked.
   */
  readonly askClient: ((method: string, params: Record<string, unknown> | undefined, signal: AbortSignal, timeoutMs: number) => Promise<Record<string, unknown>>) | null
}

/** An upstream MCP session id and the protocol revision it speaks, stored per gateway session. */
export interface UpstreamSessionRef {
  readonly sessionId: string | null
  readonly protocolVersion: string | null
}

export interface UpstreamBinding {
  get(upstreamId: string): UpstreamSessionRef | null
  set(upstreamId: string, ref: UpstreamSessionRef | null): Promise<void>
}

/** A provider of tools behind one `/mcp/{id}` endpoint: REST-derived, an upstream server, or an aggregate. */
export interface ToolSource {
  listTools(ctx: CallContext): Promise<ExposedTool[]>
  /** Which tool an exposed name means, without listing (null: not one of this source's names). */
  resolve(name: string): Promise<ToolOrigin | null>
  callTool(ctx: CallContext, name: string, args: Record<string, unknown>): Promise<CallToolResult>
}
