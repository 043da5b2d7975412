import type { BackendConfig } from '../../config/schema.ts'
import { lazyCredentials } from './lazy.ts'
import { googleCredentialsFor } from './google.ts'
import type { Credentials } from './types.ts'
import { entraCredentials } from './entra.ts'
import { oauthClientCredentials } from './oauth-client.ts'

/**
 * Builds the credentials a backend's `auth` names. A static `apiKey` needs none (the provider puts it in
 * its header); each other form has its own module.
 */
/** `now` is the gateway's clock, for credentials whose lifetime is counted from when they were fetched. */
export type CredentialsFactory = (backend: BackendConfig, now?: () => number) => Credentials | null

const noCredentials: CredentialsFactory = () => null

/** SigV4 (src/providers/credentials/sigv4.ts), its AWS SDK modules loaded by the first signed request. */
const lazySigV4: CredentialsFactory = (backend) => {
  const auth = backend.auth?.awsSigV4
  if (!auth) return null
  if (!(backend.region ?? auth.region)) throw new Error(`backend "${backend.id}" signs with SigV4 but has no region`)
  return lazyCredentials(async () => (await import('./sigv4.ts')).sigV4Credentials(backend))
}

/** Which factory handles which `auth` form; modules register here as they land. */
const FACTORIES: ReadonlyArray<readonly [keyof NonNullable<BackendConfig['auth']>, CredentialsFactory]> = [
  ['managedIdentity', entraCredentials],
  ['entra', entraCredentials],
  ['awsSigV4', lazySigV4],
  ['google', googleCredentialsFor],
  ['oauth', oauthClientCredentials],
]

export function credentialsFor(backend: BackendConfig, now?: () => number): Credentials | null {
  const auth = backend.auth
  if (!auth) return null
  for (const [form, make] of FACTORIES) if (auth[form] !== undefined) return make(backend, now)
  return noCredentials(backend)
}

/**
 * Credentials per backend, kept across config reloads while a backend's auth is unchanged, so tokens are
 * not fetched again just because the file was reloaded.
 */
export class CredentialsCache {
  private readonly byBackend = new Map<string, { key: string; creds: Credentials | null }>()

  constructor(private readonly make: (backend: BackendConfig) => Credentials | null = credentialsFor) {}

  of(backend: BackendConfig): Credentials | null {
    const key = JSON.stringify([backend.type, backend.auth ?? null, backend.region ?? null, backend.project ?? null])
    const hit = this.byBackend.get(backend.id)
    if (hit && hit.key === key) return hit.creds
    hit?.creds?.close?.()
    const creds = backend.auth ? this.make(backend) : null
    this.byBackend.set(backend.id, { key, creds })
    return creds
  }

  close(): void {
    for (const { creds } of this.byBackend.values()) creds?.close?.()
    this.byBackend.clear()
  }
}
