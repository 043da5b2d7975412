import type { Operation } from '../core/context.ts'
import { OPERATION_PATH, splitBase, type Provider } from './types.ts'

const ALL: ReadonlySet<Operation> = new Set(['chat.completions', 'completions', 'embeddings', 'responses'])

function openAiStyle(type: 'openai' | 'openai-compatible' | 'mock'): Provider {
  return {
    type,
    speaks: 'openai',
    operations: ALL,
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
