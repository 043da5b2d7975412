import { encodeSse, type SseFrame } from '../../core/sse.ts'
import type { GatewayError } from '../../core/errors.ts'
import { streamTextOf, setStreamText } from './texts.ts'
import type { Finding, TextSegment } from './types.ts'

export interface StreamGuardOptions {
  /** Characters of generated text held back before they are checked and released. */
  readonly windowSize: number
  /** Characters of already-released text re-checked with the next window (phrases across boundaries). */
  readonly overlap: number
  /** Checks one window (with the overlap before it); returns the findings. */
  check(segment: TextSegment): Promise<Finding[]>
  /** The window's text with PII redacted, or null when nothing is (builtin engines with `pii.action: redact`). */
  redact(text: string): string | null
  /** The error that ends the stream when a window is blocked. */
  blocked(findings: readonly Finding[]): GatewayError
}

interface Held { frame: SseFrame; json: Record<string, unknown> | null; text: string }

/**
 * Checks a streamed completion as it arrives: events are held until their text fills a window, the
 * window is checked, then released. At most one window is ever held back. A blocked window is never
 * sent: the stream ends with the policy's error (the relay writes it as an error event, then [DONE]).
 */
export async function* guardStream(frames: AsyncIterable<SseFrame>, o: StreamGuardOptions): AsyncGenerator<SseFrame> {
  let held: Held[] = []
  let pending = 0
  let tail = ''
  const release = async function* (): AsyncGenerator<SseFrame> {
    const windowText = held.map((h) => h.text).join('')
    if (windowText !== '') {
      const seg: TextSegment = { role: 'completion', text: tail + windowText, write: () => {} }
      const findings = await o.check(seg)
      if (findings.some((f) => f.blocked)) throw o.blocked(findings)
      const redacted = o.redact(windowText)
      if (redacted !== null) rewrite(held, redacted)
      tail = (tail + windowText).slice(-o.overlap)
    }
    const out = held
    held = []
    pending = 0
    for (const h of out) yield h.frame
  }
  for await (const frame of frames) {
    let json: Record<string, unknown> | null = null
    if (frame.data.charCodeAt(0) === 123 /* { */) {
      try { json = JSON.parse(frame.data) as Record<string, unknown> } catch { json = null }
    }
    const text = json === null ? '' : streamTextOf(json)
    held.push({ frame, json, text })
    pending += text.length
    if (pending >= o.windowSize) yield* release()
  }
  yield* release()
}

/** A window came back redacted: its text replaces the held events' text, all of it in the first event that carries text. */
function rewrite(held: Held[], keep: string): void {
  let placed = false
  for (const h of held) {
    if (h.json === null || h.text === '') continue
    if (!setStreamText(h.json, placed ? '' : keep)) continue
    placed = true
    const data = JSON.stringify(h.json)
    h.frame = { event: h.frame.event, data, raw: encodeSse(data, h.frame.event) }
  }
}
