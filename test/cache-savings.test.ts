import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'
import { chat, eventually } from './helpers/cache.ts'

/** Exact-cache hits record what they saved: the price of the usage they served, at the model's price. */
const dir = mkdtempSync(join(tmpdir(), 'sluice-saved-exact-'))
const yaml = `
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
pricing:
  models:
    gpt-4o-mini: { input: 2, output: 8 }
backends:
  - { id: mock-a, type: mock }
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: unpriced-model, target: mock-a }
policies:
  - cache: { ttl: 1h }
products:
  - id: standard
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${TEST_KEY} } ] }
  - { id: team-b, product: standard, keys: [ { value: ${TEST_KEY_B} } ] }
`
interface Usage { prompt_tokens: number; completion_tokens: number }
interface Row { key: string; requests: number; cacheHits: number; costUsd: number; savedUsd: number }

describe('exact cache: every hit records the cost it avoided', () => {
  let t: TestGateway
  let a: OpenAI
  let b: OpenAI
  before(async () => {
    t = await startTestGateway(yaml)
    a = new OpenAI({ apiKey: TEST_KEY, baseURL: `${t.url}/v1`, maxRetries: 0 })
    b = new OpenAI({ apiKey: TEST_KEY_B, baseURL: `${t.url}/v1`, maxRetries: 0 })
  })
  after(async () => {
    await t.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('reports savedUsd per consumer and model; a miss saves nothing, a hit on an unpriced model saves nothing known', async () => {
    const params = { messages: [{ role: 'user' as const, content: 'Name three primary colours.' }], max_tokens: 9 }
    const miss = await chat(a, params)
    assert.equal(miss.cache, 'miss')
    const hitA = await eventually(() => chat(a, params), (r) => r.cache === 'hit', 'an exact hit')
    assert.equal(hitA.servedBy, 'cache:exact')
    // The exact cache is shared across consumers of the product: team-b's identical request hits too.
    const hitB = await chat(b, params)
    assert.equal(hitB.cache, 'hit')
    const unpricedMiss = await chat(a, { ...params, model: 'unpriced-model' })
    assert.equal(unpricedMiss.cache, 'miss')
    await eventually(() => chat(a, { ...params, model: 'unpriced-model' }), (r) => r.cache === 'hit', 'an exact hit (unpriced)')

    const u = hitA.usage as Usage
    assert.deepEqual(hitB.usage, u)
    const savedOne = (u.prompt_tokens * 2 + u.completion_tokens * 8) / 1e6 // the config's gpt-4o-mini price
    assert.ok(savedOne > 0)
    const get = async (qs: string) => ((await (await fetch(`${t.adminUrl}/admin/usage${qs}`)).json()) as { rows: Row[] }).rows
    const byModel = await get('?by=model')
    const mini = byModel.find((r) => r.key === 'gpt-4o-mini')!
    const unpriced = byModel.find((r) => r.key === 'unpriced-model')!
    assert.ok(mini.cacheHits >= 2 && Math.abs(mini.savedUsd - mini.cacheHits * savedOne) < 1e-9, JSON.stringify(mini))
    assert.ok(Math.abs(mini.costUsd - (mini.requests - mini.cacheHits) * savedOne) < 1e-9, 'each miss billed at the same price a hit saves')
    assert.equal(unpriced.cacheHits, 1)
    assert.equal(unpriced.savedUsd, 0)
    const byConsumer = await get('?by=consumer')
    const rowB = byConsumer.find((r) => r.key === 'team-b')!
    assert.deepEqual([rowB.requests, rowB.cacheHits, rowB.costUsd], [1, 1, 0])
    assert.ok(Math.abs(rowB.savedUsd - savedOne) < 1e-12, `team-b saved ${rowB.savedUsd} vs ${savedOne}`)
  })
})
