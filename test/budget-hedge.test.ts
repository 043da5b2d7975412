import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { startTestGateway, TEST_KEY } from './helpers/gateway.ts'
import { eventually } from './helpers/limits.ts'

// USD per 1M tokens = micro-dollars per token, written here.
const IN = 2
const OUT = 8

test('a hedge that lost the race is charged to the budget: its prompt on top of the answer', async () => {
  const tg = await startTestGateway(`
pricing: { models: { gpt-4o: { input: ${IN}, output: ${OUT} } } }
backends:
  - { id: slow, type: mock, ttft: 20s, latency: 20s }
  - { id: fast, type: mock }
pools:
  - { id: gpt-4o, members: [ { backend: slow }, { backend: fast } ] }
models:
  - { name: gpt-4o, target: gpt-4o, hedge: { after: 100ms, max: 2 } }
policies:
  - budget: { counterKey: consumer.id, usd: 10, period: monthly }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  try {
    const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o', max_tokens: 12, messages: [{ role: 'user', content: 'Tell me about rivers and their deltas' }] })
      .withResponse()
    assert.equal(response.headers.get('x-sluice-backend'), 'fast')
    assert.equal(response.headers.get('x-sluice-attempts'), '2')
    const u = data.usage!
    // The loser had the same prompt read (the gateway estimates it with the tokenizer the mock counts with).
    const expected = 2 * u.prompt_tokens * IN + u.completion_tokens * OUT
    const answerOnly = u.prompt_tokens * IN + u.completion_tokens * OUT
    const view = await eventually(async () => ((await (await fetch(`${tg.adminUrl}/admin/budgets?consumer=team-a`)).json()) as any).budgets[0], (b) => Math.round(b.usedUsd * 1e6) === expected, 'hedge settlement')
    assert.ok(view.usedUsd * 1e6 > answerOnly)
  } finally {
    await tg.close()
  }
})
