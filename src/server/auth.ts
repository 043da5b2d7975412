import { sha256Hex } from '../core/sha256.ts'
import type { Snapshot } from '../config/snapshot.ts'
import type { Principal } from '../core/context.ts'
import { GatewayError, GW_ERR } from '../core/errors.ts'
import type { KeyStore } from '../stores/keys.ts'
import { Admission } from '../auth/admission.ts'
import { JwtIssuers, looksLikeJwt } from '../auth/jwt/index.ts'

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
/** Default for `auth.keyCacheTtl`: how long a looked-up stored key is trusted before the store is asked again. */
export const DEFAULT_KEY_CACHE_TTL_MS = 30_000
/** Unknown keys are remembered at most this long, so a key created elsewhere works soon after. */
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
  private readonly negativeTtlMs: number
  private readonly jwt: JwtIssuers
  private readonly admission = new Admission()

  /** `cacheTtlMs` bounds how long a revocation made by another process goes unseen here. */
  constructor(private readonly keys: KeyStore | null, private readonly now: () => number = Date.now, private readonly cacheTtlMs = DEFAULT_KEY_CACHE_TTL_MS) {
    this.negativeTtlMs = Math.min(NEGATIVE_TTL_MS, cacheTtlMs)
    this.jwt = new JwtIssuers(now)
  }

  /**
   * Synchronous for keys in the configuration (the hot path: no promise, no microtask); async for stored
   * keys and JWTs. `remoteIp` is the socket's peer address, for products with an `ipFilter`.
   */
  resolve(snapshot: Snapshot, headers: Headers, remoteIp?: string): Principal | Promise<Principal> {
    const key = presentedKey(headers)
    if (key === null) throw unauthorized('Missing API key. Pass it as "Authorization: Bearer KEY" or in an api-key header.')
    const admit = (p: Principal) => this.admission.admit(snapshot, p, headers, remoteIp)
    if (looksLikeJwt(key)) {
      const validator = this.jwt.forSnapshot(snapshot)
      if (validator !== null) return validator.resolve(snapshot, key).then(admit)
    }
    const digest = sha256Hex(key)
    const configured = snapshot.keyDigests.get(digest)
    if (configured !== undefined) {
      const expires = snapshot.keyExpiry.get(digest)
      if (expires !== undefined && this.now() > expires) throw unauthorized('The API key has expired.')
      return admit(principalOf(snapshot, configured))
    }
    return this.lookup(digest).then((consumerId) => admit(principalOf(snapshot, consumerId)))
  }

  /** Starts fetching the signing keys of a configuration's JWT issuers (at start and after a reload). */
  warm(snapshot: Snapshot): void {
    this.jwt.forSnapshot(snapshot)
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
    this.cache.set(digest, { consumerId, expires: consumerId ? Math.min(now + this.cacheTtlMs, revokesAt) : now + this.negativeTtlMs })
    return consumerId
  }
}

function principalOf(snapshot: Snapshot, consumerId: string | null): Principal {
  const consumer = consumerId === null ? undefined : snapshot.consumers.get(consumerId)
  if (!consumer) throw unauthorized('Incorrect API key provided.')
  return { consumerId: consumer.id, productId: consumer.product ?? null, metadata: consumer.metadata, via: 'key' }
}

function unauthorized(message: string): GatewayError {
  return new GatewayError(GW_ERR.INVALID_API_KEY, message)
}
