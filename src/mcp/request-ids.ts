import { randomUUID } from 'node:crypto'
import type { Transport } from '@modelcontextprotocol/sdk/shared/transport.js'
import type { JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'

type Message = Record<string, any>

/**
 * Makes the JSON-RPC ids (and progress tokens) a short-lived SDK client sends unique within the upstream
 * session. The gateway builds one client per consumer request and every client counts its ids from 0, while
 * the upstream session is shared by all of them (and by every replica): two calls in flight at once would
 * both be request 0, and the server would answer, or cancel, the wrong one. Outgoing ids get a prefix of
 * this exchange's own; answers and progress notifications coming back have it removed before the client
 * sees them. Requests the server makes of the client keep the server's ids.
 */
export function uniqueRequestIds(transport: Transport): void {
  const prefix = `sluice-${randomUUID().slice(0, 12)}-`
  const mapped = (id: unknown) => (typeof id === 'number' || typeof id === 'string' ? `${prefix}${id}` : id)
  const unmapped = (id: unknown) => {
    if (typeof id !== 'string' || !id.startsWith(prefix)) return id
    const rest = id.slice(prefix.length)
    return /^\d+$/.test(rest) ? Number(rest) : rest
  }
  const send = transport.send.bind(transport)
  transport.send = (message, options) => {
    const m = message as Message
    let out = m
    if (typeof m.method === 'string' && m.id !== undefined) {
      const meta = m.params?._meta
      out = { ...m, id: mapped(m.id), ...(meta?.progressToken !== undefined ? { params: { ...m.params, _meta: { ...meta, progressToken: mapped(meta.progressToken) } } } : {}) }
    } else if (m.method === 'notifications/cancelled' && m.params) {
      out = { ...m, params: { ...m.params, requestId: mapped(m.params.requestId) } }
    }
    return send(out as JSONRPCMessage, options)
  }
  let handler: Transport['onmessage']
  Object.defineProperty(transport, 'onmessage', {
    configurable: true,
    get: () => handler,
    set: (h: Transport['onmessage']) => {
      handler = h && ((message, extra) => {
        const m = message as Message
        let back = m
        if (m.method === undefined && m.id !== undefined) back = { ...m, id: unmapped(m.id) }
        else if (m.method === 'notifications/progress' && m.params) back = { ...m, params: { ...m.params, progressToken: unmapped(m.params.progressToken) } }
        h(back as JSONRPCMessage, extra)
      })
    },
  })
}
