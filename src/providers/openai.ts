import type { Operation } from '../core/context.ts'
import { OPERATION_PATH, splitBase, type Provider } from './types.ts'

const TEXT: readonly Operation[] = ['chat.completions', 'completions', 'embeddings', 'responses']
/** OpenAI's own media endpoints (src/media/); OpenAI has no rerank endpoint. */
const OPENAI_MEDIA: readonly Operation[] = ['images.generations', 'images.edits', 'audio.transcriptions', 'audio.translations', 'audio.speech', 'moderations']
/** What each OpenAI-style type serves: an OpenAI-compatible server may offer rerank (vLLM, Jina, Cohere's compatibility API). */
const OPERATIONS: Record<'openai' | 'openai-compatible' | 'mock', ReadonlySet<Operation>> = {
  openai: new Set([...TEXT, ...OPENAI_MEDIA]),
  'openai-compatible': new Set([...TEXT, ...OPENAI_MEDIA, 'rerank']),
  mock: new Set([...TEXT, ...OPENAI_MEDIA, 'rerank']),
}

function openAiStyle(type: 'openai' | 'openai-compatible' | 'mock'): Provider {
  return {
    type,
    speaks: 'openai',
    operations: OPERATIONS[type],
    defaultUrl: type === 'openai' ? () => 'https://api.openai.com/v1' : undefined,
    target(backend, operation, _model, baseUrl) {
      const { origin, prefix } = splitBase(baseUrl)
      // A base URL given without a path means the conventional `/v1` root (vLLM, Ollama, LM Studio, OpenAI).
      const root = prefix === '' ? '/v1' : prefix
      const headers: Record<string, string> = { ...backend.headers }
      if (backend.auth?.apiKey) headers.authorization = `Bearer ${backend.auth.apiKey}`
      return { origin, path: root + OPERATION_PATH[operation], headers }
    },
  }
}

export const openai = openAiStyle('openai')
export const openaiCompatible = openAiStyle('openai-compatible')
export const mock = openAiStyle('mock')
