import type { Credentials, OutgoingRequest } from './types.ts'

/**
 * Credentials whose module (and the SDK behind it) is imported on the first request that needs them, not
 * when the gateway starts: the AWS signer and credential chain cost several MiB that a gateway without a
 * SigV4 backend should not carry. A failure to build surfaces as that request's error, and is retried by
 * the next request.
 */
export function lazyCredentials(load: () => Promise<Credentials | null>): Credentials {
  let made: Promise<Credentials | null> | null = null
  let closed = false
  const get = () => (made ??= load().catch((err: unknown) => { made = null; throw err }))
  return {
    async headers(req: OutgoingRequest, signal: AbortSignal) {
      const creds = await get()
      return creds ? creds.headers(req, signal) : {}
    },
    close() {
      if (closed) return
      closed = true
      void made?.then((c) => c?.close?.(), () => {})
    },
  }
}
