import type { PolicyRegistry } from './policies/types.ts'
import { loadConfigText, type LoadResult } from './config/load.ts'

/** The well-known key of the demo consumer (override with SLUICE_DEMO_KEY). */
export const DEMO_KEY = 'sk-sluice-demo-key'

/**
 * The built-in demo: every model served by the in-process mock LLM, plus the real OpenAI models when
 * OPENAI_API_KEY is present, one demo consumer with a token limit so limits can be seen at work.
 */
export function demoConfigText(env: Readonly<Record<string, string | undefined>>): string {
  const openai = env.OPENAI_API_KEY
    ? `
  - id: openai
    type: openai
    auth: { apiKey: \${OPENAI_API_KEY} }
    timeout: 60s`
    : ''
  const openaiModels = env.OPENAI_API_KEY
    ? `
  - { name: openai/gpt-4o-mini, target: openai-gpt-4o-mini }`
    : ''
  const openaiPools = env.OPENAI_API_KEY
    ? `
  - id: openai-gpt-4o-mini
    members: [ { backend: openai } ]`
    : ''
  return `# Sluice built-in demo configuration (used when ./sluice.yaml does not exist)
listen: { host: \${SLUICE_HOST:-0.0.0.0}, port: \${PORT:-8080} }
admin:  { host: 127.0.0.1, port: \${SLUICE_ADMIN_PORT:-8081} }
store:  { type: memory }
ledger: { type: sqlite, path: .sluice/ledger.db }

backends:
  - id: mock
    type: mock
    ttft: 120ms
    tokensPerSecond: 150${openai}

pools:
  - id: mock-pool
    strategy: round-robin
    members: [ { backend: mock } ]${openaiPools}

models:
  - { name: gpt-4o-mini, target: mock-pool }
  - { name: gpt-4o, target: mock-pool }
  - { name: text-embedding-3-small, target: mock }${openaiModels}

products:
  - id: demo
    policies: []

consumers:
  - id: demo
    product: demo
    keys: [ { value: \${SLUICE_DEMO_KEY:-${DEMO_KEY}} } ]
`
}

export function loadDemoConfig(env: Readonly<Record<string, string | undefined>>, registry: PolicyRegistry): LoadResult {
  return loadConfigText(demoConfigText(env), { env, registry })
}
