import type { Operation } from '../core/context.ts'
import type { BackendConfig } from '../config/schema.ts'
import { OPERATION_PATH, splitBase, type Provider } from './types.ts'

/**
 * OpenAI-compatible clouds and local servers, known by name: their base URL (with the path their
 * OpenAI-compatible API lives under), and which operations they serve. The key is sent as a bearer token,
 * as all of them expect. `url` overrides the base (e.g. a self-hosted vLLM elsewhere); a url given
 * without a path keeps the preset's own path.
 *
 * Base URLs from each provider's API reference (OpenAI-compatibility pages), as of 2026-12.
 */
interface Preset {
  readonly type: BackendConfig['type']
  readonly baseUrl: string
  readonly operations: readonly Operation[]
}

const CHAT: readonly Operation[] = ['chat.completions']
const CHAT_EMBED: readonly Operation[] = ['chat.completions', 'embeddings']
const ALL: readonly Operation[] = ['chat.completions', 'completions', 'embeddings', 'responses']

export const PRESETS: readonly Preset[] = [
  { type: 'groq', baseUrl: 'https://api.groq.com/openai/v1', operations: ['chat.completions', 'responses'] },
  { type: 'mistral', baseUrl: 'https://api.mistral.ai/v1', operations: CHAT_EMBED },
  { type: 'cerebras', baseUrl: 'https://api.cerebras.ai/v1', operations: ['chat.completions', 'completions'] },
  { type: 'deepinfra', baseUrl: 'https://api.deepinfra.com/v1/openai', operations: ['chat.completions', 'completions', 'embeddings'] },
  { type: 'xai', baseUrl: 'https://api.x.ai/v1', operations: ['chat.completions', 'responses'] },
  { type: 'together', baseUrl: 'https://api.together.xyz/v1', operations: ['chat.completions', 'completions', 'embeddings'] },
  { type: 'fireworks', baseUrl: 'https://api.fireworks.ai/inference/v1', operations: ['chat.completions', 'completions', 'embeddings'] },
  { type: 'openrouter', baseUrl: 'https://openrouter.ai/api/v1', operations: ['chat.completions', 'completions'] },
  { type: 'deepseek', baseUrl: 'https://api.deepseek.com/v1', operations: ['chat.completions', 'completions'] },
  { type: 'perplexity', baseUrl: 'https://api.perplexity.ai', operations: CHAT },
  // Local servers: their default ports on this machine.
  { type: 'ollama', baseUrl: 'http://127.0.0.1:11434/v1', operations: ['chat.completions', 'completions', 'embeddings'] },
  // vLLM also serves Whisper-style transcription/translation and the Jina/Cohere-shaped `/v1/rerank`.
  { type: 'vllm', baseUrl: 'http://127.0.0.1:8000/v1', operations: [...ALL, 'audio.transcriptions', 'audio.translations', 'rerank'] },
  { type: 'lmstudio', baseUrl: 'http://127.0.0.1:1234/v1', operations: ['chat.completions', 'completions', 'embeddings'] },
]

function presetProvider(p: Preset): Provider {
  const presetPath = new URL(p.baseUrl).pathname.replace(/\/+$/, '')
  return {
    type: p.type,
    speaks: 'openai',
    operations: new Set(p.operations),
    defaultUrl: () => p.baseUrl,
    target(backend, operation, _model, baseUrl) {
      const { origin, prefix } = splitBase(baseUrl)
      const root = prefix === '' ? presetPath : prefix
      const headers: Record<string, string> = { ...backend.headers }
      if (backend.auth?.apiKey) headers.authorization = `Bearer ${backend.auth.apiKey}`
      return { origin, path: root + OPERATION_PATH[operation], headers }
    },
  }
}

export const presetProviders: readonly Provider[] = PRESETS.map(presetProvider)
