// REST-derived MCP servers whose API wants the gateway's own OAuth token (client credentials, APIM's
// credential manager) or a managed identity's: a token endpoint and an API of the test's own on loopback,
// the official SDK client through Sluice, and the gateway's clock injected so a token expires without sleeping.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { ManualClock } from '../../src/core/clock.ts'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { mcpClient, writeSpec } from './helpers.ts'

const CLIENT_ID = 'sluice-gw'
const CLIENT_SECRET = 'oauth-client-secret-4711'
const LIFETIME_S = 60

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let s = ''
    req.on('data', (c) => { s += c })
    req.on('end', () => resolve(s))
  })
}
async function listen(s: Server): Promise<string> {
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r))
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`
}

/** What the token endpoint received, one entry per token request. */
const tokenRequests: Array<{ path: string; authorization: string | undefined; form: URLSearchParams }> = []
/** Tokens the API accepts (the token endpoint adds each one it issues; a test may revoke one). */
const valid = new Set<string>()
const apiSeen: string[] = []
let issued = 0
let tokenServer: Server
let api: Server
let identity: Server
let gw: TestGateway
const clock = new ManualClock()
const saved = { endpoint: process.env.IDENTITY_ENDPOINT, header: process.env.IDENTITY_HEADER }
let identityRequests = 0

before(async () => {
  tokenServer = createServer(async (req, res) => {
    const form = new URLSearchParams(await body(req))
    tokenRequests.push({ path: req.url!, authorization: req.headers.authorization, form })
    if (req.url === '/broken/token') {
      // What a real server answers to a wrong secret: its description echoes things no consumer should see.
      return void res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'invalid_client', error_description: `client ${CLIENT_ID} secret ${CLIENT_SECRET} rejected` }))
    }
    const basic = `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`
    const viaBody = form.get('client_id') === CLIENT_ID && form.get('client_secret') === CLIENT_SECRET
    if (form.get('grant_type') !== 'client_credentials' || (req.headers.authorization !== basic && !viaBody)) {
      return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"invalid_client"}')
    }
    const token = `tok-${++issued}`
    valid.add(token)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: token, token_type: 'Bearer', expires_in: LIFETIME_S }))
  })
  api = createServer((req, res) => {
    const auth = String(req.headers.authorization)
    apiSeen.push(auth)
    if (!valid.has(auth.replace(/^Bearer /, ''))) return void res.writeHead(401, { 'content-type': 'application/json' }).end('{"message":"bad token"}')
    const m = /^\/v1\/pets\/([^/?]+)/.exec(req.url!)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: m?.[1], name: `pet-${m?.[1]}`, token: auth.slice(7) }))
  })
  identity = createServer((req, res) => {
    identityRequests++
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ access_token: 'mi-token-1', expires_on: String(Math.floor(Date.now() / 1000) + 3600), resource: 'api://pets', token_type: 'Bearer' }))
  })
  const [tokenUrl, apiUrl, identityUrl] = await Promise.all([listen(tokenServer), listen(api), listen(identity)])
  valid.add('mi-token-1')
  process.env.IDENTITY_ENDPOINT = `${identityUrl}/msi/token`
  process.env.IDENTITY_HEADER = 'identity-header-secret'
  const spec = writeSpec()
  gw = await startTestGateway(`
backends:
  - id: pets-oauth
    type: openai-compatible
    url: ${apiUrl}/v1
    auth: { oauth: { tokenUrl: ${tokenUrl}/oauth/token, clientId: ${CLIENT_ID}, clientSecret: ${CLIENT_SECRET}, scope: [pets.read, pets.write], audience: "api://pets", refreshMargin: 10s } }
  - id: pets-oauth-body
    type: openai-compatible
    url: ${apiUrl}/v1
    auth: { oauth: { tokenUrl: ${tokenUrl}/body/token, clientId: ${CLIENT_ID}, clientSecret: ${CLIENT_SECRET}, clientAuth: body } }
  - id: pets-broken
    type: openai-compatible
    url: ${apiUrl}/v1
    auth: { oauth: { tokenUrl: ${tokenUrl}/broken/token, clientId: ${CLIENT_ID}, clientSecret: ${CLIENT_SECRET} } }
  - id: pets-unreachable-idp
    type: openai-compatible
    url: ${apiUrl}/v1
    auth: { oauth: { tokenUrl: "http://127.0.0.1:1/token", clientId: ${CLIENT_ID}, clientSecret: ${CLIENT_SECRET} } }
  - id: pets-mi
    type: openai-compatible
    url: ${apiUrl}/v1
    auth: { managedIdentity: { resource: "api://pets" } }
