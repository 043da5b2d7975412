import { z } from 'zod'
import { celExpression } from '../../policies/expr.ts'
import { byteSize, duration } from '../../config/schema-units.ts'

/**
 * Asymmetric algorithms only: an HMAC algorithm would let anyone holding the issuer's *public* key mint
 * tokens (the classic RS256→HS256 confusion), and `none` is no signature at all.
 */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const

const claimValues = z.array(z.string().min(1)).min(1)

/** `scp: [ai.use]` (the claim holds every listed value) or `roles: { values: [A, B], match: any }` (at least one). */
const requiredClaim = z.union([
  claimValues.transform((values) => ({ values, match: 'all' as const })),
  z.strictObject({ values: claimValues, match: z.enum(['all', 'any']).default('all') }),
])

export const jwtIssuerSchema = z.strictObject({
  issuer: z.string().url(),
  audiences: z.array(z.string().min(1)).min(1),
  /** Where the signing keys are; default: `jwks_uri` of the issuer's OpenID discovery document. */
  jwksUri: z.string().url().optional(),
  /** The discovery document; default `{issuer}/.well-known/openid-configuration`. */
  discoveryUrl: z.string().url().optional(),
  algorithms: z.array(z.enum(JWT_ALGORITHMS)).min(1).default(['RS256', 'RS384', 'RS512', 'PS256', 'ES256', 'ES384', 'EdDSA']),
  /** Tolerance on `exp` and `nbf`. */
  clockSkew: duration.default(60_000),
  /** CEL over `claims`: the consumer id (its token limits, quotas, metrics and ledger rows follow it). */
  consumer: celExpression.default('claims.sub'),
  /** CEL over `claims`: the product id; absent = the product of a configured consumer with that id. */
  product: celExpression.optional(),
  /** Consumer metadata, each value a CEL expression over `claims`. */
  metadata: z.record(z.string(), celExpression).default({}),
  requiredClaims: z.record(z.string(), requiredClaim).default({}),
  /** Shortest time between two JWKS fetches caused by an unknown `kid` (key rotation); never per request. */
  jwksRefreshInterval: duration.default(300_000),
  /** Keys older than this are refreshed in the background; on failure the cached keys keep serving. */
  jwksMaxAge: duration.default(3_600_000),
  jwksTimeout: duration.default(5_000),
  /** Larger key sets are refused (the cached keys stay): a key set is a few keys, not thousands. */
  jwksMaxKeys: z.number().int().positive().max(1000).default(100),
  jwksMaxBytes: byteSize.pipe(z.number().max(1024 * 1024, 'a key set larger than 1 MiB is not a key set')).default(512 * 1024),
  /** Longer tokens are refused before any decoding. */
  maxTokenBytes: byteSize.default(16 * 1024),
})
export type JwtIssuerConfig = z.infer<typeof jwtIssuerSchema>

export const authSchema = z.strictObject({
  jwt: z.array(jwtIssuerSchema).default([]),
  /** How long a process trusts a stored key it looked up: the bound on seeing a revocation made elsewhere. Read at start. */
  keyCacheTtl: duration.default(30_000),
}).default({ jwt: [], keyCacheTtl: 30_000 })
