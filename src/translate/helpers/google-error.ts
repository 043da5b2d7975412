import type { TranslatedError } from '../types.ts'

/**
 * Google's error envelope (google.rpc.Status as JSON: `{ error: { code, message, status, details[] } }`),
 * as the Gemini API and Vertex AI send it, in the hub's (OpenAI's) error vocabulary. A 429 carries its wait
 * in a `google.rpc.RetryInfo` detail (`retryDelay: "37s"`), not in a header.
 */
const TYPES: Readonly<Record<string, string>> = {
  INVALID_ARGUMENT: 'invalid_request_error',
  FAILED_PRECONDITION: 'invalid_request_error',
  OUT_OF_RANGE: 'invalid_request_error',
  UNAUTHENTICATED: 'authentication_error',
  PERMISSION_DENIED: 'permission_error',
  NOT_FOUND: 'not_found_error',
  RESOURCE_EXHAUSTED: 'rate_limit_error',
  UNAVAILABLE: 'overloaded_error',
  DEADLINE_EXCEEDED: 'timeout_error',
  INTERNAL: 'api_error',
}

function typeForStatus(status: number): string {
  if (status === 429) return 'rate_limit_error'
  if (status === 401) return 'authentication_error'
  if (status === 403) return 'permission_error'
  if (status === 404) return 'not_found_error'
  if (status < 500) return 'invalid_request_error'
  return 'api_error'
}

/** `"37s"`, `"1.5s"` (google.protobuf.Duration as JSON) → milliseconds. */
export function durationMs(v: unknown): number | null {
  if (typeof v !== 'string') return null
  const m = /^(\d+(?:\.\d+)?)s$/.exec(v.trim())
  return m ? Math.round(Number(m[1]) * 1000) : null
}

export function googleError(status: number, body: Record<string, unknown>): TranslatedError {
  const err = (body.error && typeof body.error === 'object' ? body.error : {}) as Record<string, unknown>
  const rpcStatus = typeof err.status === 'string' ? err.status : ''
  const message = typeof err.message === 'string' && err.message ? err.message.slice(0, 2000) : `The backend answered ${status}.`
  let retryAfterMs: number | null = null
  let field: string | null = null
  if (Array.isArray(err.details)) {
    for (const d of err.details as Array<Record<string, unknown>>) {
      if (!d || typeof d !== 'object') continue
      const kind = String(d['@type'] ?? '')
      if (kind.endsWith('google.rpc.RetryInfo')) retryAfterMs = durationMs(d.retryDelay)
      if (kind.endsWith('google.rpc.BadRequest') && Array.isArray(d.fieldViolations)) {
        const v = (d.fieldViolations as Array<Record<string, unknown>>)[0]
        if (v && typeof v.field === 'string') field = v.field.slice(0, 200)
      }
    }
  }
  const type = TYPES[rpcStatus] ?? typeForStatus(status)
  return {
    message,
    type,
    code: rpcStatus ? rpcStatus.toLowerCase() : null,
    param: field,
    // UNAVAILABLE is "overloaded, try elsewhere" whatever the status code says.
    retriable: rpcStatus === 'UNAVAILABLE' || rpcStatus === 'RESOURCE_EXHAUSTED' || status >= 500,
    retryAfterMs,
  }
}
