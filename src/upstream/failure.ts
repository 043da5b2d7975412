import { GatewayError, GW_ERR, type ErrorSpec } from '../core/errors.ts'

/** Why an upstream attempt failed, in the terms circuit breakers and failover reason about. */
export type FailureKind = 'connect' | 'reset' | 'timeout' | 'status'

/**
 * A failed upstream attempt. It is a GatewayError (what the client gets if nothing else succeeds) that
 * also carries what breakers and failover need: the kind, the upstream status, and its Retry-After.
 */
export class UpstreamFailure extends GatewayError {
  constructor(
    spec: ErrorSpec,
    message: string,
    readonly kind: FailureKind,
    readonly backendId: string,
    readonly upstreamStatus: number | null = null,
    /** Milliseconds the backend asked us to wait, from retry-after / retry-after-ms / x-ratelimit-reset-*. */
    readonly retryAfterMs: number | null = null,
  ) {
    super(spec, message)
  }

  /** Worth trying elsewhere: nothing reached the client yet and another backend may do better. */
  get retriable(): boolean {
    return this.kind !== 'status' || this.upstreamStatus === 429 || (this.upstreamStatus !== null && this.upstreamStatus >= 500)
  }
}

const ERR_CODE_KIND: Record<string, FailureKind> = {
  ECONNREFUSED: 'connect',
  ENOTFOUND: 'connect',
  EAI_AGAIN: 'connect',
  EHOSTUNREACH: 'connect',
  ENETUNREACH: 'connect',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ECONNRESET: 'reset',
  EPIPE: 'reset',
  UND_ERR_SOCKET: 'reset',
  UND_ERR_CLOSED: 'reset',
}

/** Maps a network-level error from undici to an UpstreamFailure; never includes URLs or keys in the message. */
export function failureFromError(err: unknown, backendId: string): UpstreamFailure {
  const code = (err as { code?: string } | null)?.code ?? ''
  const causeCode = ((err as { cause?: { code?: string } } | null)?.cause?.code) ?? ''
  const kind = ERR_CODE_KIND[code] ?? ERR_CODE_KIND[causeCode] ?? 'reset'
  if (kind === 'timeout') {
    const what = code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connecting' : code === 'UND_ERR_BODY_TIMEOUT' ? 'between response chunks' : 'waiting for the response'
    return new UpstreamFailure(GW_ERR.GATEWAY_TIMEOUT, `Backend "${backendId}" timed out ${what}.`, 'timeout', backendId)
  }
  const what = kind === 'connect' ? 'could not be reached' : 'closed the connection'
  return new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" ${what}.`, kind, backendId)
}

/** Reads the backend's wait hint: `retry-after-ms`, `retry-after` (seconds or HTTP date), `x-ratelimit-reset-*`. */
export function retryAfterMsFrom(headers: Record<string, string | string[] | undefined>, now = Date.now()): number | null {
  const first = (name: string): string | undefined => {
    const v = headers[name]
    return Array.isArray(v) ? v[0] : v
  }
  const ms = first('retry-after-ms')
  if (ms !== undefined && Number.isFinite(Number(ms))) return Math.max(0, Number(ms))
  const ra = first('retry-after')
  if (ra !== undefined) {
    if (/^\d+(\.\d+)?$/.test(ra.trim())) return Math.max(0, Number(ra) * 1000)
    const at = Date.parse(ra)
    if (!Number.isNaN(at)) return Math.max(0, at - now)
  }
  let best: number | null = null
  for (const name of ['x-ratelimit-reset-requests', 'x-ratelimit-reset-tokens']) {
    const v = first(name)
    if (v === undefined) continue
    const parsed = parseResetDuration(v)
    if (parsed !== null) best = best === null ? parsed : Math.max(best, parsed)
  }
  return best
}

/** OpenAI's reset format: `1s`, `6m0s`, `20ms`, `1h2m3.5s`. */
function parseResetDuration(text: string): number | null {
  const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g
  let total = 0
  let matched = false
  let m: RegExpExecArray | null
  while ((m = re.exec(text)) !== null) {
    matched = true
    const n = Number(m[1])
    total += m[2] === 'ms' ? n : m[2] === 's' ? n * 1000 : m[2] === 'm' ? n * 60_000 : n * 3_600_000
  }
  if (matched) return total
  return /^\d+(\.\d+)?$/.test(text) ? Number(text) * 1000 : null
}
