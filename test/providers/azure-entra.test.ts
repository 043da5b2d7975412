import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import OpenAI, { AzureOpenAI } from 'openai'
import { startMockServer, type MockServer } from '../../src/mock/llm.ts'
import { CachedToken } from '../../src/providers/credentials/cached-token.ts'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'

// Managed identity through the App Service endpoint form: @azure/identity (MSAL) reads these two variables.
// They point at the mock's own loopback identity endpoint, so no request can leave the machine (without
// them MSAL would try the IMDS address).
const IDENTITY_SECRET = 'test-identity-secret'
const REFUSED_CLIENT = '00000000-0000-0000-0000-000000000001'
let mock: MockServer
let tg: TestGateway

before(async () => {
  mock = await startMockServer({ identityHeader: IDENTITY_SECRET, tokenTtlSeconds: 3600, identityRefusedClientIds: [REFUSED_CLIENT] })
  process.env.IDENTITY_ENDPOINT = `${mock.url}/msi/token`
  process.env.IDENTITY_HEADER = IDENTITY_SECRET
  tg = await startTestGateway(`
backends:
  - id: aoai-mi
    type: azure-openai
    url: ${mock.url}
    auth: { managedIdentity: {} }
    models: { gpt-4o: prod-gpt4o-deployment }
  - id: aoai-v1
    type: azure-openai
    url: ${mock.url}
    apiVersion: v1
    auth: { apiKey: azure-test-key }
    models: { gpt-4o-v1: v1-deployment }
models:
  - { name: gpt-4o, target: aoai-mi }
  - { name: gpt-4o-v1, target: aoai-v1 }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
})

after(async () => {
  await tg?.close()
  await mock?.close()
  delete process.env.IDENTITY_ENDPOINT
  delete process.env.IDENTITY_HEADER
})

test('managed identity: one token for many requests, sent as a bearer the Azure paths accept', async () => {
  const client = new OpenAI({ baseURL: `${tg.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
  const before = { issued: mock.identity.tokensIssued, entra: mock.stats.entraRequests }
  for (let i = 0; i < 5; i++) {
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `hello ${i}` }] })
    // The mock names the deployment it was called on: the model was mapped to the deployment in the path.
    assert.equal(r.model, 'prod-gpt4o-deployment')
  }
  const stream = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'stream' }], stream: true })
  let text = ''
  for await (const c of stream) text += c.choices[0]?.delta?.content ?? ''
  assert.ok(text.length > 0)
  assert.equal(mock.identity.tokensIssued - before.issued, 1, 'one token fetched for six requests')
  assert.equal(mock.stats.entraRequests - before.entra, 6, 'every request carried the issued token')
})

test('a bearer the identity endpoint never issued is refused by the mock (the check the gateway passes above)', async () => {
  const res = await fetch(`${mock.url}/openai/deployments/d/chat/completions?api-version=2024-10-21`, {
    method: 'POST',
    headers: { authorization: 'Bearer mock-entra-mi.forged', 'content-type': 'application/json' },
    body: JSON.stringify({ messages: [{ role: 'user', content: 'x' }] }),
  })
  assert.equal(res.status, 401)
  await res.text()
})

test('the identity endpoint refuses a wrong X-IDENTITY-HEADER and issues with the right one', async () => {
  const url = `${mock.url}/msi/token?api-version=2019-08-01&resource=https://cognitiveservices.azure.com`
  const bad = await fetch(url, { headers: { 'x-identity-header': 'wrong' } })
  assert.equal(bad.status, 401)
  await bad.text()
  const good = await fetch(url, { headers: { 'x-identity-header': IDENTITY_SECRET } })
  assert.equal(good.status, 200)
  const body = (await good.json()) as { access_token: string; expires_on: string }
  assert.match(body.access_token, /^mock-entra-mi\./)
  assert.ok(Number(body.expires_on) > Date.now() / 1000 + 3000)
})

