import type { Operation } from '../core/context.ts'
import { anthropicCodec } from '../translate/openai-to-anthropic.ts'
import { splitBase, type Provider } from './types.ts'

/** The Messages API version Sluice speaks; a backend's `headers` may add `anthropic-beta` flags. */
export const ANTHROPIC_VERSION = '2023-06-01'

/**
 * Anthropic's Messages API: `x-api-key` and `anthropic-version` headers, `/v1/messages` under the base URL.
 * Chat completions are translated by the codec; the Anthropic front door sends its own body (same schema).
 */
export const anthropic: Provider = {
  type: 'anthropic',
  speaks: 'anthropic',
  operations: new Set<Operation>(['chat.completions']),
  defaultUrl: () => 'https://api.anthropic.com',
  target(backend, _operation, _model, baseUrl) {
    const { origin, prefix } = splitBase(baseUrl)
    const root = prefix === '' ? '/v1' : prefix
    const headers: Record<string, string> = { 'anthropic-version': ANTHROPIC_VERSION, ...backend.headers }
    if (backend.auth?.apiKey) headers['x-api-key'] = backend.auth.apiKey
    return { origin, path: `${root}/messages`, headers }
  },
  codec: anthropicCodec,
}
