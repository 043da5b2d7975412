import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI, { RateLimitError } from 'openai'
import { ManualClock } from '../src/core/clock.ts'
import { BASIC_YAML, TEST_KEY, startTestGateway, type TestGateway } from './helpers/gateway.ts'

const MESSAGES = [{ role: 'user' as const, content: 'Say hello.' }]
// Fixed, derived by hand from OpenAI's chat token accounting for gpt-4o-mini (o200k_base, checked with gpt-tokenizer's
// encode): 3 tokens of framing per message + the role 'user' (1) + 'Say hello.' (Say| hello|. = 3), +3 priming the reply.
const PROMPT = 3 + 3 + 1 + 3 // = 10

describe('token-limit seen through the official openai SDK', () => {
  const clock = new ManualClock()
  let g: TestGateway
  before(async () => {
    g = await startTestGateway(`${BASIC_YAML}\npolicies:\n  - token-limit: { counterKey: consumer.id, tokensPerMinute: 1000 }\n`, { clock })
  })
  after(() => g.close())

  it('surfaces a full window as RateLimitError with the retry headers', async () => {
    const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${g.url}/v1`, maxRetries: 0 })
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 900 - PROMPT })
    clock.advance(10_000)
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 200 }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof RateLimitError, `got ${String(err)}`)
    assert.equal(err.status, 429)
    assert.equal(err.code, 'rate_limit_exceeded')
    assert.equal(err.headers?.get('retry-after-ms'), '50000')
    assert.equal(err.headers?.get('retry-after'), '50')
  })

  it('retries automatically after retry-after-ms and then succeeds', async () => {
    clock.advance(120_000) // an empty window
    const calls: { at: number; status: number; retryAfterMs: number | null }[] = []
    // The gateway runs on a fake clock: move it forward by the real time that passes between attempts,
    // so the window frees exactly when the SDK's wait says it should.
    let lastReal = Date.now()
    const fetchWithClock: typeof fetch = async (input, init) => {
      const now = Date.now()
      clock.advance(now - lastReal)
      lastReal = now
      const res = await fetch(input, init)
      const h = res.headers.get('retry-after-ms')
      calls.push({ at: now, status: res.status, retryAfterMs: h === null ? null : Number(h) })
      lastReal = Date.now()
      return res
    }
    const client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${g.url}/v1`, maxRetries: 3, fetch: fetchWithClock })
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 900 - PROMPT })
    clock.advance(59_700) // the first request leaves the window in 300 ms
    const done = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: MESSAGES, max_tokens: 200 })
    assert.equal(done.choices.length, 1)
    const [, refused, retried] = calls
    assert.equal(calls.length, 3, JSON.stringify(calls))
    assert.equal(refused!.status, 429)
    assert.ok(refused!.retryAfterMs! > 0 && refused!.retryAfterMs! <= 300, JSON.stringify(refused))
    assert.equal(retried!.status, 200)
    // The SDK waited at least what retry-after-ms asked for before retrying.
    assert.ok(retried!.at - refused!.at >= refused!.retryAfterMs!, `waited ${retried!.at - refused!.at} ms for ${refused!.retryAfterMs}`)
    // …and not much more (the SDK honours retry-after-ms rather than its own longer backoff).
    assert.ok(retried!.at - refused!.at < refused!.retryAfterMs! + 2_000, `waited ${retried!.at - refused!.at} ms for ${refused!.retryAfterMs}`)
  })
})
