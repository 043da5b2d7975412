import { test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import { startSwitchable, reply } from './helpers/upstreams.ts'
import { startTestGateway, authHeaders, TEST_KEY } from './helpers/gateway.ts'

async function post(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}, key = TEST_KEY): Promise<{ status: number; model: string | null; backend: string | null; json: any }> {
  const res = await fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { ...authHeaders(key), ...headers }, body: JSON.stringify(body) })
  const json = await res.json()
  return { status: res.status, model: res.headers.get('x-sluice-model'), backend: res.headers.get('x-sluice-backend'), json }
}

test('a router model sends a short prompt to the cheap candidate and what it cannot take to the one that can', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-router-'))
  const tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')} }
backends:
  - { id: small, type: mock }
  - { id: large, type: mock }
models:
  - { name: gpt-4o-mini, target: small, capabilities: { contextWindow: 16000, tools: true, images: false, jsonSchema: true } }
  - { name: gpt-4o, target: large, capabilities: { contextWindow: 128000, tools: true, images: true, jsonSchema: true } }
  - { name: auto, router: { candidates: [gpt-4o-mini, gpt-4o], prefer: cheapest } }
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  try {
    const short = await post(tg.url, { model: 'auto', messages: [{ role: 'user', content: 'Classify: "great product" → positive or negative?' }], max_tokens: 3 })
    assert.equal(short.status, 200)
    assert.deepEqual([short.model, short.backend], ['gpt-4o-mini', 'small'])
    const image = await post(tg.url, { model: 'auto', max_tokens: 3, messages: [{ role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=' } }] }] })
    assert.deepEqual([image.status, image.model, image.backend], [200, 'gpt-4o', 'large'])
    // About 100k tokens ("word " is one token in o200k), past the small model's 16k window.
    const long = await post(tg.url, { model: 'auto', max_tokens: 3, messages: [{ role: 'user', content: 'word '.repeat(100_000) }] })
    assert.deepEqual([long.status, long.model, long.backend], [200, 'gpt-4o', 'large'])
    // A caller's cost ceiling: 100k prompt tokens at gpt-4o's $2.50 / 1M cost $0.25; a ceiling of $0.01 leaves nothing.
    const capped = await post(tg.url, { model: 'auto', max_tokens: 3, messages: [{ role: 'user', content: 'word '.repeat(100_000) }] }, { 'x-sluice-max-cost-usd': '0.01' })
    assert.equal(capped.status, 400)
    assert.match(capped.json.error.message, /No candidate of "auto"/)
    // The ledger keeps the requested model and prices the call as the model that served it.
    await tg.gw.ledger!.flush()
    const rows = (await (await fetch(`${tg.adminUrl}/admin/usage?by=model`)).json()) as { rows: { key: string; requests: number; costUsd: number }[] }
    const auto = rows.rows.find((r) => r.key === 'auto')!
    assert.equal(auto.requests, 4)
    assert.ok(auto.costUsd > 0.2, `priced as the served models: ${auto.costUsd}`)
  } finally {
    await tg.close()
  }
})

/** A backend that answers (after `delayMs`) with the given content and fixed usage. */
async function fixedAnswer(content: string, delayMs: number): Promise<{ url: string; hits: number; close(): Promise<void> }> {
  const state = { url: '', hits: 0, close: async () => {} }
  const server = http.createServer((req, res) => {
    state.hits++
    req.resume()
    req.on('end', () => setTimeout(() => {
      const body = JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'json-model', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage: { prompt_tokens: 7, completion_tokens: 5, total_tokens: 12 } })
      if (!res.destroyed) res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    }, delayMs))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
  state.close = () => new Promise<void>((r) => { server.close(() => r()); server.closeAllConnections() })
  return state
}

test('a race answers from the fast model, unless its answer fails the JSON schema; the loser is billed', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-race-'))
  const slowJson = await fixedAnswer('{"answer": 42}', 300)
  const tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')} }
backends:
  - { id: fast, type: mock, completionTokens: 16 }
  - { id: slow, type: openai-compatible, url: "${slowJson.url}" }
models:
  - { name: fast-model, target: fast }
  - { name: slow-model, target: slow }
  - { name: quick, race: { models: [fast-model, slow-model] } }
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  try {
    const plain = await post(tg.url, { model: 'quick', messages: [{ role: 'user', content: 'hello' }] })
    assert.deepEqual([plain.status, plain.model], [200, 'fast-model'])
    const schema = { type: 'object', properties: { answer: { type: 'number' } }, required: ['answer'], additionalProperties: false }
    const structured = await post(tg.url, { model: 'quick', messages: [{ role: 'user', content: 'answer' }], response_format: { type: 'json_schema', json_schema: { name: 'a', schema } } })
    assert.deepEqual([structured.status, structured.model], [200, 'slow-model'])
    assert.deepEqual(JSON.parse(structured.json.choices[0].message.content), { answer: 42 })
    const streamed = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: JSON.stringify({ model: 'quick', stream: true, messages: [{ role: 'user', content: 'hi' }] }) })
    assert.equal(streamed.headers.get('x-sluice-model'), 'fast-model')
    await streamed.text()
    await tg.gw.ledger!.flush()
    const rows = (await (await fetch(`${tg.adminUrl}/admin/usage?by=model`)).json()) as { rows: { key: string; requests: number; completionTokens: number }[] }
    const quick = rows.rows.find((r) => r.key === 'quick')!
    assert.equal(quick.requests, 3)
    // Plain: the fast model's 16 tokens (the mock's configured length); the slow one was cancelled before it
    // answered. Structured: the slow model's 5 served, and the fast model's rejected answer (16) billed beside
    // them. Streamed: 16 again. 16 + (5 + 16) + 16 = 53.
    assert.equal(quick.completionTokens, 53)
  } finally {
    await tg.close()
    await slowJson.close()
  }
})

