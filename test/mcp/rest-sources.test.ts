// REST -> MCP details: the OpenAPI document fetched from a URL, an operation without operationId named by
// method and path, a header parameter passed (the credential headers never), an API that does not answer
// in time, and a consumer holding a JWT (its issuer named in the RFC 9728 metadata).
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { newKey, TestIssuer, type IssuerKey } from '../helpers/oidc.ts'
import { mcpClient } from './helpers.ts'

const AUD = 'api://sluice-mcp'
const DOC = {
  openapi: '3.1.0',
  info: { title: 'Orders', version: '1' },
  paths: {
    '/orders/{orderId}/notes': {
      get: {
        summary: 'Notes of an order',
        parameters: [
          { name: 'orderId', in: 'path', required: true, schema: { type: 'integer' } },
          { name: 'X-Tenant', in: 'header', required: true, schema: { type: 'string' } },
          { name: 'Authorization', in: 'header', schema: { type: 'string' } },
        ],
        responses: { 200: { description: 'ok' } },
      },
    },
    '/slow': { get: { operationId: 'slow', responses: { 200: { description: 'ok' } } } },
  },
}
const seen: Array<{ url: string; tenant: unknown; authorization: unknown }> = []
let api: Server
let gw: TestGateway
let issuer: TestIssuer
let key: IssuerKey

before(async () => {
  api = createServer((req, res) => {
    if (req.url === '/openapi.json') {
      // Chunked (no content-length), as a generated document often is.
      res.writeHead(200, { 'content-type': 'application/json' })
      return void res.end(JSON.stringify(DOC))
    }
    if (req.url === '/slow') return // never answers
    seen.push({ url: req.url!, tenant: req.headers['x-tenant'], authorization: req.headers.authorization })
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ notes: ['n1'], tenant: req.headers['x-tenant'] }))
  })
  await new Promise<void>((r) => api.listen(0, '127.0.0.1', r))
  const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}`
  issuer = await TestIssuer.start()
  key = await newKey('k1')
  issuer.published = [key]
  gw = await startTestGateway(`
backends:
  - { id: orders-api, type: openai-compatible, url: ${url}, auth: { apiKey: orders-api-secret }, timeout: 500ms }
mcp:
  servers:
    - { id: orders, openapi: { spec: "${url}/openapi.json", backend: orders-api } }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
auth:
  jwt:
    - { issuer: ${issuer.url}, audiences: [${AUD}], consumer: claims.sub }
`)
})
after(async () => {
  await gw?.close()
  api?.closeAllConnections()
  await new Promise((r) => api?.close(r))
  await issuer?.close()
})

test('a document fetched from a URL: an operation without operationId is named by method and path; a header parameter is passed, a credential header is not offered', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/orders`, TEST_KEY)
  try {
    const { tools } = await client.listTools()
    assert.deepEqual(tools.map((t) => t.name), ['get_orders_orderId_notes', 'slow'])
    const notes = tools[0]!
    assert.deepEqual(Object.keys((notes.inputSchema as { properties: object }).properties).sort(), ['X-Tenant', 'orderId'])
    const res = await client.callTool({ name: 'get_orders_orderId_notes', arguments: { orderId: 42, 'X-Tenant': 'acme' } })
    assert.deepEqual(res.structuredContent, { notes: ['n1'], tenant: 'acme' })
    assert.deepEqual(seen.at(-1), { url: '/orders/42/notes', tenant: 'acme', authorization: 'Bearer orders-api-secret' })
  } finally {
    await client.close()
  }
})

test('an API that does not answer within the backend timeout is a JSON-RPC -32011 gateway_timeout', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/orders`, TEST_KEY)
  try {
    const e = await client.callTool({ name: 'slow', arguments: {} }).then(() => null, (err: unknown) => err)
    assert.ok(e instanceof McpError)
    assert.equal(e.code, -32011)
    assert.deepEqual(e.data, { code: 'gateway_timeout' })
  } finally {
    await client.close()
  }
})

test('a consumer with a JWT from the configured issuer uses the endpoint; the metadata names that issuer; a bad token is 401', async () => {
  const meta = await (await fetch(`${gw.url}/.well-known/oauth-protected-resource/mcp/orders`)).json() as { resource: string; authorization_servers: string[] }
  assert.equal(meta.resource, `${gw.url}/mcp/orders`)
  assert.deepEqual(meta.authorization_servers, [issuer.url])
  const token = await issuer.token(key, { sub: 'jwt-user', aud: AUD })
  const transport = new StreamableHTTPClientTransport(new URL(`${gw.url}/mcp/orders`), { requestInit: { headers: { authorization: `Bearer ${token}` } } })
  const client = new Client({ name: 'jwt-client', version: '1' })
  await client.connect(transport)
  try {
    assert.equal((await client.listTools()).tools.length, 2)
  } finally {
    await client.close()
  }
  const forged = await issuer.token(key, { sub: 'jwt-user', aud: 'api://someone-else' })
  const res = await fetch(`${gw.url}/mcp/orders`, { method: 'POST', headers: { authorization: `Bearer ${forged}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }) })
  assert.equal(res.status, 401)
  assert.match(res.headers.get('www-authenticate') ?? '', /resource_metadata=/)
})
