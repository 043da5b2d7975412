import { test } from 'node:test'
import assert from 'node:assert/strict'
import OpenAI from 'openai'
import { request } from 'undici'
import { startTestGateway, TEST_KEY } from './helpers/gateway.ts'

const yaml = (countHits: boolean) => `
backends:
  - { id: m, type: mock }
models:
  - { name: gpt-4o-mini, target: m }
products:
  - id: p
    policies:
      - token-limit: { counterKey: consumer.id, tokensPerMinute: 100000 }
      - cache: { ttl: 1h, countHits: ${countHits} }
consumers:
  - { id: team-a, product: p, keys: [ { value: ${TEST_KEY} } ] }
`

async function usedTokens(adminUrl: string): Promise<number> {
  const res = await request(`${adminUrl}/admin/limits?key=team-a`)
  const body = (await res.body.json()) as { limits: Array<{ windows: Array<{ used: number }> }> }
  return body.limits[0]!.windows[0]!.used
}

/** Waits until the counter reads `expected`; a wait that runs out fails (with the last value read). */
async function settled(adminUrl: string, expected: number): Promise<number> {
  let used = -1
  for (let i = 0; i < 100; i++) {
    used = await usedTokens(adminUrl)
    if (used === expected) return used
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`the token counter never read ${expected}; last ${used}`)
}

for (const countHits of [true, false]) {
  test(`a cache hit is ${countHits ? '' : 'not '}charged to the token limit with countHits: ${countHits}`, async () => {
    const tg = await startTestGateway(yaml(countHits))
    try {
      const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
      const ask = () => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'What is a sluice?' }] }).withResponse()
      const first = await ask()
      assert.equal(first.response.headers.get('x-sluice-cache'), 'miss')
      // Fixed, derived by hand (o200k_base, gpt-tokenizer): 'user' = 1 token, 'What is a sluice?' = What| is| a| slu|ice|? = 6;
      // chat framing 3 per message + 3 priming: prompt 3 + 3 + 1 + 6 = 13; the mock writes 16 completion tokens by default.
      const total = 13 + 16
      assert.equal(first.data.usage!.total_tokens, total)
      assert.equal(await settled(tg.adminUrl, total), total)
      const second = await ask()
      assert.equal(second.response.headers.get('x-sluice-cache'), 'hit')
      const expected = countHits ? 2 * total : total
      assert.equal(await settled(tg.adminUrl, expected), expected)
    } finally {
      await tg.close()
    }
  })
}
