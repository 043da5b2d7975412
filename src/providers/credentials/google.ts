import { readFile } from 'node:fs/promises'
import type { JWT } from 'google-auth-library'
import type { BackendConfig } from '../../config/schema.ts'
import { systemClock, type Clock } from '../../core/clock.ts'
import { GW_ERR } from '../../core/errors.ts'
import { UpstreamFailure } from '../../upstream/failure.ts'
import type { Credentials } from './types.ts'

/**
 * Google OAuth access tokens for Vertex AI, through google-auth-library: `auth: { google: {} }` is
 * application default credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's user credentials, the metadata
 * server), `{ credentialsFile }` a service-account (or other credential) JSON.
 *
 * The token is cached until shortly before it expires (5 minutes, or half its lifetime if shorter) and
 * fetched once however many requests want it meanwhile; never per request. A service account's JWT grant
 * goes to the key file's `token_uri` (or `tokenUrl`), which google-auth-library itself does not honour (it
 * always posts to oauth2.googleapis.com): private endpoints (Private Service Connect) and loopback token
 * servers in tests work that way.
 */

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token'
const MAX_MARGIN_MS = 5 * 60_000
const FETCH_TIMEOUT_MS = 15_000

interface ServiceAccount {
  type: 'service_account'
  client_email: string
  private_key: string
  private_key_id?: string
  token_uri?: string
}

interface Token {
  readonly value: string
  readonly refreshAt: number
}

export interface GoogleCredentialsOptions {
  readonly backendId: string
  readonly credentialsFile?: string
  readonly scopes?: readonly string[]
  /** Where JWT grants go (default: the key file's token_uri, else Google's). */
  readonly tokenUrl?: string
  readonly clock?: Clock
  /** Environment for application default credentials (GOOGLE_APPLICATION_CREDENTIALS). */
  readonly env?: NodeJS.ProcessEnv
}

export class GoogleCredentials implements Credentials {
  private token: Token | null = null
  private inflight: Promise<Token> | null = null
  private source: Promise<() => Promise<{ token: string; expiresAt: number }>> | null = null
  private readonly clock: Clock
  private readonly scopes: string[]
  /** Token fetches made (for /admin and tests). */
  fetches = 0

  constructor(private readonly opts: GoogleCredentialsOptions) {
    this.clock = opts.clock ?? systemClock
    this.scopes = opts.scopes?.length ? [...opts.scopes] : [CLOUD_PLATFORM_SCOPE]
  }

  async headers(): Promise<Record<string, string>> {
    const now = this.clock.now()
    let t = this.token
    if (t === null || now >= t.refreshAt) t = await (this.inflight ??= this.refresh().finally(() => (this.inflight = null)))
    return { authorization: `Bearer ${t.value}` }
  }

  private async refresh(): Promise<Token> {
    let timer: NodeJS.Timeout | undefined
    try {
      this.source ??= this.makeSource()
      const fetchToken = await this.source
      this.fetches++
      const got = await Promise.race([
        fetchToken(),
        new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('token request timed out')), FETCH_TIMEOUT_MS))),
      ])
      const now = this.clock.now()
      const lifetime = Math.max(0, got.expiresAt - now)
      const token = { value: got.token, refreshAt: now + lifetime - Math.min(MAX_MARGIN_MS, lifetime / 2) }
      this.token = token
      return token
    } catch {
      this.source = null // a bad file may be fixed; read it again next time
      // No detail: the library's message can carry URLs and key ids.
      throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${this.opts.backendId}" could not get a Google access token.`, 'connect', this.opts.backendId)
    } finally {
      clearTimeout(timer)
    }
  }

  /** How a token is fetched: a fresh JWT grant for a service account, google-auth-library's client otherwise. */
  private async makeSource(): Promise<() => Promise<{ token: string; expiresAt: number }>> {
    const env = this.opts.env ?? process.env
    // Loaded on first use: a gateway without Google backends never pays for the library.
    const { GoogleAuth, JWT } = await import('google-auth-library')
    const file = this.opts.credentialsFile ?? env.GOOGLE_APPLICATION_CREDENTIALS
    const json = file ? (JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>) : null
    if (json && json.type === 'service_account') {
      const sa = json as unknown as ServiceAccount
      const tokenUrl = this.opts.tokenUrl ?? sa.token_uri ?? GOOGLE_TOKEN_URL
      return async () => {
        // A new client per fetch: the library's own token cache runs on the wall clock and would answer
        // from it; this cache decides when a fetch is due.
        const jwt = new JWT({ email: sa.client_email, key: sa.private_key, keyId: sa.private_key_id, scopes: this.scopes })
        redirectTokenRequests(jwt, tokenUrl)
        const tokens = await jwt.authorize()
        if (!tokens.access_token) throw new Error('no access token')
        return { token: tokens.access_token, expiresAt: tokens.expiry_date ?? this.clock.now() + 3_600_000 }
      }
    }
    const auth = new GoogleAuth(json ? { credentials: json, scopes: this.scopes } : { scopes: this.scopes })
    const client = await auth.getClient()
    return async () => {
      const { token } = await client.getAccessToken()
      if (!token) throw new Error('no access token')
      const expiry = (client as { credentials?: { expiry_date?: number | null } }).credentials?.expiry_date
      return { token, expiresAt: typeof expiry === 'number' ? expiry : this.clock.now() + 3_600_000 }
    }
  }
}

/** Sends the client's JWT grants to `tokenUrl` instead of Google's fixed token endpoint. */
function redirectTokenRequests(jwt: JWT, tokenUrl: string): void {
  if (tokenUrl === GOOGLE_TOKEN_URL) return
  const transporter = jwt.transporter
  const request = transporter.request.bind(transporter)
  type Opts = Parameters<typeof request>[0]
  transporter.request = ((opts: Opts) => request(opts && String(opts.url) === GOOGLE_TOKEN_URL ? { ...opts, url: tokenUrl } : opts)) as typeof transporter.request
}

export function googleCredentialsFor(backend: BackendConfig): Credentials {
  const g = backend.auth?.google ?? {}
  return new GoogleCredentials({ backendId: backend.id, credentialsFile: g.credentialsFile, scopes: g.scopes, tokenUrl: g.tokenUrl })
}
