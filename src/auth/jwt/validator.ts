import { sha256Base64 } from '../../core/sha256.ts'
import type { JWTPayload } from 'jose'
import type { Snapshot } from '../../config/snapshot.ts'
import type { Principal } from '../../core/context.ts'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import { compileExpr, type Expr, type ExprContext } from '../../policies/expr.ts'
import type { JwtIssuerConfig } from './config.ts'
import { JwksCache, jose } from './jwks.ts'

/** A client-chosen claim value becomes an id or metadata: bounded, like every stored client string. */
const MAX_ID_CHARS = 256
const MAX_METADATA_CHARS = 1024
/**
 * Tokens already verified are remembered (by SHA-256, never the token itself) for at most this long and
 * never past their `exp`: an app sends the same token for its lifetime, and a signature check is ~100 µs
 * of CPU against ~2 µs for the digest. Claims checks and the mapping still run on every request.
 */
const VERIFIED_TTL_MS = 60_000
const VERIFIED_MAX = 10_000

/** Three base64url segments, the first a JSON object (`eyJ` is `{"`): how a JWT is told from a gateway key. */
export function looksLikeJwt(credential: string): boolean {
  return credential.startsWith('eyJ') && credential.indexOf('.') > 0 && credential.split('.', 4).length === 3
}

interface CompiledIssuer {
  readonly config: JwtIssuerConfig
  readonly keys: JwksCache
  readonly algorithms: ReadonlySet<string>
  readonly consumer: Expr
  readonly product: Expr | null
  readonly metadata: ReadonlyArray<readonly [string, Expr]>
  readonly requiredClaims: ReadonlyArray<readonly [string, { values: readonly string[]; match: 'all' | 'any' }]>
}

/**
 * Validates bearer JWTs against the configured issuers and maps their claims to a principal, so a token
 * gets a consumer id, product and metadata exactly like a gateway key. Built per `auth.jwt` list and kept
 * across reloads that do not change it, so the JWKS caches (and their keys) survive a reload.
 */
export class JwtValidator {
  private readonly issuers: ReadonlyMap<string, CompiledIssuer>
  private readonly maxTokenBytes: number
  private readonly verified = new Map<string, { issuer: CompiledIssuer; claims: JWTPayload; until: number; expWall: number }>()

  constructor(configs: readonly JwtIssuerConfig[], private readonly now: () => number, onJwksError?: (issuer: string, reason: string) => void) {
    const issuers = new Map<string, CompiledIssuer>()
    for (const c of configs) {
      const keys = new JwksCache({
        issuer: c.issuer, jwksUri: c.jwksUri, discoveryUrl: c.discoveryUrl, refreshInterval: c.jwksRefreshInterval, maxAge: c.jwksMaxAge,
        timeout: c.jwksTimeout, maxKeys: c.jwksMaxKeys, maxBytes: c.jwksMaxBytes, now, onFetchError: (r) => onJwksError?.(c.issuer, r),
      })
      issuers.set(c.issuer, {
        config: c,
        keys,
        algorithms: new Set(c.algorithms),
        consumer: compileExpr(c.consumer),
        product: c.product === undefined ? null : compileExpr(c.product),
        metadata: Object.entries(c.metadata).map(([k, src]) => [k, compileExpr(src)] as const),
        requiredClaims: Object.entries(c.requiredClaims),
      })
    }
    this.issuers = issuers
    this.maxTokenBytes = Math.max(...configs.map((c) => c.maxTokenBytes))
  }

  /** Fetches every issuer's keys ahead of the first request. */
  warm(): void {
    for (const i of this.issuers.values()) i.keys.warm()
  }

  async resolve(snapshot: Snapshot, token: string): Promise<Principal> {
    // Size first: nothing of an oversized token is decoded.
    if (token.length > this.maxTokenBytes) throw invalid('The token is larger than the gateway accepts.')
    const digest = sha256Base64(token)
    const seen = this.verified.get(digest)
    if (seen !== undefined) {
      if (seen.until > this.now() && seen.expWall > Date.now()) {
        checkRequiredClaims(seen.issuer, seen.claims)
        return principalFrom(snapshot, seen.issuer, seen.claims)
      }
      this.verified.delete(digest)
    }
    let header, unverified: JWTPayload
    try {
      header = jose().decodeProtectedHeader(token)
      unverified = jose().decodeJwt(token)
    } catch {
      throw invalid('The token is malformed.')
    }
    const issuer = typeof unverified.iss === 'string' ? this.issuers.get(unverified.iss) : undefined
    if (!issuer) throw invalid('The token issuer is not accepted.')
    if (token.length > issuer.config.maxTokenBytes) throw invalid('The token is larger than the gateway accepts.')
    // Refused before any key is looked up: `none`, HMAC (the public-key-as-secret confusion), anything unlisted.
    if (typeof header.alg !== 'string' || !issuer.algorithms.has(header.alg)) throw invalid('The token algorithm is not allowed.')
    let claims: JWTPayload
    try {
      ({ payload: claims } = await jose().jwtVerify(token, issuer.keys.key, {
        issuer: issuer.config.issuer,
        audience: issuer.config.audiences,
        algorithms: [...issuer.algorithms],
        clockTolerance: Math.round(issuer.config.clockSkew / 1000),
      }))
    } catch (err) {
      if (err instanceof GatewayError) throw err
      throw invalid(reasonOf(err))
    }
    checkRequiredClaims(issuer, claims)
    const principal = principalFrom(snapshot, issuer, claims)
    this.remember(digest, issuer, claims)
    return principal
  }

