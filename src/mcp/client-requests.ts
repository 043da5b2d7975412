import { randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { McpError, type ClientCapabilities, type JSONRPCMessage } from '@modelcontextprotocol/sdk/types.js'
import { MCP_ERR, mcpError } from './errors.ts'

/** Ids of the requests the gateway sends to consumers start with this, so their answers are told apart from answers meant for an upstream server. */
export const RELAY_ID_PREFIX = 'sluice-'
/** The client capabilities that let a server ask things of the client; the only ones passed upstream. */
const RELAYED_CAPABILITIES = ['sampling', 'elicitation', 'roots'] as const
const MAX_CAPABILITIES_CHARS = 4096

/** A consumer's answer to a server-to-client request, and whose session it came on. */
export interface ClientReply {
  readonly id: string
  readonly session: string | null
  readonly consumer: string
  readonly message: { result?: unknown; error?: { code: number; message: string; data?: unknown } }
}

/** The consumer cancelling one of its requests (`notifications/cancelled`), which some replica is serving. */
export interface ClientCancel {
  readonly session: string | null
  readonly consumer: string
  readonly requestId: string | number
  readonly reason?: string
}

/** What travels between replicas: an answer to a relayed request, or a cancellation. */
export type RelayMessage = ({ readonly kind: 'reply' } & ClientReply) | ({ readonly kind: 'cancel' } & ClientCancel)

/** Carries answers and cancellations to the process that needs them (Redis pub/sub between replicas; nothing for one process). */
export interface ReplyBus {
  publish(message: RelayMessage): Promise<void>
  /** Resolves once messages published from now on reach `onMessage`. */
  subscribe(onMessage: (message: RelayMessage) => void): Promise<void>
  close(): Promise<void>
}

/** Redis pub/sub: the store's client publishes, a duplicate subscribes (made on first use). */
export class RedisReplyBus implements ReplyBus {
  private sub: Redis | null = null
  private readonly channel: string

  constructor(private readonly redis: Redis, prefix: string, private readonly logger: Logger) {
    this.channel = `${prefix}mcp:client-replies`
  }

  async publish(message: RelayMessage): Promise<void> {
    await this.redis.publish(this.channel, JSON.stringify(message))
  }

  async subscribe(onReply: (message: RelayMessage) => void): Promise<void> {
    const sub = this.redis.duplicate({ enableOfflineQueue: true, lazyConnect: true })
    this.sub = sub
    sub.on('error', () => {}) // the main client logs connection trouble
    sub.on('message', (ch: string, text: string) => {
      if (ch !== this.channel) return
      try {
        onReply(JSON.parse(text) as RelayMessage)
      } catch {
        this.logger.warn('mcp: an unreadable client reply on the bus was dropped')
      }
    })
    try {
      await sub.connect()
      await sub.subscribe(this.channel)
    } catch (err) {
      // Not left behind reconnecting: the next relayed request tries afresh.
      sub.disconnect()
      if (this.sub === sub) this.sub = null
      throw err
    }
  }

  async close(): Promise<void> {
    this.sub?.disconnect()
  }
}

interface Pending {
  readonly session: string | null
  readonly consumer: string
  resolve(result: Record<string, unknown>): void
  reject(err: unknown): void
}

/**
 * Requests an upstream MCP server makes of the client (sampling/createMessage, elicitation/create,
 * roots/list, ping) while a tool call runs, relayed to the consumer on that call's SSE stream under a
 * gateway id, and their answers. The answer arrives as a separate POST, on whichever replica the load
 * balancer picks: the replica that holds it resolves it at once, any other publishes it on the bus to the
 * replica that asked. An answer is accepted only from the session and consumer that were asked.
 */
export class ClientRequests {
  private readonly pending = new Map<string, Pending>()
  /** Consumer requests being served here, by session, consumer and JSON-RPC id: how to cancel each. */
  private readonly serving = new Map<string, (reason: string | undefined) => void>()
  private subscribed: Promise<void> | null = null

  constructor(private readonly bus: ReplyBus | null, private readonly logger: Logger) {}

  private subscribe(): Promise<void> {
    if (!this.bus) return Promise.resolve()
    this.subscribed ??= this.bus.subscribe((m) => {
      if (m.kind === 'reply') this.settle(m)
      else this.cancelHere(m)
    }).catch((err: Error) => {
      this.subscribed = null
      throw err
    })
    return this.subscribed
  }

  /**
   * A consumer request this replica is serving, so a `notifications/cancelled` for it (posted to any
   * replica) stops it. Returns the function that forgets it once it is answered.
   */
  track(session: string | null, consumer: string, requestId: string | number, cancel: (reason: string | undefined) => void): () => void {
    const key = servingKey(session, consumer, requestId)
    this.serving.set(key, cancel)
    // Cancellations from other replicas arrive on the bus: listen (a failure only means they are not heard).
    void this.subscribe().catch(() => {})
    return () => { if (this.serving.get(key) === cancel) this.serving.delete(key) }
  }

  /** The consumer cancelled one of its requests: stopped here, or told to the other replicas. */
  async cancel(c: ClientCancel): Promise<void> {
    if (this.cancelHere(c)) return
    if (this.bus) await this.bus.publish({ kind: 'cancel', ...c })
  }

  private cancelHere(c: ClientCancel): boolean {
    const stop = this.serving.get(servingKey(c.session, c.consumer, c.requestId))
    if (!stop) return false
    stop(c.reason)
    return true
  }

  /** Sends `request` to the consumer with `send` and waits for its answer (or the signal, or the timeout). */
  async ask(o: { session: string | null; consumer: string; method: string; params?: Record<string, unknown>; send: (message: JSONRPCMessage) => Promise<void>; signal: AbortSignal; timeoutMs: number }): Promise<Record<string, unknown>> {
    if (this.bus) {
      try {
        await this.subscribe()
      } catch (err) {
        this.logger.warn({ reason: String((err as Error).message).slice(0, 200) }, 'mcp: client replies cannot be received from other replicas')
        throw mcpError(-32603, 'The gateway cannot relay this request to the client right now.', { code: 'service_unavailable' })
      }
    }
    const id = `${RELAY_ID_PREFIX}${randomUUID()}`
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const done = () => {
        clearTimeout(timer)
        o.signal.removeEventListener('abort', onAbort)
        this.pending.delete(id)
      }
      const timer = setTimeout(() => {
        done()
        reject(mcpError(MCP_ERR.GATEWAY_TIMEOUT, `The client did not answer ${o.method.slice(0, 64)} in time.`, { code: 'gateway_timeout' }))
      }, o.timeoutMs)
      const onAbort = () => {
        done()
        reject(new McpError(-32800, 'Request cancelled'))
      }
      if (o.signal.aborted) return onAbort()
      o.signal.addEventListener('abort', onAbort, { once: true })
      this.pending.set(id, { session: o.session, consumer: o.consumer, resolve: (r) => { done(); resolve(r) }, reject: (e) => { done(); reject(e) } })
      o.send({ jsonrpc: '2.0', id, method: o.method, ...(o.params ? { params: o.params } : {}) } as JSONRPCMessage).catch((err: unknown) => {
        this.pending.get(id)?.reject(mcpError(MCP_ERR.BAD_GATEWAY, 'The request could not be sent to the client (its stream is gone).', { code: 'client_gone' }))
        void err
      })
    })
  }

  /** A consumer's answer that arrived on this replica: settled here, or sent on to the replica that asked. */
  async deliver(reply: ClientReply): Promise<void> {
    if (this.settle(reply)) return
    if (this.bus) await this.bus.publish({ kind: 'reply', ...reply })
  }

  private settle(reply: ClientReply): boolean {
    const p = this.pending.get(reply.id)
    if (!p) return false
    // Someone else's id: ignored (the asked consumer can still answer).
    if (p.session !== reply.session || p.consumer !== reply.consumer) return true
    const m = reply.message
    if (m.error && typeof m.error === 'object') {
      const code = Number.isInteger(m.error.code) ? m.error.code : -32603
      p.reject(new McpError(code, String(m.error.message ?? '').slice(0, 1000), m.error.data))
    } else p.resolve((m.result && typeof m.result === 'object' ? m.result : {}) as Record<string, unknown>)
    return true
  }

  async close(): Promise<void> {
    for (const p of this.pending.values()) p.reject(new McpError(-32603, 'The gateway is shutting down.'))
    await this.bus?.close()
  }
}

function servingKey(session: string | null, consumer: string, requestId: string | number): string {
  return JSON.stringify([session, consumer, requestId])
}

/** The consumer's capabilities worth declaring upstream (sampling, elicitation, roots), bounded in size; null when none. */
export function relayedCapabilities(declared: unknown): ClientCapabilities | null {
  if (!declared || typeof declared !== 'object') return null
  const out: Record<string, unknown> = {}
  for (const k of RELAYED_CAPABILITIES) {
    const v = (declared as Record<string, unknown>)[k]
    if (v && typeof v === 'object' && !Array.isArray(v)) out[k] = v
  }
  if (Object.keys(out).length === 0 || JSON.stringify(out).length > MAX_CAPABILITIES_CHARS) return null
  return out as ClientCapabilities
}

/** Whether a JSON-RPC message is an answer (a result or an error, no method). */
export function isReply(m: Record<string, unknown>): boolean {
  return m.method === undefined && (m.id !== undefined) && ('result' in m || 'error' in m)
}
