import type { StreamResult } from '../core/pipeline.ts'
import { encodeSse, type SseFrame } from '../core/sse.ts'
import type { StreamDecoder } from './types.ts'

/** A hub chunk as the frame the kernel relays (what an OpenAI backend would have sent for it). */
export function hubFrame(chunk: Record<string, unknown>): SseFrame {
  const data = JSON.stringify(chunk)
  return { event: undefined, data, raw: encodeSse(data) }
}

/**
 * A backend's stream as hub frames, decoded event by event as they arrive: nothing is buffered beyond the
 * chunks one upstream event produces. Errors thrown by the decoder (a malformed event) surface from the
 * iterator like a network failure, so the kernel fails over before the commit point and sends its error
 * event after it.
 */
export function decodeStream(upstream: StreamResult, decoder: StreamDecoder): StreamResult {
  async function* frames(): AsyncGenerator<SseFrame> {
    for await (const event of upstream.frames) {
      const chunks = decoder.push(event)
      for (let i = 0; i < chunks.length; i++) yield hubFrame(chunks[i]!)
    }
    const rest = decoder.end()
    for (let i = 0; i < rest.length; i++) yield hubFrame(rest[i]!)
  }
  return { kind: 'stream', status: upstream.status, headers: upstream.headers, frames: frames(), abort: () => upstream.abort() }
}
