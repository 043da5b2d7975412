/**
 * The debug timings header (APIM's request tracing, in the standard `Server-Timing` format): the stages of
 * the caller's own request, in milliseconds. Only stage names, durations, the backend ids that served
 * (already in `x-sluice-backend`) and upstream statuses appear: never URLs, keys, bodies or anything about
 * another request.
 */

/** The moments (performance.now() ms) one request passed, as far as it got. */
export interface StageMarks {
  /** The request's headers were read (admission began). */
  readonly arrivedAt: number
  /** The caller was authenticated (and admitted). */
  readonly admittedAt: number
  /** The body was read and parsed; the handler runs. */
  readonly handlerAt: number
  /** Inbound policies finished (null: not reached). */
  readonly inboundAt: number | null
  /** The response headers went out (null: not yet). */
  readonly headersAt: number | null
  /** The last byte went out (null: not yet). */
  readonly endedAt: number | null
}

export interface AttemptMarks {
  readonly backendId: string
  readonly startedAt: number
  /** Response headers from the backend (connection, request and time to first byte). */
  readonly headersAt: number | null
  /** The try committed: a complete JSON answer, or a stream's first content. */
  readonly committedAt: number | null
  /** The upstream status, or the failure's error type. */
  readonly result: string
}

/** `x-sluice-debug` lists what the caller asks for (`timings`), comma- or space-separated. */
export function asksForTimings(header: string | string[] | undefined): boolean {
  if (header === undefined) return false
  const v = Array.isArray(header) ? header.join(',') : header
  return v.length <= 256 && /(^|[\s,])timings($|[\s,])/i.test(v)
}

const ms = (a: number, b: number): string => Math.max(0, b - a).toFixed(2)
const quoted = (s: string): string => `"${s.replace(/[^A-Za-z0-9._:@/ -]/g, '_').slice(0, 128)}"`

/**
 * The `Server-Timing` value for the stages known at `now`: auth, body, inbound, routing, each upstream try
 * (`upstream-N`: until its response headers; `upstream-N-content`: until it committed), outbound (after the
 * answer came back until the response headers), relay (headers to last byte, once known) and total.
 */
export function serverTiming(m: StageMarks, attempts: readonly AttemptMarks[], now: number): string {
  const out: string[] = [
    `auth;dur=${ms(m.arrivedAt, m.admittedAt)}`,
    `body;dur=${ms(m.admittedAt, m.handlerAt)}`,
  ]
  if (m.inboundAt !== null) {
    out.push(`inbound;dur=${ms(m.handlerAt, m.inboundAt)}`)
    if (attempts.length) out.push(`routing;dur=${ms(m.inboundAt, attempts[0]!.startedAt)}`)
  }
  let lastCommit: number | null = null
  attempts.forEach((a, i) => {
    const n = i + 1
    const desc = quoted(`${a.backendId} ${a.result}`)
    if (a.headersAt !== null) out.push(`upstream-${n};desc=${desc};dur=${ms(a.startedAt, a.headersAt)}`)
    else out.push(`upstream-${n};desc=${desc}`)
    if (a.committedAt !== null) {
      out.push(`upstream-${n}-content;dur=${ms(a.startedAt, a.committedAt)}`)
      if (lastCommit === null || a.committedAt > lastCommit) lastCommit = a.committedAt
    }
  })
  const from = lastCommit ?? m.inboundAt
  if (m.headersAt !== null && from !== null) out.push(`outbound;dur=${ms(from, m.headersAt)}`)
  if (m.headersAt !== null && m.endedAt !== null) out.push(`relay;dur=${ms(m.headersAt, m.endedAt)}`)
  out.push(`total;dur=${ms(m.arrivedAt, m.endedAt ?? m.headersAt ?? now)}`)
  return out.join(', ')
}
