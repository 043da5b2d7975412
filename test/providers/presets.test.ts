import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { loadConfigText } from '../../src/config/load.ts'
import { builtinPolicies } from '../../src/policies/registry.ts'
import { defaultBaseUrl } from '../../src/providers/index.ts'
import { startTestGateway, TEST_KEY } from '../helpers/gateway.ts'

// The documented OpenAI-compatible base URLs of each preset (their API references), written out here
// rather than read from src/, so a typo in the table fails this test.
const DOCUMENTED: Record<string, string> = {
  groq: 'https://api.groq.com/openai/v1',
  mistral: 'https://api.mistral.ai/v1',
  cerebras: 'https://api.cerebras.ai/v1',
  deepinfra: 'https://api.deepinfra.com/v1/openai',
  xai: 'https://api.x.ai/v1',
  together: 'https://api.together.xyz/v1',
  fireworks: 'https://api.fireworks.ai/inference/v1',
  openrouter: 'https://openrouter.ai/api/v1',
  deepseek: 'https://api.deepseek.com/v1',
  perplexity: 'https://api.perplexity.ai',
  ollama: 'http://127.0.0.1:11434/v1',
  vllm: 'http://127.0.0.1:8000/v1',
  lmstudio: 'http://127.0.0.1:1234/v1',
}

test('every preset is accepted by the config check and knows its base URL', () => {
  const backends = Object.keys(DOCUMENTED).map((t) => `  - { id: b-${t}, type: ${t}, auth: { apiKey: k } }`).join('\n')
  const res = loadConfigText(`backends:\n${backends}\n`, { registry: builtinPolicies(), env: {} })
  assert.ok(res.ok, res.ok ? '' : JSON.stringify(res.problems))
  for (const b of res.config.backends) assert.equal(defaultBaseUrl(b), DOCUMENTED[b.type], b.type)
})

test('an unknown backend type is refused with its path', () => {
  const res = loadConfigText('backends:\n  - { id: x, type: nosuchcloud }\n', { registry: builtinPolicies(), env: {} })
  assert.equal(res.ok, false)
})

interface Seen { path: string; auth: string | undefined; model: unknown }

async function recorder(): Promise<{ port: number; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = []
  const server = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', () => {
      seen.push({ path: req.url ?? '', auth: req.headers.authorization, model: (JSON.parse(raw) as { model: unknown }).model })
      // A Groq-shaped answer (usage as Groq reports it, with its extra timing fields).
      const body = JSON.stringify({
        id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'llama-3.3-70b-versatile',
        choices: [{ index: 0, message: { role: 'assistant', content: 'pong' }, finish_reason: 'stop', logprobs: null }],
        usage: { prompt_tokens: 1000, completion_tokens: 2000, total_tokens: 3000, queue_time: 0.01, prompt_time: 0.001, completion_time: 0.02, total_time: 0.03 },
      })
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return { port: (server.address() as AddressInfo).port, seen, close: () => new Promise<void>((r) => server.close(() => r())) }
}

test('a preset with a url override keeps its API path, sends the key as a bearer, and is priced from the table', async () => {
  const up = await recorder()
  const tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(mkdtempSync(join(tmpdir(), 'sluice-presets-')), 'ledger.db')} }
backends:
  - { id: fast, type: groq, url: "http://127.0.0.1:${up.port}", auth: { apiKey: gsk-test-groq }, models: { llama: llama-3.3-70b-versatile } }
  - { id: local, type: perplexity, url: "http://127.0.0.1:${up.port}", auth: { apiKey: pplx-test } }
models:
  - { name: llama, target: fast }
  - { name: sonar, target: local }
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  try {
    const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
    const r = await client.chat.completions.create({ model: 'llama', messages: [{ role: 'user', content: 'ping' }] })
    assert.equal(r.choices[0]!.message.content, 'pong')
    await client.chat.completions.create({ model: 'sonar', messages: [{ role: 'user', content: 'ping' }] })
    assert.deepEqual(up.seen, [
      { path: '/openai/v1/chat/completions', auth: 'Bearer gsk-test-groq', model: 'llama-3.3-70b-versatile' },
      // Perplexity's OpenAI-compatible API has no /v1 prefix.
      { path: '/chat/completions', auth: 'Bearer pplx-test', model: 'sonar' },
    ])
    await tg.gw.ledger!.flush()
    const rows = (await (await fetch(`${tg.adminUrl}/admin/usage?by=model`)).json()) as { rows: { key: string; costUsd: number }[] }
    // Groq's list price for llama-3.3-70b-versatile: $0.59 / 1M input, $0.79 / 1M output:
    // 1000 × 0.59e-6 + 2000 × 0.79e-6 = 0.00059 + 0.00158 = 0.00217 USD.
    const llama = rows.rows.find((x) => x.key === 'llama')!
    assert.ok(llama, JSON.stringify(rows))
    assert.ok(Math.abs(llama.costUsd - 0.00217) < 1e-9, String(llama.costUsd))
    // Perplexity sonar: $0.2 / $0.2 per 1M: 3000 × 0.2e-6 = 0.0006 USD.
    const sonar = rows.rows.find((x) => x.key === 'sonar')
    assert.ok(sonar, JSON.stringify(rows))
    assert.ok(Math.abs(sonar!.costUsd - 0.0006) < 1e-9, String(sonar!.costUsd))
  } finally {
    await tg.close()
    await up.close()
  }
})
