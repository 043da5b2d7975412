import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

const KEY = 'sk-passthrough-headers-a'

// A self-hosted server behind a passthrough route: a plain echo of what it received, so the test sees exactly
// which headers, path and bytes the gateway sent up.
describe('passthrough: what goes up and what comes back', () => {
  let echo: http.Server
  let echoUrl: string
  let gw: TestGateway
  const seen: { method: string; url: string; headers: http.IncomingHttpHeaders; body: Buffer }[] = []

  before(async () => {
    echo = http.createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body: Buffer.concat(chunks) })
        res.writeHead(201, { 'content-type': 'text/plain', 'x-upstream': 'yes', 'set-cookie': 'session=upstream', connection: 'keep-alive, x-hop', 'x-hop': 'drop' })
        res.end('made')
      })
    })
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
    echoUrl = `http://127.0.0.1:${(echo.address() as AddressInfo).port}`
    gw = await startTestGateway(`
backends:
  - { id: self, type: openai-compatible, url: ${echoUrl}/api, auth: { apiKey: sk-self-hosted-secret }, headers: { x-tenant: sluice } }
passthrough:
  - { prefix: /native/self, backend: self }
products: [ { id: standard } ]
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY} } ] }
`)
  })
  after(async () => {
    await gw.close()
    await new Promise<void>((r) => { echo.close(() => r()); echo.closeAllConnections() })
  })

  it('strips hop-by-hop and client credentials, injects the backend\'s, keeps the rest, and the path and query as sent', async () => {
    const body = 'raw \u00e9 bytes \u0000 not json'
    const res = await fetch(`${gw.url}/native/self/things/a%20b?x=1&y=%2B`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${KEY}`, 'api-key': 'client-azure-key', 'ocp-apim-subscription-key': 'client-apim-key', 'x-goog-api-key': 'client-google-key',
        cookie: 'client=1', 'x-sluice-debug': '1', 'accept-encoding': 'gzip, br', 'x-amz-date': '20200101T000000Z', 'x-custom': 'keep', 'content-type': 'application/octet-stream',
      },
      body,
    })
    assert.equal(res.status, 201)
    assert.equal(await res.text(), 'made')
    assert.equal(res.headers.get('x-upstream'), 'yes')
    assert.equal(res.headers.get('set-cookie'), null)
    assert.equal(res.headers.get('x-hop'), null)
    assert.equal(res.headers.get('x-sluice-backend'), 'self')
    const got = seen.at(-1)!
    assert.equal(got.method, 'PUT')
    assert.equal(got.url, '/api/things/a%20b?x=1&y=%2B')
    assert.deepEqual(got.body, Buffer.from(body))
    assert.equal(got.headers.authorization, 'Bearer sk-self-hosted-secret')
    assert.equal(got.headers['x-tenant'], 'sluice')
    assert.equal(got.headers['x-custom'], 'keep')
    assert.equal(got.headers['content-type'], 'application/octet-stream')
    for (const h of ['accept-encoding', 'api-key', 'ocp-apim-subscription-key', 'x-goog-api-key', 'cookie', 'x-sluice-debug', 'x-amz-date']) assert.equal(got.headers[h], undefined, h)
    assert.ok(!JSON.stringify(got.headers).includes(KEY), 'the Sluice key never goes up')
  })

  it('forwards a GET on the prefix itself and answers 404 under an unknown prefix', async () => {
    const res = await fetch(`${gw.url}/native/self`, { headers: { 'x-api-key': KEY } })
    assert.equal(res.status, 201)
    assert.equal(seen.at(-1)!.url, '/api')
    assert.equal((await fetch(`${gw.url}/native/other/x`, { headers: { 'x-api-key': KEY } })).status, 404)
  })
})
