import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import OpenAI, { BadRequestError } from 'openai'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

/**
 * The azure engine with `managedIdentity: {}` (the same on a backend's `auth` once the providers
 * accept it there): the token comes from the
 * managed identity endpoint (App Service style, IDENTITY_ENDPOINT + IDENTITY_HEADER, served here on
 * loopback) and is sent as a bearer token to Content Safety.
 */
describe('content-safety azure engine with a managed identity', () => {
  let g: TestGateway
  let identity: http.Server
  let safety: http.Server
  const tokenRequests: Array<{ url: string; header: string | undefined }> = []
  const seenAuth: string[] = []
  const saved = { endpoint: process.env.IDENTITY_ENDPOINT, header: process.env.IDENTITY_HEADER }

  before(async () => {
    identity = http.createServer((req, res) => {
      tokenRequests.push({ url: req.url ?? '', header: req.headers['x-identity-header'] as string | undefined })
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
        access_token: 'mi-access-token-123', expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource: 'https://cognitiveservices.azure.com', token_type: 'Bearer',
      }))
    })
    safety = http.createServer((req, res) => {
      let body = ''
      req.on('data', (c) => { body += c })
      req.on('end', () => {
        seenAuth.push(String(req.headers.authorization))
        const text = (JSON.parse(body) as { text: string }).text
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          blocklistsMatch: [],
          categoriesAnalysis: [{ category: 'Hate', severity: text.includes('hateful') ? 6 : 0 }, { category: 'Violence', severity: 0 }],
        }))
      })
    })
    await Promise.all([identity, safety].map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', r))))
    process.env.IDENTITY_ENDPOINT = `http://127.0.0.1:${(identity.address() as AddressInfo).port}/msi/token`
    process.env.IDENTITY_HEADER = 'identity-header-secret'
    g = await startTestGateway(`
backends:
  - { id: mock-a, type: mock }
models: [ { name: gpt-4o-mini, target: mock-a } ]
products:
  - id: p
    policies:
      - content-safety: { engines: [ { type: azure, endpoint: "http://127.0.0.1:${(safety.address() as AddressInfo).port}", managedIdentity: {}, categories: { Hate: 4, Violence: 4 } } ], timeout: 30s }
consumers: [ { id: c, product: p, keys: [ { value: sk-managed-identity-1 } ] } ]
`)
  })
  after(async () => {
    await g.close()
    identity.close(); safety.close()
    if (saved.endpoint === undefined) delete process.env.IDENTITY_ENDPOINT; else process.env.IDENTITY_ENDPOINT = saved.endpoint
    if (saved.header === undefined) delete process.env.IDENTITY_HEADER; else process.env.IDENTITY_HEADER = saved.header
  })

  it('fetches a token once and sends it as a bearer; a hateful prompt is blocked, a kind one passes', async () => {
    const client = new OpenAI({ apiKey: 'sk-managed-identity-1', baseURL: `${g.url}/v1`, maxRetries: 0 })
    const ok = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a kind remark' }], max_tokens: 4 })
    assert.equal(ok.choices.length, 1)
    const err = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'something hateful' }], max_tokens: 4 }).then(() => null, (e: unknown) => e)
    assert.ok(err instanceof BadRequestError, String(err))
    assert.equal(err.code, 'content_filter')
    assert.deepEqual(seenAuth, ['Bearer mi-access-token-123', 'Bearer mi-access-token-123'])
    assert.equal(tokenRequests.length, 1)
    assert.equal(tokenRequests[0]!.header, 'identity-header-secret')
    assert.match(tokenRequests[0]!.url, /resource=https%3A%2F%2Fcognitiveservices\.azure\.com/)
  })
})
