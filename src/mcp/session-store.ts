import type { Redis } from 'ioredis'
import type { ClientCapabilities } from '@modelcontextprotocol/sdk/types.js'
import type { UpstreamSessionRef } from './source.ts'

/** One `Mcp-Session-Id` session as every gateway process sees it. */
export interface McpSession {
  readonly id: string
  /** The endpoint (`/mcp/{server}`) it was created on: a session id is valid on that endpoint only. */
  readonly server: string
  /** The consumer that created it: another consumer presenting the id is told it does not exist. */
  readonly consumer: string
  readonly protocolVersion: string | null
  readonly createdAt: number
  /** Upstream MCP sessions opened for it, by upstream server id (passthrough). */
  readonly upstream: Readonly<Record<string, UpstreamSessionRef>>
  /** What the consumer declared it can be asked (sampling, elicitation, roots): declared upstream in its name. */
  readonly clientCapabilities?: ClientCapabilities | null
}

/**
 * Where sessions live, so a session created on one gateway process is served by any other. Every read
 * extends the session's life to `ttlMs` from now (a sliding expiry).
 */
export interface McpSessionStore {
  readonly kind: 'memory' | 'redis'
  put(session: McpSession, ttlMs: number): Promise<void>
  get(id: string, ttlMs: number): Promise<McpSession | null>
  delete(id: string): Promise<boolean>
  close(): Promise<void>
}

const MAX_MEMORY_SESSIONS = 100_000

/** One process's sessions (store.type memory): a Map with expiry, bounded (the oldest go first). */
export class MemorySessionStore implements McpSessionStore {
  readonly kind = 'memory' as const
  private readonly sessions = new Map<string, { session: McpSession; expires: number }>()

  constructor(private readonly now: () => number = Date.now) {}

  async put(session: McpSession, ttlMs: number): Promise<void> {
    this.sessions.delete(session.id)
    if (this.sessions.size >= MAX_MEMORY_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!)
    this.sessions.set(session.id, { session, expires: this.now() + ttlMs })
  }

  async get(id: string, ttlMs: number): Promise<McpSession | null> {
    const hit = this.sessions.get(id)
    if (!hit) return null
    const now = this.now()
    if (hit.expires <= now) {
      this.sessions.delete(id)
      return null
    }
    // Re-inserted so the Map's order stays least-recently-used first.
    this.sessions.delete(id)
    this.sessions.set(id, { session: hit.session, expires: now + ttlMs })
    return hit.session
  }

  async delete(id: string): Promise<boolean> {
    return this.sessions.delete(id)
  }

  async close(): Promise<void> {
    this.sessions.clear()
  }
}

/** Sessions in Redis (store.type redis), one JSON value per session with a sliding PX expiry. */
export class RedisSessionStore implements McpSessionStore {
  readonly kind = 'redis' as const

  constructor(private readonly redis: Redis, private readonly prefix: string) {}

  private key(id: string): string {
    return `${this.prefix}mcp:session:${id}`
  }

  async put(session: McpSession, ttlMs: number): Promise<void> {
    await this.redis.set(this.key(session.id), JSON.stringify(session), 'PX', Math.max(1, Math.round(ttlMs)))
  }

  async get(id: string, ttlMs: number): Promise<McpSession | null> {
    const text = await this.redis.getex(this.key(id), 'PX', Math.max(1, Math.round(ttlMs)))
    if (text === null) return null
    try {
      return JSON.parse(text) as McpSession
    } catch {
      return null
    }
  }

  async delete(id: string): Promise<boolean> {
    return (await this.redis.del(this.key(id))) > 0
  }

  async close(): Promise<void> {
    // The Redis client belongs to the gateway's stores; they close it.
  }
}
