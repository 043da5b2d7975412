import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { z } from 'zod'
import { builtinPolicies } from '../src/policies/registry.ts'
import { registryOf, type PolicyFactory } from '../src/policies/types.ts'
import type { UsageRecord, UsageRow } from '../src/stores/ledger.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

const KEY_A = 'sk-ledger-e2e-team-a'
const KEY_B = 'sk-ledger-e2e-team-b'

/** A policy that answers `x-test-cached: 1` requests itself, the way a cache policy does on a hit. */
const fakeCacheHit: PolicyFactory<Record<string, never>> = {
  name: 'test-cache-answer',
  schema: z.strictObject({}),
  create: () => ({
    name: 'test-cache-answer',
    inbound(ctx) {
      if (ctx.info.headers['x-test-cached'] !== '1') return
      const body = { id: 'cached', object: 'chat.completion', created: 0, model: ctx.model, choices: [{ index: 0, message: { role: 'assistant', content: 'from cache' }, finish_reason: 'stop' }], usage: { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 } }
      return { kind: 'json', status: 200, headers: { 'x-sluice-served-by': 'cache:exact' }, body, text: JSON.stringify(body) }
    },
  }),
}

// Prices: gpt-4o-mini overridden in the config, gpt-4o and the embedding model from the shipped table.
const PRICE = {
  'gpt-4o-mini': { input: 1, output: 4, cached: 0.5 },
  'gpt-4o': { input: 2.5, output: 10 },
  'text-embedding-3-small': { input: 0.02, output: 0 },
} as const

const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-e2e-'))
const ledgerPath = join(dir, 'ledger.db')
const yaml = `
ledger: { type: sqlite, path: ${ledgerPath}, flushInterval: 50ms }
pricing:
  models:
    gpt-4o-mini: { input: 1, output: 4, cached: 0.5 }
backends:
  - { id: mock-a, type: mock }
  - { id: mock-b, type: mock }
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: gpt-4o, target: mock-b }
  - { name: text-embedding-3-small, target: mock-a }
products:
  - id: standard
    policies:
      - test-cache-answer: {}
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY_A} } ] }
  - { id: team-b, product: standard, keys: [ { value: ${KEY_B} } ] }
`

interface Sent { id: string; consumer: string | null; model: string | null; stream: boolean; status: number; prompt: number; completion: number; backend: string | null; cacheHit: boolean }

const listPrice = (s: Sent): number => {
  if (s.model === null) return 0
  const p = PRICE[s.model as keyof typeof PRICE]
  return (s.prompt * p.input + s.completion * p.output) / 1e6
}
const costOf = (s: Sent): number => (s.cacheHit ? 0 : listPrice(s))
/** A hit saved what the backend would have charged for the usage it served (gpt-4o: 11 × 2.5 + 3 × 10 per million). */
const savedOf = (s: Sent): number => (s.cacheHit ? listPrice(s) : 0)

