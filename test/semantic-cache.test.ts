import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { ManualClock } from '../src/core/clock.ts'
import { noopMetrics, type MetricsSink } from '../src/telemetry/sink.ts'
import { startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'
import { chat, chatStream, eventually } from './helpers/cache.ts'

const yaml = (embedderExtra: string, policy: string) => `
backends:
  - id: mock-a
    type: mock
  - id: embedder
    type: mock
${embedderExtra}
models:
  - { name: gpt-4o-mini, target: mock-a }
products:
  - id: standard
  - id: other
consumers:
  - id: team-a
    product: standard
    keys: [ { value: ${TEST_KEY} } ]
  - id: team-b
    product: other
    keys: [ { value: ${TEST_KEY_B} } ]
policies:
  - semantic-cache:
      embeddings: { backend: embedder, model: text-embedding-3-small }
      ttl: 1h
${policy}
`

function recordingMetrics(): { sink: MetricsSink; lookups: string[] } {
  const lookups: string[] = []
  return { lookups, sink: { ...noopMetrics, cacheLookup: (policy, result) => { lookups.push(`${policy}:${result}`) } } }
}

describe('semantic-cache through the gateway (mock backend embeddings)', () => {
  let t: TestGateway
  let a: OpenAI
  let b: OpenAI
  const clock = new ManualClock()
  const m = recordingMetrics()

  before(async () => {
    t = await startTestGateway(yaml('', '      scoreThreshold: 0.3'), { clock, metrics: m.sink })
    a = new OpenAI({ apiKey: TEST_KEY, baseURL: `${t.url}/v1`, maxRetries: 0 })
    b = new OpenAI({ apiKey: TEST_KEY_B, baseURL: `${t.url}/v1`, maxRetries: 0 })
  })
  after(() => t.close())

  const ask = (client: OpenAI, content: string) => chat(client, { messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content }], max_tokens: 10 })

  it('serves a paraphrase from the cache, with the distance in x-sluice-cache-score', async () => {
    const first = await ask(a, 'How do I reverse a list in Python?')
    assert.equal(first.cache, 'miss')
    const para = await eventually(() => ask(a, 'How can I reverse a list in Python?'), (r) => r.cache === 'hit', 'a semantic hit')
    assert.equal(para.cache, 'hit')
    assert.equal(para.content, first.content)
    assert.equal(para.servedBy, 'cache:semantic')
    const score = Number(para.score)
    assert.ok(score > 0 && score <= 0.3, `score ${para.score}`)
    assert.ok(m.lookups.includes('semantic-cache:hit'))
  })

  it('replays a semantic hit as a stream too', async () => {
    const first = await ask(a, 'What is the boiling point of water at sea level?')
    const s = await eventually(() => chatStream(a, { messages: [{ role: 'system', content: 'You are terse.' }, { role: 'user', content: "What's the boiling point of water at sea level?" }], max_tokens: 10 }), (r) => r.cache === 'hit', 'a semantic hit')
    assert.equal(s.cache, 'hit')
    assert.equal(s.content, first.content)
  })

  it('misses on a one-fact change even when the embedding is closer than a paraphrase', async () => {
    await ask(a, 'What is the capital of France?')
    await eventually(() => ask(a, 'What is the capital of France?'), (r) => r.cache === 'hit', 'a semantic hit')
    for (const changed of ['What is the capital of Germany?', 'what is the capital of spain', 'What is the capital of France in 1800?', 'What is not the capital of France?']) {
      const r = await ask(a, changed)
      assert.equal(r.cache, 'miss', changed)
      assert.equal(r.backend, 'mock-a')
    }
  })

  it('never shares answers across products, nor across system prompts', async () => {
    await ask(a, 'Explain how photosynthesis works.')
    await eventually(() => ask(a, 'Explain how photosynthesis works.'), (r) => r.cache === 'hit', 'a semantic hit')
    assert.equal((await ask(b, 'Explain how photosynthesis works.')).cache, 'miss')
    const french = { messages: [{ role: 'system' as const, content: 'Answer in French.' }, { role: 'user' as const, content: 'Explain how photosynthesis works.' }], max_tokens: 10 }
    const otherSystem = await chat(a, french)
    assert.equal(otherSystem.cache, 'miss')
    // Both misses were boundaries, not entries that cannot be stored: each is a hit the second time.
    await eventually(() => ask(b, 'Explain how photosynthesis works.'), (r) => r.cache === 'hit', "team-b's own hit")
    await eventually(() => chat(a, french), (r) => r.cache === 'hit', 'the French system prompt hit')
  })

  it('expires entries at the TTL', async () => {
    await ask(a, 'Why is the sky blue?')
    await eventually(() => ask(a, 'Why is the sky blue?'), (r) => r.cache === 'hit', 'a semantic hit')
    clock.advance(3_600_001)
    assert.equal((await ask(a, 'Why is the sky blue?')).cache, 'miss')
  })
})

describe('semantic-cache when the embeddings backend fails', () => {
  it('still serves every request from the backend, bypassing the cache, and counts the bypass', async () => {
    const m = recordingMetrics()
    const t = await startTestGateway(yaml('    failRate: 1\n    failStatus: 500', ''), { metrics: m.sink })
    try {
      const a = new OpenAI({ apiKey: TEST_KEY, baseURL: `${t.url}/v1`, maxRetries: 0 })
      for (let i = 0; i < 2; i++) {
        const r = await chat(a, { messages: [{ role: 'user', content: 'Why is the sky blue?' }], max_tokens: 5 })
        assert.equal(r.backend, 'mock-a')
        assert.equal(r.cache, null)
        assert.ok(r.content.length > 0)
      }
      const s = await chatStream(a, { messages: [{ role: 'user', content: 'Why is the sky blue?' }], max_tokens: 5 })
      assert.ok(s.content.length > 0)
      assert.deepEqual(m.lookups, ['semantic-cache:bypass', 'semantic-cache:bypass', 'semantic-cache:bypass'])
    } finally {
      await t.close()
    }
  })
})