mcp:
  servers:
    - { id: pets, openapi: { spec: ${spec}, backend: pets-oauth, operations: [getPet] } }
    - { id: pets-body, openapi: { spec: ${spec}, backend: pets-oauth-body, operations: [getPet] } }
    - { id: pets-broken, openapi: { spec: ${spec}, backend: pets-broken, operations: [getPet] } }
    - { id: pets-noidp, openapi: { spec: ${spec}, backend: pets-unreachable-idp, operations: [getPet] } }
    - { id: pets-mi, openapi: { spec: ${spec}, backend: pets-mi, operations: [getPet] } }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`, { clock })
})
after(async () => {
  await gw?.close()
  for (const s of [tokenServer, api, identity]) s?.closeAllConnections()
  await Promise.all([tokenServer, api, identity].map((s) => new Promise((r) => s?.close(r))))
  if (saved.endpoint === undefined) delete process.env.IDENTITY_ENDPOINT; else process.env.IDENTITY_ENDPOINT = saved.endpoint
  if (saved.header === undefined) delete process.env.IDENTITY_HEADER; else process.env.IDENTITY_HEADER = saved.header
})

const tokenOf = (r: unknown) => ((r as { structuredContent: { token: string } }).structuredContent).token
const oauthRequests = () => tokenRequests.filter((t) => t.path === '/oauth/token')

test('client credentials: the tool call reaches the API with the token; one token fetch serves many calls, concurrent ones included', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  try {
    const first = await client.callTool({ name: 'getPet', arguments: { petId: 'p1' } })
    assert.deepEqual(first.structuredContent, { id: 'p1', name: 'pet-p1', token: 'tok-1' })
    const many = await Promise.all(['p2', 'p3', 'p4', 'p5', 'p6'].map((petId) => client.callTool({ name: 'getPet', arguments: { petId } })))
    assert.deepEqual(many.map(tokenOf), ['tok-1', 'tok-1', 'tok-1', 'tok-1', 'tok-1'])
    assert.equal(oauthRequests().length, 1, 'one token request for six calls')
    const t = oauthRequests()[0]!
    // RFC 6749 4.4.2 with HTTP Basic client authentication (2.3.1), the configured scope and audience.
    assert.equal(t.authorization, `Basic ${Buffer.from(`${CLIENT_ID}:${CLIENT_SECRET}`).toString('base64')}`)
    assert.equal(t.form.get('grant_type'), 'client_credentials')
    assert.equal(t.form.get('scope'), 'pets.read pets.write')
    assert.equal(t.form.get('audience'), 'api://pets')
    assert.equal(t.form.get('client_secret'), null, 'the secret is not also in the form')
  } finally {
    await client.close()
  }
})

test('the token is refreshed before it expires (the injected clock crosses its lifetime), and not before', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  try {
    const before = oauthRequests().length
    const current = tokenOf(await client.callTool({ name: 'getPet', arguments: { petId: 'r0' } }))
    // refreshMargin 10s: still the same token 49 s into a 60 s lifetime...
    clock.advance((LIFETIME_S - 11) * 1000)
    assert.equal(tokenOf(await client.callTool({ name: 'getPet', arguments: { petId: 'r1' } })), current)
    assert.equal(oauthRequests().length, before)
    // ...and a new one past the refresh point (51 s), once for the calls that follow.
    clock.advance(2000)
    const fresh = tokenOf(await client.callTool({ name: 'getPet', arguments: { petId: 'r2' } }))
    assert.notEqual(fresh, current)
    assert.equal(tokenOf(await client.callTool({ name: 'getPet', arguments: { petId: 'r3' } })), fresh)
    assert.equal(oauthRequests().length, before + 1)
    // Long past its expiry: fetched again.
    clock.advance(10 * LIFETIME_S * 1000)
    assert.notEqual(tokenOf(await client.callTool({ name: 'getPet', arguments: { petId: 'r4' } })), fresh)
    assert.equal(oauthRequests().length, before + 2)
  } finally {
    await client.close()
  }
})

test('a 401 from the API (token revoked early) drops the token, fetches one new token and retries once', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  try {
    const current = tokenOf(await client.callTool({ name: 'getPet', arguments: { petId: 'v0' } }))
    const before = oauthRequests().length
    const seenBefore = apiSeen.length
    valid.delete(current)
    const res = await client.callTool({ name: 'getPet', arguments: { petId: 'v1' } })
    assert.equal(res.isError, undefined)
    const fresh = tokenOf(res)
    assert.notEqual(fresh, current)
    assert.deepEqual(apiSeen.slice(seenBefore), [`Bearer ${current}`, `Bearer ${fresh}`], 'refused once, then the retry with the new token')
    assert.equal(oauthRequests().length, before + 1)
    // The new token is kept: the next call makes no token request.
    assert.equal(tokenOf(await client.callTool({ name: 'getPet', arguments: { petId: 'v2' } })), fresh)
    assert.equal(oauthRequests().length, before + 1)
  } finally {
    await client.close()
  }
})

test('client_secret_post: the client id and secret go in the form when clientAuth is body', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets-body`, TEST_KEY)
  try {
    const res = await client.callTool({ name: 'getPet', arguments: { petId: 'b1' } })
    assert.match(tokenOf(res), /^tok-\d+$/)
    const t = tokenRequests.filter((x) => x.path === '/body/token')
    assert.equal(t.length, 1)
    assert.equal(t[0]!.authorization, undefined)
    assert.equal(t[0]!.form.get('client_id'), CLIENT_ID)
  } finally {
    await client.close()
  }
})

