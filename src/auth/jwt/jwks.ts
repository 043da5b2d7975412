import type { createLocalJWKSet, JSONWebKeySet, JWTHeaderParameters, FlattenedJWSInput } from 'jose'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import { lazyPackage } from '../../core/lazy-package.ts'

/** jose, loaded by the first JWT issuer a config declares, not at start (src/core/lazy-package.ts says why). */
export const jose = lazyPackage<typeof import('jose')>('jose')

export interface JwksOptions {
  readonly issuer: string
  readonly jwksUri?: string
  readonly discoveryUrl?: string
  /** Shortest time between fetches caused by an unknown `kid`. */
  readonly refreshInterval: number
  /** Age after which the keys are refreshed in the background. */
  readonly maxAge: number
  readonly timeout: number
  readonly maxKeys: number
  readonly maxBytes: number
  readonly now: () => number
  /** Told about failed fetches (the reason only: never a key). */
  readonly onFetchError?: (reason: string) => void
}

const NO_KEYS_RETRY_MS = 5_000

type KeyGetter = ReturnType<typeof createLocalJWKSet>

/**
 * The signing keys of one issuer. Fetched once, served from memory; refreshed in the background when old,
 * and on a `kid` it does not know (rotation) at most once per `refreshInterval`, never per request. A
 * failed fetch (outage, oversized or malformed set) keeps the keys already held, so valid tokens go on
 * validating while the issuer is down.
 */
export class JwksCache {
  private getter: KeyGetter | null = null
  private fetchedAt = -Infinity
  private lastAttempt = -Infinity
  private inflight: Promise<void> | null = null
  private jwksUri: string | null

  constructor(private readonly opts: JwksOptions) {
    this.jwksUri = opts.jwksUri ?? null
  }

  /** Starts the first fetch early so the first request does not wait for it (errors are kept for later). */
  warm(): void {
    if (this.getter === null) void this.refresh().catch(() => {})
  }

  /** jose's key resolver: the key for a token's header. */
  readonly key = async (header: JWTHeaderParameters, token: FlattenedJWSInput): Promise<CryptoKey | Uint8Array> => {
    if (this.getter === null) {
      await this.refreshIfAllowed()
      if (this.getter === null) throw new GatewayError(GW_ERR.SERVICE_UNAVAILABLE, 'The token issuer\'s signing keys are unavailable; retry shortly.')
    } else if (this.opts.now() - this.fetchedAt > this.opts.maxAge) {
      void this.refreshIfAllowed().catch(() => {})
    }
    try {
      return await this.getter(header, token)
    } catch (err) {
      if ((err as { code?: string }).code !== 'ERR_JWKS_NO_MATCHING_KEY') throw err
      // An unknown kid is what a key rotation looks like: look again, unless we looked moments ago.
      const before = this.getter
      await this.refreshIfAllowed()
      if (this.getter === before) throw err
      return this.getter!(header, token)
    }
  }

  private refreshIfAllowed(): Promise<void> {
    if (this.inflight) return this.inflight
    // With no keys at all every token fails: retry sooner than a rotation check would.
    const interval = this.getter === null ? Math.min(this.opts.refreshInterval, NO_KEYS_RETRY_MS) : this.opts.refreshInterval
    if (this.opts.now() - this.lastAttempt < interval) return Promise.resolve()
    return this.refresh().catch(() => {})
  }

  private refresh(): Promise<void> {
    this.lastAttempt = this.opts.now()
    this.inflight = this.fetchKeys()
      .then((set) => {
        this.getter = jose().createLocalJWKSet(set)
        this.fetchedAt = this.opts.now()
      })
      .catch((err: unknown) => {
        this.opts.onFetchError?.(err instanceof Error ? err.message : 'fetch failed')
        throw err
      })
      .finally(() => { this.inflight = null })
    return this.inflight
  }

  private async fetchKeys(): Promise<JSONWebKeySet> {
    if (this.jwksUri === null) {
      const discovery = this.opts.discoveryUrl ?? `${this.opts.issuer.replace(/\/+$/, '')}/.well-known/openid-configuration`
      const doc = await this.getJson(discovery) as { jwks_uri?: unknown; issuer?: unknown }
      if (typeof doc.jwks_uri !== 'string' || !/^https?:\/\//.test(doc.jwks_uri)) throw new Error('the discovery document has no jwks_uri')
      this.jwksUri = doc.jwks_uri
    }
    const set = await this.getJson(this.jwksUri) as { keys?: unknown }
    if (!Array.isArray(set.keys)) throw new Error('the JWKS has no keys array')
    if (set.keys.length > this.opts.maxKeys) throw new Error(`the JWKS has ${set.keys.length} keys, more than the ${this.opts.maxKeys} accepted`)
    // Only verification keys: encryption keys and private parts are never used.
    const keys = set.keys.filter((k): k is JSONWebKeySet['keys'][number] =>
      k !== null && typeof k === 'object' && typeof (k as { kty?: unknown }).kty === 'string' && (k as { use?: unknown }).use !== 'enc')
    return { keys }
  }

  private async getJson(url: string): Promise<unknown> {
    const res = await fetch(url, { signal: AbortSignal.timeout(this.opts.timeout), redirect: 'follow', headers: { accept: 'application/json' } })
    if (!res.ok) {
      await res.body?.cancel().catch(() => {})
      throw new Error(`${url} answered ${res.status}`)
    }
    const text = await readBounded(res, this.opts.maxBytes)
    return JSON.parse(text)
  }
}

/** Reads a body up to `max` bytes; a longer one is cancelled and refused rather than buffered. */
async function readBounded(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length'))
  if (Number.isFinite(declared) && declared > max) {
    await res.body?.cancel().catch(() => {})
    throw new Error(`the key document is larger than ${max} bytes`)
  }
  if (!res.body) return ''
  const reader = res.body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > max) {
      await reader.cancel().catch(() => {})
      throw new Error(`the key document is larger than ${max} bytes`)
    }
    parts.push(value)
  }
  return Buffer.concat(parts).toString('utf8')
}
