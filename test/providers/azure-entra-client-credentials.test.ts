import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import https from 'node:https'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { AddressInfo } from 'node:net'
import OpenAI from 'openai'
import { createMockHandler, type MockHandler } from '../../src/mock/llm.ts'
import { freePort, spawnGateway, type GatewayProcess } from '../helpers/process.ts'
import { TEST_KEY } from '../helpers/gateway.ts'

// Entra client credentials (a service principal) through @azure/identity, against the mock's loopback
// Entra endpoints. MSAL insists on an https authority, so the mock is served over TLS with a certificate
// made here, which the gateway process trusts through NODE_EXTRA_CA_CERTS (read at process start: hence a
// real child process rather than an in-process gateway).
const CLIENT = { clientId: '11111111-2222-3333-4444-555555555555', clientSecret: 'test-sp-secret' }
let dir: string
let mock: MockHandler
let server: https.Server
let gw: GatewayProcess
let mockUrl: string

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sluice-entra-sp-'))
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')], { stdio: 'ignore' })
  mock = createMockHandler({ entraClient: CLIENT, tokenTtlSeconds: 3600 })
  server = https.createServer({ key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }, mock)
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  mockUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
  const port = await freePort()
  writeFileSync(join(dir, 'sluice.yaml'), `
listen: { host: 127.0.0.1, port: ${port} }
admin: { enabled: false }
ledger: { type: none }
logging: { level: warn }
backends:
  - id: aoai-sp
    type: azure-openai
    url: ${mockUrl}
    auth: { entra: { tenantId: contoso-tenant, clientId: "${CLIENT.clientId}", clientSecret: "${CLIENT.clientSecret}", authorityHost: "${mockUrl}" } }
    models: { gpt-4o: sp-deployment }
models: [ { name: gpt-4o, target: aoai-sp } ]
consumers: [ { id: team-a, keys: [ { value: ${TEST_KEY} } ] } ]
`)
  gw = await spawnGateway(join(dir, 'sluice.yaml'), port, { NODE_EXTRA_CA_CERTS: join(dir, 'cert.pem') })
})

after(async () => {
  gw?.child.kill('SIGTERM')
  await gw?.exited
  await new Promise<void>((r) => { server?.close(() => r()); server?.closeAllConnections() })
})

test('client credentials: one token from the tenant endpoint for many requests, accepted by the Azure paths', async () => {
  const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: TEST_KEY, maxRetries: 0 })
  for (let i = 0; i < 4; i++) {
    const r = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `q${i}` }] })
    assert.equal(r.model, 'sp-deployment')
  }
  assert.equal(mock.identity.tokensIssued, 1)
  assert.equal(mock.stats.entraRequests, 4)
  assert.ok(!gw.output().includes(CLIENT.clientSecret), 'the secret never reaches the log')
})

test('the tenant endpoint refuses a wrong secret (the check the gateway passed above)', async () => {
  // Node's fetch does not trust the test certificate: https.request with it as the CA.
  const status = await new Promise<number>((resolve, reject) => {
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: CLIENT.clientId, client_secret: 'wrong', scope: 'x' }).toString()
    const req = https.request(`${mockUrl}/contoso-tenant/oauth2/v2.0/token`, { method: 'POST', ca: readFileSync(join(dir, 'cert.pem')), headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (r) => { r.resume(); resolve(r.statusCode ?? 0) })
    req.on('error', reject)
    req.end(body)
  })
  assert.equal(status, 401)
})
