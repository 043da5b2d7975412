import type { FastifyReply, FastifyRequest } from 'fastify'

// What the MCP routes answer without the MCP SDK (before a message reaches it): this module must not import
// it, so that a gateway without MCP servers never loads it (see routes.ts).

/**
 * The JSON-RPC errors the gateway itself answers on `/mcp/{server-id}` (besides the standard -32700 parse
 * error, -32600 invalid request, -32601 method not found and -32602 invalid params). `data.code` carries
 * the gateway's error code, the same words as the HTTP API's errors.
 */
export const MCP_ERR = {
  /** Unknown tool, or a tool this consumer's product may not use (the two are indistinguishable on purpose). */
  UNKNOWN_TOOL: -32602,
  UNAUTHORIZED: -32001,
  /** The REST API or the upstream MCP server could not be reached or answered badly. */
  BAD_GATEWAY: -32010,
  /** The REST API or the upstream MCP server did not answer in time. */
  GATEWAY_TIMEOUT: -32011,
  /** The tool result is larger than `maxResultBytes`. */
  RESULT_TOO_LARGE: -32012,
  /** A per-tool rate limit: `data.retryAfterMs` says when a call fits again. */
  RATE_LIMITED: -32029,
  /** A per-tool quota for the period is used up: `data.retryAfterMs` runs to the end of the period. */
  QUOTA_EXCEEDED: -32030,
  /** The content-safety policy blocked the tool's arguments (the call was not made) or its result (withheld). */
  CONTENT_FILTERED: -32013,
  /** A content-safety engine is unavailable and the policy fails closed. */
  CONTENT_SAFETY_UNAVAILABLE: -32014,
  SESSION_NOT_FOUND: -32004,
  BATCH_TOO_LARGE: -32600,
} as const

/** A JSON-RPC error envelope answered without the SDK (before a message reaches it). */
export function rpcErrorBody(code: number, message: string, data?: Record<string, unknown>, id: string | number | null = null): string {
  return JSON.stringify({ jsonrpc: '2.0', id, error: { code, message, ...(data ? { data } : {}) } })
}

export function sendRpc(reply: FastifyReply, status: number, code: number, message: string, data?: Record<string, unknown>, id: string | number | null = null): FastifyReply {
  return reply.code(status).type('application/json').send(rpcErrorBody(code, message, data, id))
}

const SAFE_HOST = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$|^\[[0-9A-Fa-f:.]{2,45}\](:\d{1,5})?$/

/** This endpoint's public origin, from the Host header when it is a plain host name (else the socket's address). */
export function originOf(req: FastifyRequest): string {
  const host = req.headers.host
  const proto = (req.socket as { encrypted?: boolean }).encrypted ? 'https' : 'http'
  if (typeof host === 'string' && SAFE_HOST.test(host)) return `${proto}://${host}`
  const addr = req.socket.localAddress ?? '127.0.0.1'
  return `${proto}://${addr.includes(':') ? `[${addr}]` : addr}:${req.socket.localPort}`
}