  private remember(digest: string, issuer: CompiledIssuer, claims: JWTPayload): void {
    // The TTL by the gateway's clock; `exp` by the wall clock jose checked it with (skew not granted twice).
    const expWall = typeof claims.exp === 'number' ? claims.exp * 1000 : Infinity
    if (!(expWall > Date.now())) return
    if (this.verified.size >= VERIFIED_MAX) this.verified.delete(this.verified.keys().next().value!)
    this.verified.set(digest, { issuer, claims, until: this.now() + VERIFIED_TTL_MS, expWall })
  }
}

function reasonOf(err: unknown): string {
  const e = err as { code?: string; claim?: string }
  switch (e.code) {
    case 'ERR_JWT_EXPIRED': return 'The token is expired.'
    case 'ERR_JWS_SIGNATURE_VERIFICATION_FAILED': return 'The token signature is invalid.'
    case 'ERR_JWKS_NO_MATCHING_KEY': return 'The token was signed with an unknown key.'
    case 'ERR_JOSE_ALG_NOT_ALLOWED': return 'The token algorithm is not allowed.'
    case 'ERR_JWT_CLAIM_VALIDATION_FAILED':
      if (e.claim === 'aud') return 'The token audience is not accepted.'
      if (e.claim === 'iss') return 'The token issuer is not accepted.'
      if (e.claim === 'nbf') return 'The token is not valid yet.'
      if (e.claim === 'iat') return 'The token issue time is invalid.'
      return 'The token claims are invalid.'
    default: return 'The token is malformed.'
  }
}

/** The values a claim holds: an array, or a space-separated string (OAuth's `scp`/`scope`). */
function claimValuesOf(v: unknown): string[] | null {
  if (typeof v === 'string') return v.split(' ').filter(Boolean)
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === 'string')
  if (typeof v === 'number' || typeof v === 'boolean') return [String(v)]
  return null
}

function checkRequiredClaims(issuer: CompiledIssuer, claims: JWTPayload): void {
  for (const [name, rule] of issuer.requiredClaims) {
    const held = claimValuesOf(claims[name])
    if (held === null) throw invalid(`The token is missing the required claim "${name}".`)
    const ok = rule.match === 'all' ? rule.values.every((v) => held.includes(v)) : rule.values.some((v) => held.includes(v))
    if (!ok) throw invalid(`The token's "${name}" claim does not hold the required value${rule.values.length > 1 ? 's' : ''}.`)
  }
}

function principalFrom(snapshot: Snapshot, issuer: CompiledIssuer, claims: JWTPayload): Principal {
  // The mapping expressions see only `claims` (CEL over the verified payload).
  const ctx = { claims } as unknown as ExprContext
  const consumerId = issuer.consumer(ctx)
  if (typeof consumerId !== 'string' || consumerId === '' || consumerId.length > MAX_ID_CHARS) {
    throw invalid('The token does not name a consumer (the claim the consumer mapping reads is missing or too long).')
  }
  const configured = snapshot.consumers.get(consumerId)
  let productId: string | null
  if (issuer.product !== null) {
    const p = issuer.product(ctx)
    if (typeof p !== 'string' || !snapshot.products.has(p)) throw invalid('The token\'s claims map to no known product.')
    productId = p
  } else {
    productId = configured?.product ?? null
  }
  const metadata: Record<string, string> = { ...configured?.metadata }
  for (const [k, e] of issuer.metadata) {
    const v = e(ctx)
    if (v === null) continue
    const s = typeof v === 'string' ? v : JSON.stringify(v)
    metadata[k] = s.length > MAX_METADATA_CHARS ? s.slice(0, MAX_METADATA_CHARS) : s
  }
  return { consumerId, productId, metadata, via: 'jwt' }
}

function invalid(message: string): GatewayError {
  return new GatewayError(GW_ERR.INVALID_TOKEN, message)
}
