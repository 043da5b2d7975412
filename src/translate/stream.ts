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
  return { kind: 'stream', status: upstream.status, headers: upstream.headers, frames: new DecodedFrames(upstream.frames, decoder, HUB_FRAMES), abort: () => upstream.abort() }
}

/** What one upstream event's chunks become, and what the end's rest becomes: the one difference between decoding and passthrough. */
interface FrameShape {
  ofEvent(event: SseFrame, chunks: readonly Record<string, unknown>[], text: HubChunkJson, out: SseFrame[]): void
  atEnd(rest: readonly Record<string, unknown>[], text: HubChunkJson, out: SseFrame[]): void
}

const HUB_FRAMES: FrameShape = {
  ofEvent: (_event, chunks, text, out) => { for (let i = 0; i < chunks.length; i++) out.push(hubFrame(chunks[i]!, text)) },
  atEnd: (rest, text, out) => {
    for (let i = 0; i < rest.length; i++) out.push(hubFrame(rest[i]!, text))
    // A translated stream ends like an OpenAI one (and like a cached replay): the OpenAI door relays it, others drop it.
    out.push(DONE_FRAME)
  },
}

/**
 * A backend's events through its decoder, as frames (a FrameShape's), one event at a time: nothing is held
 * beyond the frames one event produced. Errors thrown by the decoder come out of next() once, as from a
 * generator, and the source is closed.
 */
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

  constructor(frames: AsyncIterable<SseFrame>, private readonly decoder: StreamDecoder, private readonly shape: FrameShape) {
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
    this.finish()
    await this.source.return?.()
    return { value: undefined, done: true }
  }

  private async pull(): Promise<IteratorResult<SseFrame>> {
    try {
      for (;;) {
        const n = await this.source.next()
        // Only return() can have ended the stream while this pull waited: nothing more is decoded.
        if (this.over) return { value: undefined, done: true }
        this.out = []
        this.at = 0
        if (n.done) {
          this.shape.atEnd(this.decoder.end(), this.text, this.out)
          this.over = true
          if (this.out.length === 0) return { value: undefined, done: true }
          return { value: this.out[this.at++]!, done: false }
        }
        this.shape.ofEvent(n.value, this.decoder.push(n.value), this.text, this.out)
        if (this.out.length === 0) continue
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
  return { kind: 'stream', status: upstream.status, headers: upstream.headers, frames: new DecodedFrames(upstream.frames, decoder, NATIVE_FRAMES), abort: () => upstream.abort() }
}

const NATIVE_FRAMES: FrameShape = {
  ofEvent: (event, chunks, text, out) => {
    if (chunks.length === 0) {
      const empty: PassthroughFrame = { event: undefined, data: '', raw: '', native: event.raw }
      out.push(empty)
      return
    }
    for (let i = 0; i < chunks.length; i++) {
      const f: PassthroughFrame = { ...hubFrame(chunks[i]!, text), native: i === chunks.length - 1 ? event.raw : '' }
      out.push(f)
    }
  },
  // Chunks owed at the end (a cut stream's usage) are for accounting only: the client saw the backend's bytes.
  atEnd: (rest, text, out) => {
    for (let i = 0; i < rest.length; i++) {
      const f: PassthroughFrame = { ...hubFrame(rest[i]!, text), native: '' }
      out.push(f)
    }
  },
}
