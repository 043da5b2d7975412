import { createHmac, timingSafeEqual } from 'node:crypto'
import { decodeJwt, decodeProtectedHeader } from 'jose'
import { sendJson, type Ctx } from '../engine.ts'
import type { MockDialect } from './index.ts'

/**
 * A loopback Google OAuth token endpoint (`POST /token`, what oauth2.googleapis.com/token does for a service
 * account): takes the JWT-bearer grant google-auth-library sends, checks the assertion's shape and claims
 * (RS256, iss, scope, aud, a lifetime of at most an hour) and issues an access token the mock's Vertex AI
 * paths accept. The mock knows no service account's public key, so it does not check the signature; tests
 * that need it checked put their own endpoint (with the key pair they made) in front of this one.
 *
 * Tokens are self-verifying (an HMAC over their claims with the mock's fixed key), so any mock process can
 * check a token another one issued and nothing is kept per process.
 */

const MOCK_KEY = 'sluice-mock-google-identity'
const GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
export const GOOGLE_TOKEN_AUDIENCE = 'https://oauth2.googleapis.com/token'
/** Seconds, like Google's. */
export const MOCK_TOKEN_LIFETIME = 3599

function sign(payload: string): string {
  return createHmac('sha256', MOCK_KEY).update(payload).digest('base64url')
}

/** An access token for `subject`, valid for `lifetimeSeconds`. */
export function mintGoogleToken(subject: string, scope: string, lifetimeSeconds = MOCK_TOKEN_LIFETIME, now = Date.now()): string {
  const payload = Buffer.from(JSON.stringify({ sub: subject.slice(0, 200), scope: scope.slice(0, 500), exp: Math.floor(now / 1000) + lifetimeSeconds })).toString('base64url')
  return `ya29.mock.${payload}.${sign(payload)}`
}

/** The token's subject when it is one this mock issued and not expired; null otherwise. */
export function verifyGoogleToken(token: string, now = Date.now()): { sub: string; scope: string } | null {
  const m = /^ya29\.mock\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(token)
  if (!m) return null
  const expected = Buffer.from(sign(m[1]!))
  const given = Buffer.from(m[2]!)
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return null
  try {
    const claims = JSON.parse(Buffer.from(m[1]!, 'base64url').toString('utf8')) as { sub: string; scope: string; exp: number }
    return claims.exp * 1000 > now ? { sub: claims.sub, scope: claims.scope } : null
  } catch {
    return null
  }
}

function oauthError(ctx: Ctx, status: number, error: string, description: string): void {
  sendJson(ctx, status, { error, error_description: description })
}

export const googleIdentityDialect: MockDialect = {
  name: 'google-identity',
  matches: (method, path) => method === 'POST' && path === '/token',
  handle(ctx, raw) {
    const form = new URLSearchParams(raw.toString('utf8'))
    if (form.get('grant_type') !== GRANT) return oauthError(ctx, 400, 'unsupported_grant_type', `Only ${GRANT} is served here.`)
    const assertion = form.get('assertion') ?? ''
    let claims: Record<string, unknown>
    try {
      const header = decodeProtectedHeader(assertion)
      if (header.alg !== 'RS256') return oauthError(ctx, 400, 'invalid_grant', 'Invalid JWT: the assertion must be signed with RS256.')
      claims = decodeJwt(assertion) as Record<string, unknown>
    } catch {
      return oauthError(ctx, 400, 'invalid_grant', 'Invalid JWT Signature.')
    }
    const now = Math.floor(Date.now() / 1000)
    const iat = Number(claims.iat)
    const exp = Number(claims.exp)
    if (typeof claims.iss !== 'string' || !claims.iss) return oauthError(ctx, 400, 'invalid_grant', 'Invalid JWT: no issuer.')
    if (claims.aud !== GOOGLE_TOKEN_AUDIENCE) return oauthError(ctx, 400, 'invalid_grant', `Invalid JWT: the audience must be ${GOOGLE_TOKEN_AUDIENCE}.`)
    if (!Number.isFinite(iat) || !Number.isFinite(exp) || exp <= now || exp - iat > 3600 || iat > now + 300) {
      return oauthError(ctx, 400, 'invalid_grant', 'Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe.')
    }
    const scope = typeof claims.scope === 'string' ? claims.scope : ''
    if (!scope) return oauthError(ctx, 400, 'invalid_scope', 'Invalid OAuth scope or ID token audience provided.')
    sendJson(ctx, 200, { access_token: mintGoogleToken(claims.iss, scope), expires_in: MOCK_TOKEN_LIFETIME, token_type: 'Bearer' })
  },
}
