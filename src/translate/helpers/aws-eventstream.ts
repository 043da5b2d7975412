import type { EventStreamCodec } from '@smithy/eventstream-codec'
import { lazyPackage } from '../../core/lazy-package.ts'
import type { Message, MessageHeaders } from '@smithy/types'
import type { StreamParser, UpstreamEvent } from '../types.ts'

/**
 * AWS `application/vnd.amazon.eventstream` framing (Bedrock ConverseStream): binary messages of
 * [total length u32][headers length u32][prelude CRC32][headers][payload][message CRC32], big-endian.
 * Decoding and both checksums are @smithy/eventstream-codec's; this module only frames the byte stream into
 * whole messages, bounds them, and exposes each as an UpstreamEvent so the kernel treats it like an SSE frame.
 */

/** The spec's limits: a payload of at most 16 MiB and headers of at most 128 KiB. */
export const MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
export const MAX_HEADERS_BYTES = 128 * 1024
const PRELUDE = 12
const OVERHEAD = 16

/** `event` of an UpstreamEvent that carries an in-stream exception (`:message-type: exception`). */
export const EXCEPTION_PREFIX = 'exception:'
/** `event` of an UpstreamEvent that carries a protocol error (`:message-type: error`). */
export const ERROR_EVENT = 'error:'

/**
 * `event` of the last UpstreamEvent of a stream whose framing or checksums are wrong (`data` says what):
 * the parser stops there, and the codec's decoder turns it into the documented failure (bad_gateway).
 */
export const MALFORMED_EVENT = 'malformed:'

// Loaded by the first Bedrock stream, not at start (src/core/lazy-package.ts says why).
const codecPackage = lazyPackage<typeof import('@smithy/eventstream-codec')>('@smithy/eventstream-codec')
const utf8 = lazyPackage<typeof import('@smithy/util-utf8')>('@smithy/util-utf8')

export function eventStreamCodec(): EventStreamCodec {
  const { toUtf8, fromUtf8 } = utf8()
  return new (codecPackage().EventStreamCodec)(toUtf8, fromUtf8)
}

function headerString(headers: MessageHeaders, name: string): string | undefined {
  const h = headers[name]
  return h && h.type === 'string' ? h.value : undefined
}

/**
 * An event-stream message as an UpstreamEvent: `event` is the `:event-type` header for events,
 * `exception:<:exception-type>` for modelled exceptions, `error:<:error-code>` for protocol errors;
 * `data` is the payload as UTF-8 text (JSON for Bedrock).
 */
export function messageToEvent(m: Message): UpstreamEvent {
  const data = utf8().toUtf8(m.body)
  const kind = headerString(m.headers, ':message-type') ?? 'event'
  let event: string
  if (kind === 'exception') event = EXCEPTION_PREFIX + (headerString(m.headers, ':exception-type') ?? 'unknown')
  else if (kind === 'error') {
    event = ERROR_EVENT + (headerString(m.headers, ':error-code') ?? 'unknown')
    const message = headerString(m.headers, ':error-message')
    return { event, data: JSON.stringify({ message: message ?? data }), raw: '' }
  } else event = headerString(m.headers, ':event-type') ?? 'unknown'
  // `raw` is what an SSE relay would forward as is: Bedrock events are always translated (the hub frames
  // they become carry their own raw text), so none is built for them.
  return { event, data, raw: '' }
}

/**
 * Bytes → whole messages → events, as they arrive. Holds at most one incomplete message (bounded by the
 * spec's limits). A length out of bounds, a checksum mismatch or a stream ending inside a message yields one
 * MALFORMED_EVENT and nothing after it (the stream cannot be resynchronised).
 */
export class EventStreamParser implements StreamParser {
  private readonly codec = eventStreamCodec()
  private buf: Uint8Array = new Uint8Array(0)
  private broken = false

  push(chunk: Uint8Array): UpstreamEvent[] {
    if (this.broken) return []
    this.buf = this.buf.length === 0 ? chunk : concat(this.buf, chunk)
    const out: UpstreamEvent[] = []
    let off = 0
    while (this.buf.length - off >= PRELUDE) {
      const view = new DataView(this.buf.buffer, this.buf.byteOffset + off, PRELUDE)
      const total = view.getUint32(0, false)
      const headersLen = view.getUint32(4, false)
      if (total < OVERHEAD || headersLen > MAX_HEADERS_BYTES || headersLen > total - OVERHEAD || total - OVERHEAD - headersLen > MAX_PAYLOAD_BYTES) {
        return this.fail(out, `a message declares ${total} bytes with ${headersLen} bytes of headers`)
      }
      if (this.buf.length - off < total) break
      let message: Message
      try {
        message = this.codec.decode(this.buf.subarray(off, off + total))
      } catch (err) {
        return this.fail(out, (err as Error).message.slice(0, 200))
      }
      out.push(messageToEvent(message))
      off += total
    }
    if (off > 0) this.buf = off === this.buf.length ? new Uint8Array(0) : this.buf.slice(off)
    return out
  }

  end(): UpstreamEvent[] {
    if (this.broken || this.buf.length === 0) return []
    return this.fail([], `the stream ended inside a message (${this.buf.length} bytes left over)`)
  }

  private fail(out: UpstreamEvent[], detail: string): UpstreamEvent[] {
    this.broken = true
    this.buf = new Uint8Array(0)
    out.push({ event: MALFORMED_EVENT, data: detail, raw: '' })
    return out
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length)
  out.set(a, 0)
  out.set(b, a.length)
  return out
}

/** One Bedrock event message (`:message-type: event`), JSON payload. */
export function encodeEvent(codec: EventStreamCodec, eventType: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: {
      ':event-type': { type: 'string', value: eventType },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'event' },
    },
    body: utf8().fromUtf8(JSON.stringify(payload)),
  })
}

/** One Bedrock exception message (`:message-type: exception`), JSON payload `{ message }`. */
export function encodeException(codec: EventStreamCodec, exceptionType: string, payload: unknown): Uint8Array {
  return codec.encode({
    headers: {
      ':exception-type': { type: 'string', value: exceptionType },
      ':content-type': { type: 'string', value: 'application/json' },
      ':message-type': { type: 'string', value: 'exception' },
    },
    body: utf8().fromUtf8(JSON.stringify(payload)),
  })
}
