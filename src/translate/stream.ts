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
 * event after it.
 */
export function decodeStream(upstream: StreamResult, decoder: StreamDecoder): StreamResult {
  const text = new HubChunkJson()
  async function* frames(): AsyncGenerator<SseFrame> {
    for await (const event of upstream.frames) {
      const chunks = decoder.push(event)
      for (let i = 0; i < chunks.length; i++) yield hubFrame(chunks[i]!, text)
    }
    const rest = decoder.end()
    for (let i = 0; i < rest.length; i++) yield hubFrame(rest[i]!, text)
    // A translated stream ends like an OpenAI one (and like a cached replay): the OpenAI door relays it, others drop it.
    yield DONE_FRAME
  }
  return { kind: 'stream', status: upstream.status, headers: upstream.headers, frames: frames(), abort: () => upstream.abort() }
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
