import type { StreamResult } from '../core/pipeline.ts'
import { SSE_DONE, type SseFrame } from '../core/sse.ts'
import { HubChunkJson } from './hub-chunk-json.ts'
import type { StreamDecoder } from './types.ts'

/**
 * A hub chunk as the frame the kernel relays (what an OpenAI backend would have sent for it). `text` is the
 * stream's serializer (one per stream: it keeps the envelope's text). JSON text never holds a raw newline,
 * so the frame is one `data:` line.
 */
export function hubFrame(chunk: Record<string, unknown>, text: HubChunkJson = new HubChunkJson()): SseFrame {
  const data = text.text(chunk)
  return { event: undefined, data, raw: 'data: ' + data + '\n\n', json: chunk }
}

/**
 * A backend's stream as hub frames, decoded event by event as they arrive: nothing is buffered beyond the
 * chunks one upstream event produces. Errors thrown by the decoder (a malformed event) surface from the
 * iterator like a network failure, so the kernel fails over before the commit point and sends its error
 * event after it. A hand-written iterator rather than an async generator: a frame already decoded is handed
 * out with one resolved promise, where a generator's `yield` costs several microtask turns per frame.
 */
export function decodeStream(upstream: StreamResult, decoder: StreamDecoder): StreamResult {
  return { kind: 'stream', status: upstream.status, headers: upstream.headers, frames: new DecodedFrames(upstream.frames, decoder), abort: () => upstream.abort() }
}

class DecodedFrames implements AsyncIterableIterator<SseFrame> {
  private readonly text = new HubChunkJson()
  private readonly source: AsyncIterator<SseFrame>
  /** Frames decoded from the last upstream event and not handed out yet. */
  private out: SseFrame[] = []
  private at = 0
  /** The upstream ended (the decoder's rest and [DONE] are in `out`), failed or was closed. */
  private over = false
  /** A pull in progress: a next() called meanwhile waits for it (readers are sequential; this keeps it safe). */
  private pulling: Promise<IteratorResult<SseFrame>> | null = null
  /** return() was called: nothing more is decoded, even by a pull that was waiting on the source. */
  private closed = false

  constructor(frames: AsyncIterable<SseFrame>, private readonly decoder: StreamDecoder) {
    this.source = frames[Symbol.asyncIterator]()
  }

  [Symbol.asyncIterator](): this { return this }

  next(): Promise<IteratorResult<SseFrame>> {
    if (this.at < this.out.length) return Promise.resolve({ value: this.out[this.at++]!, done: false })
    if (this.over) return Promise.resolve({ value: undefined, done: true })
    if (this.pulling !== null) return this.pulling.then(() => this.next(), () => this.next())
    // pull() cannot settle before this assignment: it awaits the source first, and clears it when it settles.
    this.pulling = this.pull()
    return this.pulling
  }

  async return(): Promise<IteratorResult<SseFrame>> {
    this.closed = true
    this.finish()
    await this.source.return?.()
    return { value: undefined, done: true }
  }

  private async pull(): Promise<IteratorResult<SseFrame>> {
    try {
      for (;;) {
        const n = await this.source.next()
        if (this.closed) return { value: undefined, done: true }
        this.out = []
        this.at = 0
        if (n.done) {
          const rest = this.decoder.end()
          for (let i = 0; i < rest.length; i++) this.out.push(hubFrame(rest[i]!, this.text))
          // A translated stream ends like an OpenAI one (and like a cached replay): the OpenAI door relays it, others drop it.
          this.out.push(DONE_FRAME)
          this.over = true
          return { value: this.out[this.at++]!, done: false }
        }
        const chunks = this.decoder.push(n.value)
        if (chunks.length === 0) continue
        for (let i = 0; i < chunks.length; i++) this.out.push(hubFrame(chunks[i]!, this.text))
        return { value: this.out[this.at++]!, done: false }
      }
    } catch (err) {
      // As a generator would: the error once, then the iterator is done and its source closed.
      this.finish()
      this.source.return?.().catch(() => {})
      throw err
    } finally {
      this.pulling = null
    }
  }

  private finish(): void {
    this.over = true
    this.out = []
    this.at = 0
  }
}

const DONE_FRAME: SseFrame = { event: undefined, data: '[DONE]', raw: SSE_DONE }

/**
 * A hub frame that also carries the backend's own bytes, for same-schema passthrough: `native` is the raw
 * upstream event that produced this frame ('' for all but the last frame an event produced). Events that
 * decode to no hub chunk (pings, block stops) still come through, as frames with empty data.
 */
export interface PassthroughFrame extends SseFrame {
  readonly native: string
}

export function isPassthroughFrame(frame: SseFrame): frame is PassthroughFrame {
  return typeof (frame as Partial<PassthroughFrame>).native === 'string'
}

/**
 * Same-schema passthrough: the backend's frames go to the client as received, while the decoder turns them
 * into hub chunks for accounting, policies and the commit point (decode for accounting only).
 */
export function passthroughStream(upstream: StreamResult, decoder: StreamDecoder): StreamResult {
  const text = new HubChunkJson()
  async function* frames(): AsyncGenerator<PassthroughFrame> {
    for await (const event of upstream.frames) {
      const chunks = decoder.push(event)
      if (chunks.length === 0) {
        yield { event: undefined, data: '', raw: '', native: event.raw } satisfies PassthroughFrame
        continue
      }
      for (let i = 0; i < chunks.length; i++) {
        const f = hubFrame(chunks[i]!, text)
        yield { ...f, native: i === chunks.length - 1 ? event.raw : '' } satisfies PassthroughFrame
      }
    }
    // Chunks owed at the end (a cut stream's usage) are for accounting only: the client saw the backend's bytes.
    const rest = decoder.end()
    for (let i = 0; i < rest.length; i++) yield { ...hubFrame(rest[i]!, text), native: '' } satisfies PassthroughFrame
  }
  return { kind: 'stream', status: upstream.status, headers: upstream.headers, frames: frames(), abort: () => upstream.abort() }
}
