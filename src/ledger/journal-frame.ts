import { crc32 } from 'node:zlib'

/**
 * The journal's record framing: `u32 length | u32 crc32 | u8 kind | payload`, little-endian, where the
 * checksum covers the kind byte and the payload. A write the process did not finish (a torn tail) or a
 * damaged block fails the length or the checksum, so a reader stops at the last whole record.
 */
export const FRAME_HEADER = 9
/** Larger payloads are refused on write and taken as damage on read (a garbage length must not allocate GBs). */
export const MAX_PAYLOAD = 16 * 1024 * 1024

export const KIND_USAGE = 1
export const KIND_MESSAGES = 2
export type FrameKind = typeof KIND_USAGE | typeof KIND_MESSAGES

/** One encoded record, ready for a single write. */
export function encodeFrame(kind: FrameKind, payload: string): Buffer {
  const len = Buffer.byteLength(payload)
  if (len > MAX_PAYLOAD) throw new RangeError(`journal record of ${len} bytes is larger than ${MAX_PAYLOAD}`)
  const buf = Buffer.allocUnsafe(FRAME_HEADER + len)
  buf.writeUInt32LE(len, 0)
  buf[8] = kind
  buf.write(payload, FRAME_HEADER, 'utf8')
  buf.writeUInt32LE(crc32(buf.subarray(8)), 4)
  return buf
}

export interface DecodedFrame {
  readonly kind: FrameKind
  readonly payload: string
  /** Offset just past the frame, in the buffer. */
  readonly end: number
}

/** Why decoding stopped before the end of the buffer. */
export type FrameDamage = 'torn' | 'checksum' | 'length' | 'kind'

/**
 * Decodes the frame at `off`: the frame, null at the clean end of the buffer, or the damage found there
 * (a frame cut short, a checksum that does not match, an impossible length or kind).
 */
export function decodeFrame(buf: Buffer, off: number): DecodedFrame | null | { damage: FrameDamage } {
  if (off === buf.length) return null
  if (buf.length - off < FRAME_HEADER) return { damage: 'torn' }
  const len = buf.readUInt32LE(off)
  if (len > MAX_PAYLOAD) return { damage: 'length' }
  const end = off + FRAME_HEADER + len
  if (end > buf.length) return { damage: 'torn' }
  if (crc32(buf.subarray(off + 8, end)) !== buf.readUInt32LE(off + 4)) return { damage: 'checksum' }
  const kind = buf[off + 8]
  if (kind !== KIND_USAGE && kind !== KIND_MESSAGES) return { damage: 'kind' }
  return { kind, payload: buf.toString('utf8', off + FRAME_HEADER, end), end }
}
