import { createHash, randomBytes } from 'node:crypto'
import type { PoolConfig } from '../config/schema.ts'
import type { RequestContext } from '../core/context.ts'
import type { Member } from './balancer.ts'

type AffinityConfig = NonNullable<PoolConfig['affinity']>

/** Most sessions remembered per pool; the oldest are forgotten first. */
const MAX_SESSIONS = 100_000
const SESSION_ID = /^[A-Za-z0-9._:~+\/=-]{1,256}$/

/**
 * Session affinity: the same session goes to the same member while that member is eligible.
 * A new session is placed by weighted rendezvous hashing over the members the strategy prefers, so every
 * gateway process (and a process after a reload) places it on the same member without sharing state; the
 * table then remembers where it went, so a session moved by a failure stays where it moved to.
 */
export class AffinityTable {
  private readonly sessions = new Map<string, { backendId: string; expires: number }>()

  constructor(readonly config: AffinityConfig) {}

  /**
   * The session of a request, from the configured header or cookie. In cookie mode a request without the
   * cookie gets a new session id, sent back with `set-cookie` (the client keeps and resends it, as in APIM).
   */
  sessionOf(ctx: RequestContext): string | null {
    if (this.config.header) {
      const v = ctx.info.headers[this.config.header.toLowerCase()]
      const s = Array.isArray(v) ? v[0] : v
      return s && s.length <= 256 ? s : null
    }
    const name = this.config.cookie!
    const found = readCookie(ctx.info.headers.cookie, name)
    if (found !== null && SESSION_ID.test(found)) return found
    const fresh = randomBytes(16).toString('base64url')
    ctx.responseHeaders['set-cookie'] = `${name}=${fresh}; Path=/; Max-Age=${Math.ceil(this.config.ttl / 1000)}; HttpOnly; SameSite=Lax`
    return fresh
  }

  get(session: string, now: number): string | undefined {
    const e = this.sessions.get(session)
    if (!e) return undefined
    if (e.expires <= now) {
      this.sessions.delete(session)
      return undefined
    }
    return e.backendId
  }

  set(session: string, backendId: string, now: number): void {
    // Re-insert so Map order is least-recently-used first.
    this.sessions.delete(session)
    this.sessions.set(session, { backendId, expires: now + this.config.ttl })
    if (this.sessions.size > MAX_SESSIONS) this.sessions.delete(this.sessions.keys().next().value!)
  }
}

/** Weighted rendezvous (highest random weight) hashing: stable per session, proportional to weights. */
export function rendezvous(session: string, members: readonly Member[]): Member | null {
  let best: Member | null = null
  let bestScore = -Infinity
  for (const m of members) {
    const h = createHash('sha1').update(session).update('\0').update(m.backend.id).digest()
    // 52 bits of the digest as a uniform number in (0, 1).
    const u = (h.readUIntBE(0, 6) * 16 + (h[6]! >> 4) + 1) / (2 ** 52 + 2)
    const score = -m.weight / Math.log(u)
    if (score > bestScore) {
      bestScore = score
      best = m
    }
  }
  return best
}

function readCookie(header: string | string[] | undefined, name: string): string | null {
  const text = Array.isArray(header) ? header.join('; ') : header
  if (!text) return null
  for (const part of text.split(';')) {
    const eq = part.indexOf('=')
    if (eq === -1) continue
    if (part.slice(0, eq).trim() === name) {
      const v = part.slice(eq + 1).trim()
      try {
        return decodeURIComponent(v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v)
      } catch {
        return null
      }
    }
  }
  return null
}
