import type { BackendConfig } from '../../config/schema.ts'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import { CachedToken, type ExpiringToken } from './cached-token.ts'
import type { Credentials, OutgoingRequest } from './types.ts'

/** A token endpoint that says nothing about the lifetime: assume a short one rather than reuse a dead token. */
const DEFAULT_LIFETIME_S = 300
const FETCH_TIMEOUT_MS = 15_000
/** Largest token-endpoint answer read (a token response is a few KB at most). */
const MAX_RESPONSE_BYTES = 64 * 1024

type OAuthConfig = NonNullable<NonNullable<BackendConfig['auth']>['oauth']>

/**
 * OAuth 2.0 client credentials (RFC 6749 section 4.4), the gateway's own: it holds the client id and secret,
 * asks the token endpoint for an access token (scope, audience and resource as configured), and sends it
 * as a bearer token. The token is cached for its lifetime (`expires_in`), refreshed by one fetch shortly
 * before it expires however many requests want it (CachedToken), and dropped when the API answers 401 so
 * the next attempt gets a fresh one (APIM's credential manager does the same). Nothing of the token
 * endpoint's answer (its error text may echo the client id) reaches a client: only its status.
 */
export class OAuthClientCredentials implements Credentials {
  private readonly token: CachedToken
  private current: string | null = null
  /** Token fetches made (tests and diagnostics). */
  fetches = 0

  constructor(private readonly backendId: string, private readonly cfg: OAuthConfig, now: () => number = Date.now) {
    this.token = new CachedToken(() => this.fetch(now), now, cfg.refreshMargin)
  }

  async headers(_req: OutgoingRequest, _signal: AbortSignal): Promise<Record<string, string>> {
    const token = await this.token.get()
    this.current = token
    return { authorization: `Bearer ${token}` }
  }

  /** The API refused the token (401): forget it, so the next request fetches a new one. */
  invalidate(): void {
    if (this.current !== null) this.token.invalidate(this.current)
  }

  private async fetch(now: () => number): Promise<ExpiringToken> {
    const c = this.cfg
    const form = new URLSearchParams({ grant_type: 'client_credentials' })
    if (c.scope) form.set('scope', Array.isArray(c.scope) ? c.scope.join(' ') : c.scope)
    if (c.audience) form.set('audience', c.audience)
    if (c.resource) form.set('resource', c.resource)
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' }
    if (c.clientAuth === 'basic') {
      // RFC 6749 section 2.3.1: both parts form-encoded before they are joined.
      headers.authorization = `Basic ${Buffer.from(`${encodeURIComponent(c.clientId)}:${encodeURIComponent(c.clientSecret)}`).toString('base64')}`
    } else {
      form.set('client_id', c.clientId)
      form.set('client_secret', c.clientSecret)
    }
    this.fetches++
    const fail = (why: string) => new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${this.backendId}" could not get an OAuth token (${why}).`)
    let res
    try {
      // undici's fetch loads on the first token fetch, not with every gateway (src/upstream/undici-pool.ts).
      const { fetch: undiciFetch } = await import('undici')
      res = await undiciFetch(c.tokenUrl, { method: 'POST', headers, body: form.toString(), signal: AbortSignal.timeout(FETCH_TIMEOUT_MS), redirect: 'error' })
    } catch (err) {
      throw fail((err as Error).name === 'TimeoutError' ? 'the token endpoint did not answer in time' : 'the token endpoint could not be reached')
    }
    const text = await readCapped(res.body as AsyncIterable<Uint8Array> | null, MAX_RESPONSE_BYTES).catch(() => null)
    if (res.status !== 200) throw fail(`the token endpoint answered ${res.status}`)
    let body: { access_token?: unknown; expires_in?: unknown; token_type?: unknown }
    try {
      body = JSON.parse(text ?? '') as typeof body
    } catch {
      throw fail('the token endpoint answered something other than JSON')
    }
    if (typeof body.access_token !== 'string' || body.access_token === '' || /[\r\n]/.test(body.access_token)) throw fail('the answer holds no access_token')
    if (typeof body.token_type === 'string' && body.token_type.toLowerCase() !== 'bearer') throw fail(`token_type "${body.token_type.slice(0, 20)}" is not bearer`)
    const lifetime = Number(body.expires_in)
    const seconds = Number.isFinite(lifetime) && lifetime > 0 ? lifetime : DEFAULT_LIFETIME_S
    return { token: body.access_token, expiresAt: now() + seconds * 1000 }
  }
}

async function readCapped(body: AsyncIterable<Uint8Array> | null, max: number): Promise<string> {
  if (!body) return ''
  const chunks: Uint8Array[] = []
  let size = 0
  for await (const chunk of body) {
    size += chunk.byteLength
    if (size > max) throw new Error('token response too large')
    chunks.push(chunk)
  }
  return Buffer.concat(chunks).toString('utf8')
}

export function oauthClientCredentials(backend: BackendConfig, now?: () => number): Credentials {
  return new OAuthClientCredentials(backend.id, backend.auth!.oauth!, now)
}
