import type { BackendConfig } from '../config/schema.ts'
import type { Operation } from '../core/context.ts'
import { anthropicVertexCodec } from '../translate/openai-to-anthropic-vertex.ts'
import { geminiCodec } from '../translate/openai-to-gemini.ts'
import { splitBase, type Provider } from './types.ts'

/**
 * Vertex AI: Gemini models (`publishers/google`, the Gemini request body) and Anthropic's Claude models
 * (`publishers/anthropic`, Messages bodies through rawPredict) under
 * `/v1/projects/{project}/locations/{region}/publishers/{publisher}/models/{model}`. The publisher is the
 * backend's `publisher`, else `anthropic` for claude-* model ids and `google` for the rest. The `global`
 * region is served at aiplatform.googleapis.com, every other at {region}-aiplatform.googleapis.com. Auth:
 * `auth: { google: … }` (OAuth bearer tokens, credentials/google.ts); an `apiKey` goes in x-goog-api-key
 * (Vertex AI express mode).
 */
export function vertexPublisher(backend: BackendConfig, model: string): 'google' | 'anthropic' {
  return backend.publisher ?? (/^claude-/i.test(model) ? 'anthropic' : 'google')
}

export function vertexHost(region: string): string {
  return region === 'global' ? 'https://aiplatform.googleapis.com' : `https://${region}-aiplatform.googleapis.com`
}

export const vertex: Provider = {
  type: 'vertex',
  speaks: 'gemini',
  operations: new Set<Operation>(['chat.completions']),
  defaultUrl: (backend) => (backend.region ? vertexHost(backend.region) : undefined),
  target(backend, _operation, model, baseUrl, stream) {
    const { origin, prefix } = splitBase(baseUrl)
    const root = prefix === '' ? '/v1' : prefix
    const publisher = vertexPublisher(backend, model)
    const headers: Record<string, string> = { ...backend.headers }
    if (backend.auth?.apiKey) headers['x-goog-api-key'] = backend.auth.apiKey
    const method = publisher === 'anthropic'
      ? (stream ? ':streamRawPredict' : ':rawPredict')
      : (stream ? ':streamGenerateContent?alt=sse' : ':generateContent')
    const path = `${root}/projects/${encodeURIComponent(backend.project ?? '')}/locations/${encodeURIComponent(backend.region ?? '')}/publishers/${publisher}/models/${encodeURIComponent(model)}${method}`
    return { origin, path, headers }
  },
  codec: geminiCodec,
  codecFor: (backend, model) => (vertexPublisher(backend, model) === 'anthropic' ? anthropicVertexCodec : geminiCodec),
}
