import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'
import { chat, eventually, type Answer } from './helpers/cache.ts'
import { acquireLocalEmbedder } from '../src/cache/local-embedder.ts'
import type { Embedder } from '../src/cache/types.ts'

/**
 * The seeds' prompts through the gateway with the local USE-Lite embedder and every semantic-cache setting
 * at its default (team-a). team-b's product runs the same policy with a stricter scoreThreshold
 * (0.15): what hits for team-a because of the default threshold misses there. Each hit is contrasted with a
 * miss, each miss with a hit. The ledger records what every hit saved.
 */
const dir = mkdtempSync(join(tmpdir(), 'sluice-semlocal-'))
const yaml = `
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
pricing:
  models:
    gpt-4o-mini: { input: 1, output: 4 }
backends:
  - { id: mock-a, type: mock }
models:
  - { name: gpt-4o-mini, target: mock-a }
products:
  - id: standard
    policies:
      - semantic-cache:
          embeddings: { local: use-lite }
          ttl: 1h
  - id: strict
    policies:
      - semantic-cache:
          embeddings: { local: use-lite }
          ttl: 1h
          scoreThreshold: 0.15
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${TEST_KEY} } ] }
  - { id: team-b, product: strict, keys: [ { value: ${TEST_KEY_B} } ] }
`

interface Usage { prompt_tokens: number; completion_tokens: number }
interface Row { key: string; requests: number; cacheHits: number; costUsd: number; savedUsd: number }

