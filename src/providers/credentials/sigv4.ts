import { Sha256 } from '@aws-crypto/sha256-js'
import { fromNodeProviderChain } from '@aws-sdk/credential-providers'
import { SignatureV4 } from '@smithy/signature-v4'
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types'
import type { BackendConfig } from '../../config/schema.ts'
import { GW_ERR } from '../../core/errors.ts'
import { UpstreamFailure } from '../../upstream/failure.ts'
import type { Credentials, OutgoingRequest } from './types.ts'

type SigV4Auth = NonNullable<NonNullable<BackendConfig['auth']>['awsSigV4']>

/**
 * Where the signing keys come from: static keys from the auth block, else the standard AWS chain from
 * @aws-sdk/credential-providers (env, SSO, web identity, shared profile files, container, IMDS), for the named
 * `profile` when one is given. The chain is memoised by the SDK: temporary credentials are fetched once and
 * refreshed shortly (5 min) before they expire, never per request.
 */
export function credentialSource(auth: SigV4Auth): AwsCredentialIdentityProvider {
  if (auth.accessKeyId !== undefined || auth.secretAccessKey !== undefined) {
    if (!auth.accessKeyId || !auth.secretAccessKey) throw new Error('auth.awsSigV4 needs both accessKeyId and secretAccessKey')
    const fixed: AwsCredentialIdentity = { accessKeyId: auth.accessKeyId, secretAccessKey: auth.secretAccessKey, ...(auth.sessionToken ? { sessionToken: auth.sessionToken } : {}) }
    return async () => fixed
  }
  return fromNodeProviderChain(auth.profile ? { profile: auth.profile } : {})
}

/** Headers the signature covers besides the ones the request already carries. */
const SIGNED_CONTENT_TYPE = 'application/json'

/**
 * AWS Signature Version 4 for one backend, through @smithy/signature-v4 (service `bedrock` unless
 * `auth.awsSigV4.service` says otherwise; region from the backend). Signs host, content-type, x-amz-date,
 * the session token when there is one, and the body's SHA-256; returns only the headers it adds.
 */
export class SigV4Credentials implements Credentials {
  private readonly signer: SignatureV4

  constructor(private readonly backendId: string, auth: SigV4Auth, region: string, source: AwsCredentialIdentityProvider = credentialSource(auth)) {
    const credentials: AwsCredentialIdentityProvider = async () => {
      try {
        return await source()
      } catch {
        // The chain's own message can name files and endpoints it tried: the client only learns that it failed.
        throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}": no AWS credentials could be loaded for signing.`, 'connect', backendId)
      }
    }
    this.signer = new SignatureV4({ service: auth.service ?? 'bedrock', region, credentials, sha256: Sha256, uriEscapePath: true, applyChecksum: false })
  }

  async headers(req: OutgoingRequest, signal: AbortSignal): Promise<Record<string, string>> {
    const url = new URL(req.url)
    const query: Record<string, string | string[]> = {}
    for (const [k, v] of url.searchParams) {
      const prev = query[k]
      query[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
    }
    const headers: Record<string, string> = {}
    for (const [k, v] of Object.entries(req.headers)) headers[k.toLowerCase()] = v
    headers.host = url.host
    headers['content-type'] = SIGNED_CONTENT_TYPE
    const signing = this.signer.sign({
      method: req.method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      // The path as it goes on the wire (model ids already percent-encoded); the signer encodes it once more,
      // as SigV4 requires for every service but S3.
      path: url.pathname,
      query,
      headers,
      body: req.body,
    })
    const signed = await abortable(signing, signal)
    const out: Record<string, string> = {}
    for (const name of ['authorization', 'x-amz-date', 'x-amz-security-token', 'x-amz-content-sha256']) {
      const v = signed.headers[name]
      if (v !== undefined) out[name] = v
    }
    return out
  }
}

function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(
      (v) => { signal.removeEventListener('abort', onAbort); resolve(v) },
      (e: unknown) => { signal.removeEventListener('abort', onAbort); reject(e) },
    )
  })
}

export function sigV4Credentials(backend: BackendConfig): Credentials | null {
  const auth = backend.auth?.awsSigV4
  if (!auth) return null
  const region = backend.region ?? auth.region
  if (!region) throw new Error(`backend "${backend.id}" signs with SigV4 but has no region`)
  return new SigV4Credentials(backend.id, auth, region)
}
