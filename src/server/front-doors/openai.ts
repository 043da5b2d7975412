import { encodeSse, SSE_DONE } from '../../core/sse.ts'
import { PassThroughError } from '../../upstream/router.ts'
import { validateBody } from '../validate.ts'
import type { FrontDoor, StreamWriter } from './types.ts'

/**
 * The OpenAI routes (chat completions, completions, embeddings, responses; Azure deployment paths): the hub's
 * own schema, so bodies go through as parsed and frames as received.
 */
export const openaiDoor: FrontDoor = {
  schema: 'openai',
  parse(operation, body, modelFromPath, _headers, ceilings) {
    validateBody(operation, body, modelFromPath, ceilings)
    return {
      model: modelFromPath ?? (body.model as string),
      body,
      stream: body.stream === true,
      clientWantsStreamUsage: (body.stream_options as { include_usage?: unknown } | undefined)?.include_usage === true,
    }
  },
  json(result) {
    return result.modified || result.text === null ? JSON.stringify(result.body) : result.text
  },
  streamWriter(): StreamWriter {
    return {
      // An unchanged frame leaves as the bytes it came in (no re-encoding); an edited one is serialised anew.
      frame: (frame, json, modified) => (modified && json ? encodeSse(JSON.stringify(json), frame.event) : frame.bytes ?? frame.raw),
      end: () => '',
      error: (err) => encodeSse(JSON.stringify(err.toJSON())) + SSE_DONE,
      forwardsUnchanged: true,
    }
  },
  errorBody(err) {
    return err instanceof PassThroughError ? err.body : err.toJSON()
  },
  headers: (h) => h,
}
