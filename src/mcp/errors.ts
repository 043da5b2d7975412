import { McpError } from '@modelcontextprotocol/sdk/types.js'

// MCP_ERR and rpcErrorBody live in rpc.ts, which does not load the SDK (the routes need them before it is).
export { MCP_ERR, rpcErrorBody } from './rpc.ts'

export function mcpError(code: number, message: string, data: Record<string, unknown>): McpError {
  const err = new McpError(code, message, data)
  // The SDK prefixes "MCP error <code>:" to the message, and the client prefixes it again on its side.
  err.message = message
  return err
}