test('a token endpoint that refuses, or cannot be reached, is a clear JSON-RPC error naming no secret; the API is not called', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets-broken`, TEST_KEY)
  const noIdp = await mcpClient(`${gw.url}/mcp/pets-noidp`, TEST_KEY)
  try {
    const seenBefore = apiSeen.length
    const refused = await client.callTool({ name: 'getPet', arguments: { petId: 'x' } }).then(() => null, (e: unknown) => e)
    assert.ok(refused instanceof McpError)
    assert.equal(refused.code, -32010)
    assert.deepEqual(refused.data, { code: 'backend_auth_failed' })
    // (the SDK's client puts "MCP error <code>: " before the message it received)
    assert.equal(refused.message, 'MCP error -32010: The gateway could not authenticate to the API behind "pets-broken": Backend "pets-broken" could not get an OAuth token (the token endpoint answered 401).')
    const unreachable = await noIdp.client.callTool({ name: 'getPet', arguments: { petId: 'x' } }).then(() => null, (e: unknown) => e)
    assert.ok(unreachable instanceof McpError)
    assert.equal(unreachable.code, -32010)
    assert.match(unreachable.message, /could not get an OAuth token \(the token endpoint could not be reached\)/)
    for (const e of [refused, unreachable]) {
      const text = JSON.stringify({ m: e.message, d: e.data })
      assert.ok(!text.includes(CLIENT_SECRET) && !text.includes('invalid_client') && !text.includes('127.0.0.1'), text)
    }
    assert.equal(apiSeen.length, seenBefore, 'no call reached the API without a token')
    // The contrast: the same tool on a working credential answers.
    const ok = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
    assert.equal((await ok.client.callTool({ name: 'getPet', arguments: { petId: 'ok' } })).isError, undefined)
    await ok.client.close()
  } finally {
    await client.close()
    await noIdp.client.close()
  }
})

test('managed identity: the API gets the identity endpoint\'s token for the configured resource, fetched once', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets-mi`, TEST_KEY)
  try {
    for (const petId of ['m1', 'm2', 'm3']) assert.equal(tokenOf(await client.callTool({ name: 'getPet', arguments: { petId } })), 'mi-token-1')
    assert.equal(identityRequests, 1)
  } finally {
    await client.close()
  }
})
