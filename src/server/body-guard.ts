import { GatewayError, GW_ERR } from '../core/errors.ts'

/**
 * Whether a JSON text nests arrays/objects deeper than `max`. One linear pass that jumps over strings with
 * indexOf, run before JSON.parse so an over-deep body is refused before anything is built from it; every
 * walk over client JSON after this point can rely on the bound.
 */
export function jsonDepthExceeds(text: string, max: number): boolean {
  let depth = 0
  const n = text.length
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i)
    if (c === 34 /* " */) {
      let j = i
      for (;;) {
        j = text.indexOf('"', j + 1)
        if (j < 0) return false // unterminated: JSON.parse refuses it
        let k = j - 1
        while (text.charCodeAt(k) === 92 /* \ */) k--
        if (((j - 1 - k) & 1) === 0) break // an even run of backslashes: the quote is not escaped
      }
      i = j
    } else if (c === 123 /* { */ || c === 91 /* [ */) {
      if (++depth > max) return true
    } else if (c === 125 /* } */ || c === 93 /* ] */) {
      depth--
    }
  }
  return false
}

/** Parses a request body: non-empty, within the depth bound, valid JSON. */
export function parseJsonBody(text: string, maxDepth: number): unknown {
  if (text === '') throw new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body is empty; a JSON object is required.')
  if (jsonDepthExceeds(text, maxDepth)) throw new GatewayError(GW_ERR.INVALID_REQUEST, `The request body nests arrays and objects deeper than ${maxDepth} levels.`)
  try {
    return JSON.parse(text)
  } catch {
    throw new GatewayError(GW_ERR.INVALID_REQUEST, 'The request body is not valid JSON.')
  }
}

/**
 * Bytes of request bodies being read at once, across every connection. A request reserves its declared
 * length (a chunked one, the body limit) before its body is read and gives it back once the body is parsed
 * or the exchange ends, so what slow or stalled uploads can hold is bounded by `capacity` whatever their number.
 */
export class BodyBudget {
  private used = 0
  constructor(readonly capacity: number) {}

  /** Reserves `bytes`; false (nothing reserved) when it would go over capacity. */
  tryReserve(bytes: number): boolean {
    if (bytes > 0 && this.used + bytes > this.capacity) return false
    this.used += bytes
    return true
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes)
  }

  get inUse(): number {
    return this.used
  }
}
