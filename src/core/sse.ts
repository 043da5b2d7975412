/**
 * The one Server-Sent Events parser and encoder. Upstream bytes go in as they arrive; complete
 * frames come out with their original text so a pass-through proxy can forward them unchanged.
 */
export interface SseFrame {
  /** `event:` field, or undefined for the default `message` event. */
  readonly event: string | undefined
  /** Joined `data:` lines. */
  readonly data: string
  /** The frame as received, normalised to end with a blank line, ready to forward. */
  readonly raw: string
}

export class SseParser {
  private readonly decoder = new TextDecoder()
  private pending = ''

  /** Feeds bytes; returns every frame completed by them. */
  push(chunk: Uint8Array | string): SseFrame[] {
    this.pending += typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true })
    return this.drain(false)
  }

  /** Flushes a final frame that was not terminated by a blank line. */
  end(): SseFrame[] {
    this.pending += this.decoder.decode()
    return this.drain(true)
  }

  private drain(final: boolean): SseFrame[] {
    const frames: SseFrame[] = []
    let text = this.pending
    if (text.includes('\r')) text = text.replace(/\r\n?/g, '\n')
    let start = 0
    for (;;) {
      const end = text.indexOf('\n\n', start)
      if (end === -1) break
      const block = text.slice(start, end)
      start = end + 2
      const frame = parseBlock(block)
      if (frame) frames.push(frame)
    }
    this.pending = text.slice(start)
    if (final && this.pending.trim() !== '') {
      const frame = parseBlock(this.pending)
      this.pending = ''
      if (frame) frames.push(frame)
    }
    return frames
  }
}

function parseBlock(block: string): SseFrame | null {
  let event: string | undefined
  let data: string | null = null
  for (const line of block.split('\n')) {
    if (line === '' || line.charCodeAt(0) === 58 /* ':' comment */) continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.charCodeAt(0) === 32) value = value.slice(1)
    if (field === 'data') data = data === null ? value : data + '\n' + value
    else if (field === 'event') event = value
  }
  if (data === null && event === undefined) return null
  return { event, data: data ?? '', raw: block + '\n\n' }
}

export function encodeSse(data: string, event?: string): string {
  const lines = data.includes('\n') ? data.split('\n').map((l) => `data: ${l}`).join('\n') : `data: ${data}`
  return event ? `event: ${event}\n${lines}\n\n` : `${lines}\n\n`
}

export const SSE_DONE = 'data: [DONE]\n\n'
