import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { ManualClock } from '../src/core/clock.ts'
import { startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'
import { chat, chatStream, eventually } from './helpers/cache.ts'

const YAML = `
backends:
  - id: mock-a
    type: mock
  - id: mock-slow
    type: mock
    tokensPerSecond: 50
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: gpt-4o, target: mock-slow }
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
  - cache: { ttl: 1h }
`

describe('cache (exact) through the gateway', () => {
  let t: TestGateway
  let a: OpenAI
  let b: OpenAI
  const clock = new ManualClock()
  let seq = 0
  const fresh = () => `exact test prompt ${++seq}: name three rivers`

  before(async () => {
    t = await startTestGateway(YAML, { clock })
    a = new OpenAI({ apiKey: TEST_KEY, baseURL: `${t.url}/v1`, maxRetries: 0 })
    b = new OpenAI({ apiKey: TEST_KEY_B, baseURL: `${t.url}/v1`, maxRetries: 0 })
  })
  after(() => t.close())

  it('misses, stores, then serves the same answer with x-sluice-cache: hit and the cached usage', async () => {
    const messages = [{ role: 'user' as const, content: fresh() }]
    const first = await chat(a, { messages, max_tokens: 12 })
    assert.equal(first.cache, 'miss')
    assert.equal(first.backend, 'mock-a')
    const second = await eventually(() => chat(a, { messages, max_tokens: 12 }), (r) => r.cache === 'hit', 'a cache hit')
    assert.equal(second.cache, 'hit')
    assert.equal(second.content, first.content)
    assert.equal(second.servedBy, 'cache:exact')
    assert.equal(second.backend, null)
    assert.deepEqual((second.usage as any).prompt_tokens, (first.usage as any).prompt_tokens)
    assert.deepEqual((second.usage as any).completion_tokens, (first.usage as any).completion_tokens)
  })

  it('a different request (parameter or message) is a different entry', async () => {
    const messages = [{ role: 'user' as const, content: fresh() }]
    await chat(a, { messages, max_tokens: 12 })
    await eventually(() => chat(a, { messages, max_tokens: 12 }), (r) => r.cache === 'hit', 'a cache hit')
    assert.equal((await chat(a, { messages, max_tokens: 13 })).cache, 'miss')
    assert.equal((await chat(a, { messages: [{ role: 'user', content: messages[0]!.content + '?' }], max_tokens: 12 })).cache, 'miss')
  })

  it('stores a streamed miss once complete and replays it as a proper SSE stream', async () => {
    const messages = [{ role: 'user' as const, content: fresh() }]
    const first = await chatStream(a, { messages, max_tokens: 20 })
    assert.equal(first.cache, 'miss')
    const hit = await eventually(() => chatStream(a, { messages, max_tokens: 20 }), (r) => r.cache === 'hit', 'a cache hit')
    assert.equal(hit.cache, 'hit')
    assert.equal(hit.content, first.content)
    assert.ok(hit.content.length > 0)
    const [head, ...rest] = hit.chunks
    assert.equal(head!.object, 'chat.completion.chunk')
    assert.equal(head!.choices[0].delta.role, 'assistant')
    const finish = rest.filter((c) => c.choices[0]?.finish_reason)
    assert.equal(finish.length, 1)
    assert.equal(finish[0]!.choices[0].finish_reason, 'length')
    assert.ok(rest.filter((c) => c.choices[0]?.delta?.content).length >= 2, 'content comes in several chunks')
    // The client did not ask for usage: none in the replay.
    assert.equal(hit.chunks.some((c) => c.usage), false)
    // With include_usage: the cached usage as the last chunk.
    const withUsage = await chatStream(a, { messages, max_tokens: 20, stream_options: { include_usage: true } })
    assert.equal(withUsage.cache, 'hit')
    const last = withUsage.chunks.at(-1)!
    assert.deepEqual(last.choices, [])
    assert.equal(last.usage.completion_tokens, 20, 'the cached usage: the 20 tokens max_tokens asked for')
  })

  it('serves a streamed request from a non-streamed entry, and the reverse', async () => {
    const m1 = [{ role: 'user' as const, content: fresh() }]
    const json = await chat(a, { messages: m1, max_tokens: 10 })
    const s = await eventually(() => chatStream(a, { messages: m1, max_tokens: 10 }), (r) => r.cache === 'hit', 'a cache hit')
    assert.equal(s.content, json.content)
    const m2 = [{ role: 'user' as const, content: fresh() }]
    const streamed = await chatStream(a, { messages: m2, max_tokens: 10 })
    const j = await eventually(() => chat(a, { messages: m2, max_tokens: 10 }), (r) => r.cache === 'hit', 'a cache hit')
    assert.equal(j.content, streamed.content)
  })

  it('never shares answers across products (default varyBy)', async () => {
    const messages = [{ role: 'user' as const, content: fresh() }]
    await chat(a, { messages, max_tokens: 8 })
    await eventually(() => chat(a, { messages, max_tokens: 8 }), (r) => r.cache === 'hit', 'a cache hit')
    const other = await chat(b, { messages, max_tokens: 8 })
    assert.equal(other.cache, 'miss')
    assert.equal(other.backend, 'mock-a')
    // The other product caches too (so its miss above was the tenant boundary, not "b is never cached").
    await eventually(() => chat(b, { messages, max_tokens: 8 }), (r) => r.cache === 'hit', "team-b's own hit")
  })

  it('expires entries at the TTL (by the gateway clock)', async () => {
    const messages = [{ role: 'user' as const, content: fresh() }]
    await chat(a, { messages, max_tokens: 8 })
    await eventually(() => chat(a, { messages, max_tokens: 8 }), (r) => r.cache === 'hit', 'a cache hit')
    clock.advance(3_600_000 + 1)
    assert.equal((await chat(a, { messages, max_tokens: 8 })).cache, 'miss')
  })

  it('never caches n > 1', async () => {
    const messages = [{ role: 'user' as const, content: fresh() }]
    const { response } = await a.chat.completions.create({ model: 'gpt-4o-mini', messages, n: 2, max_tokens: 5 }).withResponse()
    assert.equal(response.headers.get('x-sluice-cache'), null)
    const again = await a.chat.completions.create({ model: 'gpt-4o-mini', messages, n: 2, max_tokens: 5 }).withResponse()
    assert.equal(again.response.headers.get('x-sluice-cache'), null)
    assert.equal(again.response.headers.get('x-sluice-backend'), 'mock-a')
    // The same prompt with one choice is cached: n, not the prompt, kept the two above out.
    assert.equal((await chat(a, { messages, max_tokens: 5 })).cache, 'miss')
    await eventually(() => chat(a, { messages, max_tokens: 5 }), (r) => r.cache === 'hit', 'the n = 1 hit')
  })

  it('does not store an aborted stream', async () => {
    const messages = [{ role: 'user' as const, content: fresh() }]
    const ac = new AbortController()
    const stream = await a.chat.completions.create({ model: 'gpt-4o', messages, max_tokens: 60, stream: true }, { signal: ac.signal })
    try {
      for await (const c of stream) if (c.choices[0]?.delta?.content) { ac.abort(); }
    } catch { /* aborted */ }
    // No sleep: wait until the gateway has finished the aborted request (its complete hooks are then queued),
    // then let a later request be stored and served: hooks run in order, so the aborted one's has run too.
    await eventually(async () => t.gw.inflight.count, (n) => n === 0, 'the aborted request to finish')
    const barrier = [{ role: 'user' as const, content: fresh() }]
    await chat(a, { messages: barrier, max_tokens: 5 })
    await eventually(() => chat(a, { messages: barrier, max_tokens: 5 }), (r) => r.cache === 'hit', 'the barrier hit')
    const next = await chat(a, { model: 'gpt-4o', messages, max_tokens: 60 })
    assert.equal(next.cache, 'miss')
    // The same prompt completed once is stored: the abort, not the prompt, kept it out.
    const ok = await eventually(() => chat(a, { model: 'gpt-4o', messages, max_tokens: 60 }), (r) => r.cache === 'hit', 'a cache hit')
    assert.equal(ok.cache, 'hit')
  })
})