describe('usage ledger end to end', () => {
  let tg: TestGateway
  const sent: Sent[] = []
  let n = 0

  const chat = async (key: string, consumer: string, model: string, opts: { stream?: boolean; includeUsage?: boolean; completion: number; cached?: boolean; text: string }) => {
    const id = `e2e-${++n}`
    const res = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-request-id': id, 'x-mock-completion-tokens': String(opts.completion), ...(opts.cached ? { 'x-test-cached': '1' } : {}) },
      body: JSON.stringify({ model, messages: [{ role: 'user', content: opts.text }], stream: opts.stream ?? false, ...(opts.includeUsage ? { stream_options: { include_usage: true } } : {}) }),
    })
    assert.equal(res.status, 200)
    type WireUsage = { prompt_tokens: number; completion_tokens: number }
    let usage: WireUsage | null = null
    if (opts.stream) {
      const text = await res.text()
      for (const line of text.split('\n')) {
        if (!line.startsWith('data: {')) continue
        const j = JSON.parse(line.slice(6)) as { usage?: WireUsage | null }
        if (j.usage) usage = j.usage
      }
    } else {
      usage = ((await res.json()) as { usage: WireUsage }).usage
    }
    return { id, usage, backend: res.headers.get('x-sluice-backend') }
  }

  before(async () => {
    tg = await startTestGateway(yaml, { registry: registryOf([...builtinPolicies().values(), fakeCacheHit]) })
    // Non-streamed: the usage the mock reports is in the body.
    for (const [key, consumer, model, completion] of [[KEY_A, 'team-a', 'gpt-4o-mini', 5], [KEY_A, 'team-a', 'gpt-4o-mini', 9], [KEY_B, 'team-b', 'gpt-4o', 7]] as const) {
      const r = await chat(key, consumer, model, { completion, text: `hello from ${consumer} number ${n}` })
      sent.push({ id: r.id, consumer, model, stream: false, status: 200, prompt: r.usage!.prompt_tokens, completion: r.usage!.completion_tokens, backend: r.backend, cacheHit: false })
    }
    // Streamed with usage asked by the client: the mock's usage chunk reaches the client.
    for (const [key, consumer, model, completion] of [[KEY_A, 'team-a', 'gpt-4o-mini', 12], [KEY_B, 'team-b', 'gpt-4o', 4]] as const) {
      const r = await chat(key, consumer, model, { stream: true, includeUsage: true, completion, text: `stream for ${consumer} ${n}` })
      assert.ok(r.usage, 'usage chunk relayed')
      sent.push({ id: r.id, consumer, model, stream: true, status: 200, prompt: r.usage!.prompt_tokens, completion: r.usage!.completion_tokens, backend: r.backend, cacheHit: false })
    }
    // Streamed without usage: the gateway asks the backend for it and keeps it out of the client's stream;
    // the same prompt non-streamed tells what the mock counts.
    {
      const text = 'a streamed prompt whose usage the client never sees'
      const probe = await chat(KEY_B, 'team-b', 'gpt-4o-mini', { completion: 6, text })
      sent.push({ id: probe.id, consumer: 'team-b', model: 'gpt-4o-mini', stream: false, status: 200, prompt: probe.usage!.prompt_tokens, completion: probe.usage!.completion_tokens, backend: probe.backend, cacheHit: false })
      const r = await chat(KEY_B, 'team-b', 'gpt-4o-mini', { stream: true, completion: 6, text })
      assert.equal(r.usage, null)
      sent.push({ id: r.id, consumer: 'team-b', model: 'gpt-4o-mini', stream: true, status: 200, prompt: probe.usage!.prompt_tokens, completion: probe.usage!.completion_tokens, backend: r.backend, cacheHit: false })
    }
    // Answered by a cache policy: tokens recorded, no backend, no cost.
    {
      const r = await chat(KEY_A, 'team-a', 'gpt-4o', { completion: 3, cached: true, text: 'cached question' })
      sent.push({ id: r.id, consumer: 'team-a', model: 'gpt-4o', stream: false, status: 200, prompt: 11, completion: 3, backend: null, cacheHit: true })
    }
    // Embeddings.
    {
      const id = `e2e-${++n}`
      const res = await fetch(`${tg.url}/v1/embeddings`, { method: 'POST', headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify({ model: 'text-embedding-3-small', input: 'embed me please' }) })
      assert.equal(res.status, 200)
      const body = (await res.json()) as { usage: { prompt_tokens: number } }
      sent.push({ id, consumer: 'team-a', model: 'text-embedding-3-small', stream: false, status: 200, prompt: body.usage.prompt_tokens, completion: 0, backend: res.headers.get('x-sluice-backend'), cacheHit: false })
    }
    // Refused: a bad key (401) still gets its row, with no consumer and no model: it is refused from its
    // headers before its body (and the model in it) is read.
    {
      const id = `e2e-${++n}`
      const res = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: 'Bearer sk-wrong-key-0000', 'content-type': 'application/json', 'x-request-id': id }, body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }) })
      assert.equal(res.status, 401)
      await res.arrayBuffer()
      sent.push({ id, consumer: null, model: null, stream: false, status: 401, prompt: 0, completion: 0, backend: null, cacheHit: false })
    }
  })

  after(async () => {
    await tg?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const records = async (): Promise<Map<string, UsageRecord>> => {
    assert.equal(await tg.gw.ledger!.flush(10_000), true)
    const rows = await tg.gw.ledger!.store.records({ requestIds: sent.map((s) => s.id) })
    return new Map(rows.map((r) => [r.requestId, r]))
  }

  it('writes one row per request with the mock\'s token counts and the price table\'s cost', async () => {
    const byId = await records()
    assert.equal(byId.size, sent.length)
    for (const s of sent) {
      const r = byId.get(s.id)!
      assert.ok(r, `row for ${s.id}`)
      assert.equal(r.consumer, s.consumer, s.id)
      assert.equal(r.product, s.consumer ? 'standard' : null, s.id)
      assert.equal(r.model, s.model, s.id)
      assert.equal(r.status, s.status, s.id)
      assert.equal(r.stream, s.stream, s.id)
      assert.equal(r.promptTokens, s.prompt, `${s.id} prompt tokens`)
      assert.equal(r.completionTokens, s.completion, `${s.id} completion tokens`)
      assert.equal(r.backend, s.backend, s.id)
      assert.equal(r.cacheHit, s.cacheHit, s.id)
      // A row with no model (refused before the body was read) has no price to apply: no cost, not zero.
      if (s.model === null) assert.equal(r.costUsd, null, `${s.id} cost`)
      else assert.ok(r.costUsd !== null && Math.abs(r.costUsd - costOf(s)) < 1e-12, `${s.id} cost ${r.costUsd} vs ${costOf(s)}`)
      assert.ok(Math.abs((r.savedUsd ?? -1) - savedOf(s)) < 1e-12, `${s.id} saved ${r.savedUsd} vs ${savedOf(s)}`)
      if (s.cacheHit) assert.ok(Math.abs(r.savedUsd! - 0.0000575) < 1e-12, `${s.id}: 11 prompt + 3 completion tokens of gpt-4o`)
      assert.ok(r.latencyMs >= 0)
      if (s.status === 200 && !s.cacheHit) assert.equal(r.attempts, 1, s.id)
      if (s.stream) assert.ok(r.ttftMs !== null && r.ttftMs <= r.latencyMs, `${s.id} ttft`)
      if (s.status === 401) assert.equal(r.errorCode, 'invalid_api_key')
      else assert.equal(r.errorCode, null)
    }
    assert.ok(sent.filter((s) => s.stream).length >= 3 && new Set(sent.flatMap((s) => s.model ?? [])).size === 3)
  })

  const expectedRows = (key: (s: Sent) => string): UsageRow[] => {
    const m = new Map<string, UsageRow>()
    for (const s of sent) {
      const k = key(s)
      const r = m.get(k) ?? { key: k, requests: 0, promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0, cacheHits: 0, errors: 0, savedUsd: 0 }
      m.set(k, { key: k, requests: r.requests + 1, promptTokens: r.promptTokens + s.prompt, completionTokens: r.completionTokens + s.completion,
        totalTokens: r.totalTokens + s.prompt + s.completion, costUsd: r.costUsd + costOf(s), cacheHits: r.cacheHits + (s.cacheHit ? 1 : 0), errors: r.errors + (s.status >= 400 ? 1 : 0),
        savedUsd: r.savedUsd + savedOf(s) })
    }
    return [...m.values()].sort((a, b) => (a.key < b.key ? -1 : 1))
  }
  const sameRows = (got: UsageRow[], want: UsageRow[]) => {
    assert.deepEqual(got.map((r) => ({ ...r, costUsd: 0, savedUsd: 0 })), want.map((r) => ({ ...r, costUsd: 0, savedUsd: 0 })))
    got.forEach((r, i) => assert.ok(Math.abs(r.costUsd - want[i]!.costUsd) < 1e-9, `${r.key} cost ${r.costUsd} vs ${want[i]!.costUsd}`))
    got.forEach((r, i) => assert.ok(Math.abs(r.savedUsd - want[i]!.savedUsd) < 1e-9, `${r.key} saved ${r.savedUsd} vs ${want[i]!.savedUsd}`))
  }
  const getUsage = async (qs: string) => {
    const res = await fetch(`${tg.adminUrl}/admin/usage${qs}`)
    return { status: res.status, type: res.headers.get('content-type') ?? '', text: await res.text() }
  }

  it('answers /admin/usage by consumer, model, backend and day in the contract shape', async () => {
    const res = await getUsage('?by=consumer')
    assert.equal(res.status, 200)
    const body = JSON.parse(res.text) as { rows: UsageRow[] }
    assert.deepEqual(Object.keys(body), ['rows'])
    assert.deepEqual(Object.keys(body.rows[0]!), ['key', 'requests', 'promptTokens', 'completionTokens', 'totalTokens', 'costUsd', 'cacheHits', 'errors', 'savedUsd'])
    sameRows(body.rows, expectedRows((s) => s.consumer ?? '(none)'))
    sameRows((JSON.parse((await getUsage('?by=model')).text) as { rows: UsageRow[] }).rows, expectedRows((s) => s.model ?? '(none)'))
    sameRows((JSON.parse((await getUsage('?by=backend&since=24h')).text) as { rows: UsageRow[] }).rows, expectedRows((s) => s.backend ?? '(none)'))
    const byDay = (JSON.parse((await getUsage('?by=day')).text) as { rows: UsageRow[] }).rows
    // The run may straddle midnight UTC: compare the totals over the days.
    for (const r of byDay) assert.match(r.key, /^\d{4}-\d{2}-\d{2}$/)
    assert.equal(byDay.reduce((a, r) => a + r.totalTokens, 0), sent.reduce((a, s) => a + s.prompt + s.completion, 0))
    assert.equal(byDay.reduce((a, r) => a + r.requests, 0), sent.length)
  })

  it('answers the same report as CSV', async () => {
    const res = await getUsage('?by=consumer&format=csv')
    assert.equal(res.status, 200)
    assert.match(res.type, /^text\/csv/)
    const [header, ...lines] = res.text.trimEnd().split('\n')
    assert.equal(header, 'key,requests,promptTokens,completionTokens,totalTokens,costUsd,cacheHits,errors,savedUsd')
    const rows = lines.map((l) => { const c = l.split(','); return { key: c[0]!, requests: +c[1]!, promptTokens: +c[2]!, completionTokens: +c[3]!, totalTokens: +c[4]!, costUsd: +c[5]!, cacheHits: +c[6]!, errors: +c[7]!, savedUsd: +c[8]! } })
    sameRows(rows, expectedRows((s) => s.consumer ?? '(none)'))
  })

  it('filters by time and refuses bad parameters with clear errors', async () => {
    const future = new Date(Date.now() + 86_400_000).toISOString()
    assert.deepEqual(JSON.parse((await getUsage(`?since=${future}`)).text), { rows: [] })
    const tomorrow = JSON.parse((await getUsage(`?until=2000-01-01`)).text) as { rows: UsageRow[] }
    assert.deepEqual(tomorrow.rows, [])
    for (const qs of ['?by=user', '?since=yesterday', '?format=xml', '?since=1h&until=2h']) {
      const r = await getUsage(qs)
      assert.equal(r.status, 400, qs)
      assert.equal((JSON.parse(r.text) as { error: { code: string } }).error.code, 'invalid_request_error', qs)
    }
  })

  it('`sluice usage` prints the same report from the ledger file, without the gateway', async () => {
    const api = JSON.parse((await getUsage('?by=model')).text) as { rows: UsageRow[] }
    const cfg = join(dir, 'sluice.yaml')
    writeFileSync(cfg, yaml.replace(/\n  - id: standard\n    policies:\n      - test-cache-answer: \{\}/, '\n  - id: standard'))
    const run = (args: string[]) => spawnSync(process.execPath, ['bin/sluice.js', 'usage', '--config', cfg, ...args], { encoding: 'utf8', timeout: 30_000 })
    const json = run(['--by', 'model', '--format', 'json'])
    assert.equal(json.status, 0, json.stderr)
    assert.deepEqual(JSON.parse(json.stdout), api)
    const table = run(['--by', 'consumer', '--since', '7d'])
    assert.equal(table.status, 0, table.stderr)
    assert.match(table.stdout, /^CONSUMER\s+REQUESTS\s+PROMPT\s+COMPLETION\s+TOTAL\s+COST_USD\s+CACHE_HITS\s+ERRORS/)
    assert.match(table.stdout, /\nteam-a\s+\d+/)
    assert.match(table.stdout, /\nTOTAL\s+/)
    const bad = run(['--by', 'nothing'])
    assert.equal(bad.status, 1)
    assert.match(bad.stderr, /--by/)
  })
})