test('a split keeps each consumer on its side and uses both sides', async () => {
  const consumers = Array.from({ length: 24 }, (_, i) => `  - { id: c${i}, keys: [ { value: sk-split-consumer-${i} } ] }`).join('\n')
  const tg = await startTestGateway(`
backends:
  - { id: stable, type: mock }
  - { id: next, type: mock }
models:
  - { name: gpt-4o, target: stable }
  - { name: gpt-5, target: next }
  - { name: canary, split: [ { model: gpt-4o, percent: 50 }, { model: gpt-5, percent: 50 } ] }
consumers:
${consumers}
`)
  try {
    const sides = new Map<string, number>()
    for (let i = 0; i < 24; i++) {
      const seen = new Set<string | null>()
      for (let k = 0; k < 3; k++) seen.add((await post(tg.url, { model: 'canary', max_tokens: 1, messages: [{ role: 'user', content: `q${k}` }] }, {}, `sk-split-consumer-${i}`)).model)
      assert.equal(seen.size, 1, `consumer c${i} stayed on one side`)
      const side = [...seen][0]!
      sides.set(side, (sides.get(side) ?? 0) + 1)
    }
    // 24 consumers on a 50/50 split: each side gets some (a binomial 24, 1/2 falls outside 4..20 with p < 0.002).
    for (const side of ['gpt-4o', 'gpt-5']) assert.ok((sides.get(side) ?? 0) >= 4 && (sides.get(side) ?? 0) <= 20, JSON.stringify([...sides]))
    // Visible in metrics: each side's requests (3 per consumer) under the split's decisions.
    const text = await (await fetch(`${tg.adminUrl}/metrics`)).text()
    for (const side of ['gpt-4o', 'gpt-5']) {
      const line = text.split('\n').find((l) => l.startsWith('sluice_route_decisions_total{') && l.includes(`served="${side}"`) && l.includes('reason="split"'))
      assert.ok(line, text.slice(0, 300))
      assert.equal(Number(line!.split(' ').pop()), 3 * sides.get(side)!)
    }
  } finally {
    await tg.close()
  }
})

test('retry: the only member is asked again after its short retry-after, and not past maxWait', async () => {
  const up = await startSwitchable()
  const tg = await startTestGateway(`
backends: [ { id: only, type: openai-compatible, url: "${up.url}" } ]
models:
  - { name: patient, target: only, retry: { attempts: 2, maxWait: 1s } }
  - { name: impatient, target: only }
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  try {
    let failures = 1
    up.behave = (req, res) => (failures-- > 0 ? reply(429, { 'retry-after-ms': '150' })(req, res) : false)
    const ok = await post(tg.url, { model: 'patient', messages: [{ role: 'user', content: 'x' }] })
    assert.equal(ok.status, 200)
    assert.equal(up.hits, 2)
    // Without `retry`, the same 429 reaches the client after one try.
    failures = 1
    const refused = await post(tg.url, { model: 'impatient', messages: [{ role: 'user', content: 'x' }] })
    assert.equal(refused.status, 429)
    assert.equal(up.hits, 3)
    // A retry-after longer than maxWait is not waited for.
    failures = 1
    up.behave = (req, res) => (failures-- > 0 ? reply(429, { 'retry-after': '5' })(req, res) : false)
    const long = await post(tg.url, { model: 'patient', messages: [{ role: 'user', content: 'x' }] })
    assert.equal(long.status, 429)
    assert.equal(up.hits, 4)
  } finally {
    await tg.close()
    await up.close()
  }
})

test('config: a model takes one of target, router, race or split; virtual models name real ones', async () => {
  const { loadConfigText } = await import('../src/config/load.ts')
  const { builtinPolicies } = await import('../src/policies/registry.ts')
  const bad = loadConfigText(`
backends: [ { id: b, type: mock } ]
models:
  - { name: a, target: b }
  - { name: r, router: { candidates: [a, nope] } }
  - { name: s, split: [ { model: a, percent: 60 } ] }
  - { name: both, target: b, race: { models: [a, r] } }
`, { registry: builtinPolicies(), env: {} })
  assert.equal(bad.ok, false)
  const messages = bad.ok ? [] : bad.problems.map((p) => p.message)
  assert.ok(messages.some((m) => m.includes('unknown model "nope"')))
  assert.ok(messages.some((m) => m.includes('add up to 60')))
  assert.ok(messages.some((m) => m.includes('exactly one of target, router, race or split')))
  assert.ok(messages.some((m) => m.includes('is a router, race or split model itself')))
  const good = loadConfigText(`
backends: [ { id: b, type: mock } ]
models:
  - { name: a, target: b }
  - { name: c, target: b }
  - { name: r, router: { candidates: [a, c], prefer: fastest } }
  - { name: s, split: [ { model: a, percent: 60 }, { model: c, percent: 40 } ] }
`, { registry: builtinPolicies(), env: {} })
  assert.ok(good.ok, good.ok ? '' : JSON.stringify(good.problems))
})
