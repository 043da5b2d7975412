/**
 * Finds the byte range of the `model` field's value in a multipart body as it streams past, so a try at a
 * backend that knows the model by another name (`backends[].models`) gets that name without the body being
 * re-encoded. Only a real part header counts: the boundary line, then `Content-Disposition: form-data;
 * name="model"` (as undici's FormData, form-data and curl write it); a file cannot contain that line, as the
 * boundary would end the file part.
 */
export class ModelValueLocator {
  private readonly heads: Buffer[]
  private readonly delimiter: Buffer
  private carry = Buffer.alloc(0)
  /** Absolute offset of carry[0]. */
  private offset = 0
  start = -1
  end = -1

  constructor(boundary: string) {
    this.heads = [`--${boundary}\r\nContent-Disposition: form-data; name="model"`, `--${boundary}\r\ncontent-disposition: form-data; name="model"`].map((s) => Buffer.from(s, 'latin1'))
    this.delimiter = Buffer.from(`\r\n--${boundary}`, 'latin1')
  }

  push(chunk: Buffer): void {
    if (this.end >= 0) return
    const buf = this.carry.length ? Buffer.concat([this.carry, chunk]) : chunk
    let from = 0
    if (this.start < 0) {
      for (const head of this.heads) {
        const i = buf.indexOf(head)
        if (i < 0) continue
        const headersEnd = buf.indexOf('\r\n\r\n', i + head.length, 'latin1')
        if (headersEnd < 0) { from = i; break } // the header block continues in the next chunk
        this.start = this.offset + headersEnd + 4
        break
      }
    }
    if (this.start >= 0) {
      const j = buf.indexOf(this.delimiter, Math.max(0, this.start - this.offset))
      if (j >= 0) { this.end = this.offset + j; this.carry = Buffer.alloc(0); return }
      from = Math.max(0, this.start - this.offset)
    } else if (from === 0) {
      from = Math.max(0, buf.length - (this.heads[0]!.length + 4096))
    }
    // Keep what a match may still begin in: the header's length (plus its parameters) or the value so far.
    const keep = buf.subarray(from)
    if (keep.length > 64 * 1024 + this.delimiter.length) {
      // A model value longer than any field the gateway reads: not a value it will rewrite.
      this.start = -1
      this.offset += buf.length
      this.carry = Buffer.alloc(0)
      return
    }
    this.carry = Buffer.from(keep)
    this.offset += from
  }
}

export function locateModelValue(l: ModelValueLocator): { start: number; end: number } | null {
  return l.start >= 0 && l.end >= l.start ? { start: l.start, end: l.end } : null
}

/** The body with bytes [start, end) replaced, as it streams: nothing else is touched or held. */
export async function* replaceRange(source: AsyncIterable<Buffer>, range: { start: number; end: number }, replacement: Buffer): AsyncGenerator<Buffer> {
  let pos = 0
  let replaced = false
  for await (const chunk of source) {
    const from = pos
    const to = pos + chunk.length
    pos = to
    if (to <= range.start || from >= range.end) {
      if (from >= range.end && !replaced) { replaced = true; yield replacement }
      yield chunk
      continue
    }
    const before = chunk.subarray(0, Math.max(0, range.start - from))
    const after = chunk.subarray(Math.max(0, Math.min(chunk.length, range.end - from)))
    if (before.length) yield before
    if (!replaced && to >= range.end) { replaced = true; yield replacement }
    if (after.length && to > range.end) yield after
  }
}
