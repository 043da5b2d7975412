import { clipText } from '../core/bounded.ts'
import { makeRedactor } from '../policies/log-messages/redact.ts'

const MAX_MESSAGE = 512
const WORD = /^[A-Za-z0-9_.:-]{1,64}$/
// Anything token-shaped: a long run with no space (hex and base64 keys, JWTs, signed URLs' signatures).
const TOKEN_LIKE = /[A-Za-z0-9_\-+/=.]{24,600}/g
const redactKnown = makeRedactor([])

/**
 * A backend's 4xx error body rebuilt for the client from the fields it is known to have, never relayed as
 * it came: `message` cut and cleared of anything that could be a key (a backend that echoes the gateway's
 * credential must not leak it), `type`/`code`/`param` kept only when they are short identifiers.
 */
export function clientErrorBody(status: number, body: Record<string, unknown>): { error: { message: string; type: string; param: string | null; code: string | null } } {
  const err = (body.error && typeof body.error === 'object' ? body.error : {}) as { message?: unknown; type?: unknown; code?: unknown; param?: unknown }
  const raw = typeof err.message === 'string' && err.message !== '' ? err.message : `The backend refused the request (status ${status}).`
  const message = redactKnown(clipText(raw, MAX_MESSAGE)).replace(TOKEN_LIKE, '[REDACTED]')
  const word = (v: unknown): string | null => (typeof v === 'string' && WORD.test(v) ? v : null)
  return { error: { message, type: word(err.type) ?? 'invalid_request_error', param: word(err.param), code: word(err.code) ?? (typeof err.code === 'number' ? String(err.code) : null) } }
}
