import { GW_ERR } from '../core/errors.ts'
import type { FailureSignal, StreamResult } from '../core/pipeline.ts'
import type { SseFrame } from '../core/sse.ts'
import { UpstreamFailure } from './failure.ts'

/** Most bytes held back while waiting for the first content event; past it the stream is committed anyway. */
export const COMMIT_MAX_BYTES = 16 * 1024

export type FrameKind = 'content' | 'error' | 'other'

/**
 * What a frame means for committing: `content` (a token, a refusal, a tool call, a Responses delta),
 * `error` (the backend reported a failure in the stream), or `other` (role-only deltas, Azure's
 * prompt_filter_results, usage, `[DONE]`…).
 */
export function frameKind(frame: SseFrame): FrameKind {
  return kindOf(frame, parsedData(frame))
}

function kindOf(frame: SseFrame, json: Record<string, unknown> | null): FrameKind {
  if (json === null) return frame.event === 'error' && frame.data.charCodeAt(0) !== 123 /* { */ ? 'error' : 'other'
  const type = json.type
  if (typeof type === 'string') {
    if (type === 'error' || type === 'response.failed') return 'error'
    if (type.endsWith('.delta')) return 'content'
  }
  if (json.error && typeof json.error === 'object' && !json.choices) return 'error'
  const choices = json.choices
  if (!Array.isArray(choices)) return 'other'
  for (const c of choices) {
    if (!c || typeof c !== 'object') continue
    const choice = c as Record<string, unknown>
    const delta = choice.delta as Record<string, unknown> | undefined
    const piece = delta ? delta.content ?? delta.refusal : choice.text
    if (typeof piece === 'string' && piece !== '') return 'content'
    if (delta && Array.isArray(delta.tool_calls) && delta.tool_calls.length) return 'content'
    if (choice.finish_reason) return 'content' // an answer that is empty on purpose is still an answer
  }
  return 'other'
}

export interface Committed {
  readonly result: StreamResult
  /** The text of the content held back (for accounting an attempt that lost a hedge race). */
  readonly text: string
}

/**
 * Holds a stream back until its first content event (or COMMIT_MAX_BYTES), so a backend that fails before
 * producing anything can be failed over without the client seeing a byte. Returns a stream that replays
 * the held frames, then continues upstream; `onLateFailure` hears of failures after the commit (they
 * still reach the client as the kernel's explicit SSE error event).
 */
export async function commitStream(upstream: StreamResult, backendId: string, onLateFailure: (f: UpstreamFailure) => void): Promise<Committed> {
  const it = upstream.frames[Symbol.asyncIterator]()
  const held: SseFrame[] = []
  let bytes = 0
  let ended = false
  let text = ''
  try {
    for (;;) {
      const n = await it.next()
      if (n.done) {
        ended = true
        break
      }
      const json = parsedData(n.value)
      const kind = kindOf(n.value, json)
      if (kind === 'error') {
        throw new UpstreamFailure(GW_ERR.BAD_GATEWAY, `Backend "${backendId}" reported an error before any content.`, 'status', backendId, 500)
      }
      // A held frame keeps what it was parsed into, so the relay does not parse it again.
      const frame: SseFrame = json === null || n.value.json !== undefined ? n.value : { ...n.value, json }
      held.push(frame)
      bytes += frame.raw.length
      if (kind === 'content') {
        text = contentText(json)
        break
      }
      if (bytes >= COMMIT_MAX_BYTES) break
    }
  } catch (err) {
    upstream.abort()
    throw err
  }
  // Replays the held frames, then hands out upstream's own promises: no extra async generator per frame.
  let next = 0
  // A failure from here on is late. A source that signals its failure (the upstream exchange) says so
  // itself; for any other, a rejected read is caught on its way to the reader.
  const signalling = typeof (it as Partial<FailureSignal>).onFailure === 'function'
  if (signalling && !ended) (it as unknown as FailureSignal).onFailure((err) => { if (err instanceof UpstreamFailure) onLateFailure(err) })
  const lateFailure = (err: unknown): never => {
    if (err instanceof UpstreamFailure) onLateFailure(err)
    throw err
  }
  const frames: AsyncIterableIterator<SseFrame> = {
    [Symbol.asyncIterator]() { return this },
    next(): Promise<IteratorResult<SseFrame>> {
      if (next < held.length) return Promise.resolve({ done: false, value: held[next++]! })
      if (held.length) held.length = next = 0
      if (ended) return Promise.resolve({ done: true, value: undefined })
      return signalling ? it.next() : it.next().catch(lateFailure)
    },
    async return(): Promise<IteratorResult<SseFrame>> {
      held.length = next = 0
      ended = true
      await it.return?.()
      return { done: true, value: undefined }
    },
  }
  return { result: { kind: 'stream', status: upstream.status, headers: upstream.headers, frames, abort: () => upstream.abort() }, text }
}

function contentText(parsed: Record<string, unknown> | null): string {
  const json = parsed as { delta?: unknown; choices?: { delta?: { content?: unknown }; text?: unknown }[] } | null
  if (json === null) return ''
  if (typeof json.delta === 'string') return json.delta
  const c = json.choices?.[0]
  const t = c?.delta?.content ?? c?.text
  return typeof t === 'string' ? t : ''
}

/** The frame's data as an object: the one a translated frame carries, else parsed (null when not a JSON object). */
function parsedData(frame: SseFrame): Record<string, unknown> | null {
  if (frame.json !== undefined) return frame.json
  if (frame.data.charCodeAt(0) !== 123 /* { */) return null
  try {
    return JSON.parse(frame.data) as Record<string, unknown>
  } catch {
    return null
  }
}