test('Azure v1 surface: backend calls /openai/v1/chat/completions with the deployment as model', async () => {
  const seen: { path: string; model: unknown; apiKey: unknown }[] = []
  const recorder = http.createServer((req, res) => {
    let raw = ''
    req.on('data', (c) => (raw += c))
    req.on('end', () => {
      seen.push({ path: req.url ?? '', model: (JSON.parse(raw) as { model: unknown }).model, apiKey: req.headers['api-key'] })
      const body = JSON.stringify({ id: 'x', object: 'chat.completion', created: 1, model: 'v1-deployment', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } })
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    })
  })
  await new Promise<void>((r) => recorder.listen(0, '127.0.0.1', r))
  const port = (recorder.address() as AddressInfo).port
  const gw = await startTestGateway(`
backends:
  - { id: v1, type: azure-openai, url: "http://127.0.0.1:${port}", apiVersion: v1, auth: { apiKey: azure-v1-key }, models: { m: v1-deployment } }
models: [ { name: m, target: v1 } ]
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  try {
    // The client itself uses Azure's v1 front door of the gateway.
    const client = new OpenAI({ baseURL: `${gw.url}/openai/v1`, apiKey: TEST_KEY, maxRetries: 0 })
    const r = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'hi' }] })
    assert.equal(r.choices[0]!.message.content, 'ok')
    assert.deepEqual(seen, [{ path: '/openai/v1/chat/completions', model: 'v1-deployment', apiKey: 'azure-v1-key' }])
    const models = await client.models.list()
    assert.deepEqual(models.data.map((m) => m.id), ['m'])
  } finally {
    await gw.close()
    await new Promise<void>((r) => recorder.close(() => r()))
  }
})

test('the classic Azure front door reaches an Entra backend too', async () => {
  const az = new AzureOpenAI({ endpoint: tg.url, apiKey: TEST_KEY, apiVersion: '2024-10-21', deployment: 'gpt-4o', maxRetries: 0 })
  const r = await az.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })
  assert.equal(r.model, 'prod-gpt4o-deployment')
})

test('CachedToken: one fetch per lifetime, refreshed five minutes before expiry, single flight', async () => {
  let now = 1_000_000
  let fetches = 0
  const life = 60 * 60_000
  const cache = new CachedToken(async () => ({ token: `t${++fetches}`, expiresAt: now + life }), () => now)
  const first = await Promise.all([cache.get(), cache.get(), cache.get()])
  assert.deepEqual(first, ['t1', 't1', 't1'])
  now += life - 5 * 60_000 - 1 // just before the refresh point
  assert.equal(await cache.get(), 't1')
  now += 2 // past it
  assert.equal(await cache.get(), 't2')
  assert.equal(fetches, 2)
  // A token living 4 minutes (shorter than twice the margin) is kept for half its life.
  const short = new CachedToken(async () => ({ token: `s${++fetches}`, expiresAt: now + 4 * 60_000 }), () => now)
  const s1 = await short.get()
  now += 2 * 60_000 - 1
  assert.equal(await short.get(), s1)
  now += 2
  assert.notEqual(await short.get(), s1)
})

test('a backend that cannot get a token fails over to the next member', async () => {
  const gw = await startTestGateway(`
backends:
  - { id: broken-mi, type: azure-openai, url: "${mock.url}", auth: { managedIdentity: { clientId: "${REFUSED_CLIENT}" } }, models: { g: dep } }
  - { id: plain, type: mock }
pools: [ { id: p, strategy: priority, members: [ { backend: broken-mi, priority: 1 }, { backend: plain, priority: 2 } ] } ]
models: [ { name: g, target: p } ]
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  // The identity endpoint refuses this user-assigned identity: broken-mi gets no token, so routing fails over.
  try {
    const res = await fetch(`${gw.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'g', messages: [{ role: 'user', content: 'x' }] }) })
    assert.equal(res.status, 200)
    assert.equal(res.headers.get('x-sluice-backend'), 'plain')
    // Two attempts: broken-mi first (priority 1), which failed for want of a token, then plain.
    assert.equal(res.headers.get('x-sluice-attempts'), '2')
    await res.text()
  } finally {
    await gw.close()
  }
})