describe('semantic cache with the default local embedder: the seeds\' prompts', () => {
  let t: TestGateway
  let a: OpenAI
  let b: OpenAI
  /** Usage of every hit served, per consumer: what the ledger must report as saved. */
  const hits = new Map<OpenAI, Usage[]>()

  let warm: Embedder

  before(async () => {
    // The model is process-wide: load it once here, with room for a loaded machine, so the policy's default
    // 5 s per-call timeout measures lookups, not the model load (a lookup that times out is a bypass).
    warm = acquireLocalEmbedder({ timeoutMs: 120_000 })
    await warm.embed(['warm up'])
    t = await startTestGateway(yaml)
    a = new OpenAI({ apiKey: TEST_KEY, baseURL: `${t.url}/v1`, maxRetries: 0, timeout: 90_000 })
    b = new OpenAI({ apiKey: TEST_KEY_B, baseURL: `${t.url}/v1`, maxRetries: 0, timeout: 90_000 })
  })
  after(async () => {
    await t.close()
    await warm.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const ask = (client: OpenAI, content: string) => chat(client, { messages: [{ role: 'user', content }], max_tokens: 12 })
  const served = (client: OpenAI, r: Answer) => { hits.set(client, [...(hits.get(client) ?? []), r.usage as Usage]) }
  /**
   * The first prompt of a topic: a lookup that missed (not a bypass), then the same prompt again until it hits,
   * so the entry is known to be stored before any paraphrase is asked (a paraphrase asked too early would miss
   * and store itself).
   */
  const seed = async (client: OpenAI, content: string): Promise<Answer> => {
    const r = await ask(client, content)
    assert.equal(r.cache, 'miss', `${content}: first ask`)
    const again = await eventually(() => ask(client, content), (x) => x.cache === 'hit', `the stored "${content}"`, 10_000)
    assert.equal(Number(again.score), 0)
    served(client, again)
    return r
  }
  const hit = async (client: OpenAI, content: string, first: Answer): Promise<Answer> => {
    const r = await ask(client, content)
    assert.equal(r.cache, 'hit', content)
    assert.equal(r.content, first.content, content)
    assert.equal(r.servedBy, 'cache:semantic', content)
    served(client, r)
    return r
  }

  it('after "How do I reset my password?", "Forgot my password, what now?" and "Password reset help" hit', async () => {
    const first = await seed(a, 'How do I reset my password?')
    const forgot = await hit(a, 'Forgot my password, what now?', first)
    const help = await hit(a, 'Password reset help', first)
    // Both sit between the strict (0.15) and the default (0.25) threshold: that is why the default moved.
    for (const r of [forgot, help]) assert.ok(Number(r.score) > 0.15 && Number(r.score) <= 0.25, `score ${r.score}`)
  })

  it('the same two prompts miss under the stricter threshold (0.15), and its own paraphrase still hits there', async () => {
    const first = await seed(b, 'How do I reset my password?')
    await hit(b, 'How can I reset my password?', first)
    for (const p of ['Forgot my password, what now?', 'Password reset help']) assert.equal((await ask(b, p)).cache, 'miss', p)
  })

  it('a changed fact misses where the paraphrase hit: "Forgot my username, what now?"', async () => {
    // Stored by now for team-a: "How do I reset my password?" and its two paraphrases served from it.
    const r = await ask(a, 'Forgot my username, what now?')
    assert.equal(r.cache, 'miss')
    assert.equal(r.servedBy, null)
  })

  it('"capital of France" / "capital of Germany" miss; "What\'s the capital of France?" hits', async () => {
    const first = await seed(a, 'What is the capital of France?')
    await hit(a, "What's the capital of France?", first)
    assert.equal((await ask(a, 'What is the capital of Germany?')).cache, 'miss')
  })

  it('"refund within 30 days" / "within 90 days" miss; "Am I able to get a refund within 30 days?" hits', async () => {
    const first = await seed(a, 'Can I get a refund within 30 days?')
    await hit(a, 'Am I able to get a refund within 30 days?', first)
    assert.equal((await ask(a, 'Can I get a refund within 90 days?')).cache, 'miss')
  })

  it('/admin/usage reports each hit and the cost it avoided, per consumer and per model, in JSON and CSV', async () => {
    // gpt-4o-mini at the config's price: $1 per million prompt tokens, $4 per million completion tokens.
    const saved = (u: Usage[]) => u.reduce((s, x) => s + (x.prompt_tokens * 1 + x.completion_tokens * 4) / 1e6, 0)
    const teamA = hits.get(a)!
    const teamB = hits.get(b)!
    // team-a: 3 topics stored (one exact re-ask each) + 4 paraphrases; team-b: 1 stored + 1 paraphrase.
    assert.equal(teamA.length, 7)
    assert.equal(teamB.length, 2)
    for (const u of [...teamA, ...teamB]) assert.ok(u.prompt_tokens > 0 && u.completion_tokens > 0, JSON.stringify(u))
    const get = async (qs: string) => {
      const res = await fetch(`${t.adminUrl}/admin/usage${qs}`)
      assert.equal(res.status, 200)
      return res
    }
    const byConsumer = ((await (await get('?by=consumer')).json()) as { rows: Row[] }).rows
    const rowA = byConsumer.find((r) => r.key === 'team-a')!
    const rowB = byConsumer.find((r) => r.key === 'team-b')!
    assert.equal(rowA.cacheHits, 7)
    assert.equal(rowB.cacheHits, 2)
    assert.ok(Math.abs(rowA.savedUsd - saved(teamA)) < 1e-9, `team-a saved ${rowA.savedUsd} vs ${saved(teamA)}`)
    assert.ok(Math.abs(rowB.savedUsd - saved(teamB)) < 1e-9, `team-b saved ${rowB.savedUsd} vs ${saved(teamB)}`)
    // The misses were billed, the hits were not: cost and savings never count the same request.
    assert.ok(rowA.costUsd > 0 && rowA.requests > rowA.cacheHits, `team-a: ${JSON.stringify(rowA)}`)
    const byModel = ((await (await get('?by=model')).json()) as { rows: Row[] }).rows
    assert.deepEqual(byModel.map((r) => [r.key, r.cacheHits]), [['gpt-4o-mini', 9]])
    assert.ok(Math.abs(byModel[0]!.savedUsd - saved([...teamA, ...teamB])) < 1e-9)
    const csv = (await (await get('?by=consumer&format=csv')).text()).trimEnd().split('\n')
    const head = csv[0]!.split(',')
    const line = csv.find((l) => l.startsWith('team-b,'))!.split(',')
    assert.equal(head.at(-1), 'savedUsd')
    assert.ok(Math.abs(Number(line[head.indexOf('savedUsd')]) - saved(teamB)) < 1e-9, line.join(','))
    assert.equal(Number(line[head.indexOf('cacheHits')]), 2)
  })
})
