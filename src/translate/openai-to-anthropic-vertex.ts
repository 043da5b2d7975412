import { googleError } from './helpers/google-error.ts'
import { anthropicCodec } from './openai-to-anthropic.ts'
import type { BackendCodec } from './types.ts'

/**
 * Anthropic models on Vertex AI: the Messages API body with two differences, nothing else. The model is in
 * the URL (`publishers/anthropic/models/{model}:rawPredict`), not the body, and the API version is the body
 * field `anthropic_version: "vertex-2023-10-16"` instead of a header. Answers, streams and errors are
 * Anthropic's own, so the Anthropic codec reads them unchanged (except errors Vertex itself raises before the
 * model, such as quota and auth, which come in Google's google.rpc envelope); an Anthropic client's body
 * passes through with the same two edits.
 */
export const VERTEX_ANTHROPIC_VERSION = 'vertex-2023-10-16'

function forVertex(body: Record<string, unknown>): Record<string, unknown> {
  const { model: _model, ...rest } = body
  return { anthropic_version: VERTEX_ANTHROPIC_VERSION, ...rest }
}

export const anthropicVertexCodec: BackendCodec = {
  ...anthropicCodec,
  request(hub, tc) {
    const t = anthropicCodec.request(hub, tc)
    return { body: forVertex(t.body), omitted: t.omitted }
  },
  native: (clientBody) => forVertex(clientBody),
  error(status, body) {
    const e = body.error as Record<string, unknown> | undefined
    return e && typeof e === 'object' && (typeof e.status === 'string' || typeof e.code === 'number') ? googleError(status, body) : anthropicCodec.error(status, body)
  },
}
