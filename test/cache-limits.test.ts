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

async function settled(adminUrl: string, expected: number): Promise<number> {
  let used = -1
  for (let i = 0; i < 100; i++) {
    used = await usedTokens(adminUrl)
    if (used === expected) break
    await new Promise((r) => setTimeout(r, 20))
  }
  return used
}

for (const countHits of [true, false]) {
  test(`a cache hit is ${countHits ? '' : 'not '}charged to the token limit with countHits: ${countHits}`, async () => {
    const tg = await startTestGateway(yaml(countHits))
    try {
      const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
      const ask = () => client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'What is a sluice?' }] }).withResponse()
      const first = await ask()
      assert.equal(first.response.headers.get('x-sluice-cache'), 'miss')
      const total = first.data.usage!.total_tokens
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
