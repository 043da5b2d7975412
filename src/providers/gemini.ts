import type { Operation } from '../core/context.ts'
import { geminiCodec } from '../translate/openai-to-gemini.ts'
import { splitBase, type Provider } from './types.ts'

/**
 * The Gemini API (Google AI Studio keys): `POST /v1beta/models/{model}:generateContent`, streams from
 * `:streamGenerateContent?alt=sse` (SSE, one GenerateContentResponse per event), the key in
 * `x-goog-api-key`. A `url` with a path replaces `/v1beta` (e.g. `https://host/v1` for the stable surface).
 */
export const gemini: Provider = {
  type: 'gemini',
  speaks: 'gemini',
  operations: new Set<Operation>(['chat.completions']),
  defaultUrl: () => 'https://generativelanguage.googleapis.com',
  target(backend, _operation, model, baseUrl, stream) {
    const { origin, prefix } = splitBase(baseUrl)
    const root = prefix === '' ? '/v1beta' : prefix
    const headers: Record<string, string> = { ...backend.headers }
    if (backend.auth?.apiKey) headers['x-goog-api-key'] = backend.auth.apiKey
    const method = stream ? ':streamGenerateContent?alt=sse' : ':generateContent'
    return { origin, path: `${root}/models/${encodeURIComponent(model.replace(/^models\//, ''))}${method}`, headers }
  },
  codec: geminiCodec,
}
