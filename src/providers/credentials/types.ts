/** The request as it will be sent, for credentials that sign it (SigV4) or only add a header (bearer tokens). */
export interface OutgoingRequest {
  readonly method: string
  /** Full URL (origin + path + query). */
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/**
 * How the gateway proves itself to a backend beyond a static key: Entra ID and Google OAuth tokens, AWS
 * SigV4 signatures. One instance per backend, kept across reloads while its auth config is unchanged, so a
 * token is fetched once per lifetime (refreshed shortly before expiry), never per request.
 */
export interface Credentials {
  /** Headers to add to (or override on) the request. Rejects with a GatewayError the client may see. */
  headers(req: OutgoingRequest, signal: AbortSignal): Promise<Record<string, string>>
  /** The backend answered 401 to the credential last handed out: drop it so the next request gets a fresh one. */
  invalidate?(): void
  close?(): void
}
