import { createHash } from 'node:crypto'
import type { Snapshot } from '../config/snapshot.ts'
import type { Principal } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { KeyStore } from '../stores/keys.ts'

type Headers = Readonly<Record<string, string | string[] | undefined>>

/** The four places a consumer key may come in, in the order they are read. */
export function presentedKey(headers: Headers): string | null {
  const auth = headers.authorization
  if (typeof auth === 'string' && auth.length > 7 && auth.slice(0, 7).toLowerCase() === 'bearer ') return auth.slice(7).trim() || null
  for (const name of ['api-key', 'x-api-key', 'ocp-apim-subscription-key']) {
    const v = headers[name]
    if (typeof v === 'string' && v.trim() !== '') return v.trim()
  }
  return null
}

const CACHE_MAX = 10_000
const POSITIVE_TTL_MS = 30_000
const NEGATIVE_TTL_MS = 5_000

/**
 * Resolves a presented key to a principal. Keys are only ever compared as SHA-256 digests: a config key
 * is found by its digest in the snapshot; a key created at run time by its digest in the key store, with
 * a small bounded cache so a flood of bad keys does not become a flood of store queries. Looking up a
 * digest rather than the key itself means lookup timing reveals nothing about any stored key.
 * Fails closed: a store error is a 503, never a pass.
 */
export class Authenticator {
  private readonly cache = new Map<string, { consumerId: string | null; expires: number }>()

  constructor(private readonly keys: KeyStore | null, private readonly now: () => number = Date.now) {}

  /** Synchronous for keys in the configuration (the hot path: no promise, no microtask); async for stored keys. */
  resolve(snapshot: Snapshot, headers: Headers): Principal | Promise<Principal> {
    const key = presentedKey(headers)
    if (key === null) throw unauthorized('Missing API key. Pass it as "Authorization: Bearer KEY" or in an api-key header.')
    const digest = createHash('sha256').update(key).digest('hex')
    const configured = snapshot.keyDigests.get(digest)
    if (configured !== undefined) return principalOf(snapshot, configured)
    return this.lookup(digest).then((consumerId) => principalOf(snapshot, consumerId))
  }

  /** Forgets cached store answers (after a key is created or revoked through this process). */
  invalidate(): void {
    this.cache.clear()
  }

  private async lookup(digest: string): Promise<string | null> {
    if (this.keys === null) return null
    const now = this.now()
    const hit = this.cache.get(digest)
    if (hit && hit.expires > now) return hit.consumerId
    let record
    try {
      record = await this.keys.findByDigest(digest)
    } catch {
      throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The key store is unavailable; retry shortly.')
    }
    // A revocation may lie in the future (a rotated key's grace period): the key works until then, and is cached no longer.
    const revokesAt = record?.revokedAt ? Date.parse(record.revokedAt) : Infinity
    const consumerId = record && revokesAt > now ? record.consumerId : null
    if (this.cache.size >= CACHE_MAX) this.cache.delete(this.cache.keys().next().value!)
    this.cache.set(digest, { consumerId, expires: consumerId ? Math.min(now + POSITIVE_TTL_MS, revokesAt) : now + NEGATIVE_TTL_MS })
    return consumerId
  }
}

function principalOf(snapshot: Snapshot, consumerId: string | null): Principal {
  const consumer = consumerId === null ? undefined : snapshot.consumers.get(consumerId)
  if (!consumer) throw unauthorized('Incorrect API key provided.')
  return { consumerId: consumer.id, productId: consumer.product ?? null, metadata: consumer.metadata }
}

function unauthorized(message: string): GatewayError {
  return new GatewayError(GW_ERR.INVALID_API_KEY, message)
}
