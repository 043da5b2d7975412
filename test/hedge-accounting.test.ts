import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import { startTestGateway, TEST_KEY } from './helpers/gateway.ts'

test('a cancelled hedge is billed: the ledger and the token limit count its prompt on top of the answer', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-hedge-ledger-'))
  const tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
backends:
  - { id: slow, type: mock, ttft: 20s, latency: 20s }
  - { id: fast, type: mock }
pools:
  - { id: gpt-4o, members: [ { backend: slow }, { backend: fast } ] }
models:
  - { name: gpt-4o, target: gpt-4o, hedge: { after: 100ms, max: 2 } }
policies:
  - token-limit: { counterKey: consumer.id, tokensPerMinute: 1000000 }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  try {
    const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
    const { data, response } = await client.chat.completions
      .create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'Tell me about rivers and their deltas' }] })
      .withResponse()
    assert.equal(response.headers.get('x-sluice-backend'), 'fast')
    assert.equal(response.headers.get('x-sluice-attempts'), '2')
    const answered = data.usage!
    // Fixed, by hand (o200k_base): 'Tell me about rivers and their deltas' = Tell| me| about| rivers| and| their| del|tas = 8;
    // with 'user' (1), 3 framing and 3 priming the prompt is 15, and the mock writes 16 completion tokens by default.
    assert.equal(answered.prompt_tokens, 15)
    assert.equal(answered.completion_tokens, 16)
    // The loser had the same 15-token prompt processed: billed twice.
    const expectedPrompt = 2 * 15
    let row: { promptTokens: number; completionTokens: number } | undefined
    for (let i = 0; i < 100 && row?.promptTokens !== expectedPrompt; i++) {
      await new Promise((r) => setTimeout(r, 30))
      const res = await fetch(`${tg.adminUrl}/admin/usage?by=consumer`)
      row = ((await res.json()) as { rows: Array<{ promptTokens: number; completionTokens: number }> }).rows[0]
    }
    assert.equal(row?.promptTokens, expectedPrompt, 'the ledger bills the cancelled try too')
    assert.equal(row?.completionTokens, 16)
    const limits = (await (await fetch(`${tg.adminUrl}/admin/limits?key=team-a`)).json()) as { limits: Array<{ windows: Array<{ used: number }> }> }
    assert.equal(limits.limits[0]!.windows[0]!.used, expectedPrompt + 16)
  } finally {
    await tg.close()
  }
})
