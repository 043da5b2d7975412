import type { TokenCredential } from '@azure/identity'
import type { BackendConfig } from '../../config/schema.ts'
import { GatewayError, GW_ERR } from '../../core/errors.ts'
import { CachedToken } from './cached-token.ts'
import type { Credentials, OutgoingRequest } from './types.ts'

/** The Entra ID scope of Azure OpenAI / Azure AI services. */
export const COGNITIVE_SERVICES_SCOPE = 'https://cognitiveservices.azure.com/.default'

/**
 * Entra ID bearer tokens for Azure backends, through @azure/identity: a managed identity (system-assigned,
 * or user-assigned by client id) or a service principal's client credentials. The token is cached until
 * five minutes before it expires; the library is loaded only when a backend uses it.
 */
export class EntraCredentials implements Credentials {
  private readonly token: CachedToken
  private credential: Promise<TokenCredential> | null = null

  constructor(private readonly backend: BackendConfig, now: () => number = Date.now) {
    this.token = new CachedToken(() => this.fetch(), now)
  }

  private current: string | null = null

  async headers(_req: OutgoingRequest, _signal: AbortSignal): Promise<Record<string, string>> {
    this.current = await this.token.get()
    return { authorization: `Bearer ${this.current}` }
  }

  invalidate(): void {
    if (this.current !== null) this.token.invalidate(this.current)
  }

  private scope(): string {
    const auth = this.backend.auth
    return auth?.entra?.scope ?? (auth?.managedIdentity?.resource ? `${auth.managedIdentity.resource.replace(/\/+$/, '')}/.default` : COGNITIVE_SERVICES_SCOPE)
  }

  private async fetch(): Promise<{ token: string; expiresAt: number }> {
    this.credential ??= makeCredential(this.backend)
    let token
    try {
      token = await (await this.credential).getToken(this.scope())
    } catch (err) {
      // The library's message can name endpoints and tenant details: keep it out of client answers.
      throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${this.backend.id}" could not get an Entra ID token (${errorName(err)}).`)
    }
    if (!token) throw new GatewayError(GW_ERR.BAD_GATEWAY, `Backend "${this.backend.id}" got no Entra ID token.`)
    return { token: token.token, expiresAt: token.expiresOnTimestamp }
  }
}

async function makeCredential(backend: BackendConfig): Promise<TokenCredential> {
  const identity = await import('@azure/identity')
  const auth = backend.auth!
  if (auth.entra) {
    const e = auth.entra
    return new identity.ClientSecretCredential(e.tenantId, e.clientId, e.clientSecret, e.authorityHost ? { authorityHost: e.authorityHost, disableInstanceDiscovery: true } : {})
  }
  const mi = auth.managedIdentity ?? {}
  return mi.clientId ? new identity.ManagedIdentityCredential({ clientId: mi.clientId }) : new identity.ManagedIdentityCredential()
}

function errorName(err: unknown): string {
  const name = (err as { name?: unknown } | null)?.name
  return typeof name === 'string' && /^[A-Za-z]{1,64}$/.test(name) ? name : 'error'
}

/** Entra's expiry is the issuer's wall-clock time, so it is compared with the wall clock (not an injected one). */
export function entraCredentials(backend: BackendConfig): Credentials {
  return new EntraCredentials(backend)
}
