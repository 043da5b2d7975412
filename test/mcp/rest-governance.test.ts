import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from '../helpers/gateway.ts'
import { parseProm, sumOf } from '../helpers/prom.ts'
import { API_SECRET, mcpClient, rawPost, startRestApi, writeSpec, type RestApi } from './helpers.ts'

const ADMIN_TOKEN = 'admin-token-mcp-tests'
let api: RestApi
let gw: TestGateway

before(async () => {
  api = await startRestApi()
  const spec = writeSpec()
  const dir = mkdtempSync(join(tmpdir(), 'sluice-mcp-ledger-'))
  gw = await startTestGateway(`
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN} }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')} }
backends:
  - { id: pets-api, type: openai-compatible, url: ${api.url}/v1, auth: { apiKey: ${API_SECRET} }, timeout: 2s }
  - { id: dead-api, type: openai-compatible, url: http://127.0.0.1:1/v1, connectTimeout: 1s, circuitBreaker: { failures: 1, window: 1m, tripDuration: 1m } }
mcp:
  servers:
    - { id: pets-dead, openapi: { spec: ${spec}, backend: dead-api, operations: [getPet] } }
    - { id: pets, openapi: { spec: ${spec}, backend: pets-api } }
    - id: pets-limited
      openapi: { spec: ${spec}, backend: pets-api, operations: [getPet] }
      limits: [ { tools: "pets-limited.getPet", requests: 3, per: 1m } ]
    - { id: pets-quota, openapi: { spec: ${spec}, backend: pets-api, operations: [getPet] } }
products:
  - id: standard
    mcp:
      deny: ["pets.deletePet", "pets.bigAnswer"]
      limits: [ { tools: "pets-quota.*", quota: 2, quotaPeriod: daily } ]
      log: { redact: ['PETSECRET-\\d+'] }
  - { id: readers, mcp: { allow: ["pets.get*", "pets-limited.*"] } }
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${TEST_KEY} } ] }
  - { id: team-r, product: readers, keys: [ { value: ${TEST_KEY_B} } ] }
`)
})
after(async () => {
  await gw?.close()
  await api?.close()
})

test('REST operations appear as tools with input schemas built from path/query parameters and the JSON body ($refs resolved)', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  try {
    const { tools } = await client.listTools()
    // deletePet and bigAnswer are denied to this product; the rest in name order.
    assert.deepEqual(tools.map((t) => t.name), ['createPet', 'getPet'])
    const getPet = tools.find((t) => t.name === 'getPet')!
    assert.equal(getPet.description, 'Get a pet\n\nLooks a pet up by id.')
    assert.deepEqual(getPet.inputSchema, {
      type: 'object',
      properties: {
        petId: { type: 'string', description: 'The pet id' },
        verbose: { type: 'boolean' },
        tag: { type: 'array', items: { type: 'string' } },
      },
      required: ['petId'],
    })
    assert.deepEqual(getPet.outputSchema, { type: 'object', properties: { id: { type: 'string' }, name: { type: 'string' } }, required: ['id', 'name'] })
    const createPet = tools.find((t) => t.name === 'createPet')!
    assert.deepEqual(createPet.inputSchema, {
      type: 'object',
      properties: {
        body: {
          type: 'object',
          properties: {
            name: { type: 'string' },
            species: { type: 'string', enum: ['cat', 'dog'] },
            owner: { type: 'object', properties: { name: { type: 'string' }, email: { type: ['string', 'null'] } }, required: ['name'] },
          },
          required: ['name', 'species'],
        },
      },
      required: ['body'],
    })
  } finally {
    await client.close()
  }
})

test('a tool call reaches the API through the backend (its key, not the consumer\'s) and returns its answer as text and structuredContent', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  try {
    const before = api.seen.length
    const res = await client.callTool({ name: 'getPet', arguments: { petId: 'a b', verbose: true, tag: ['x', 'y'] } })
    assert.deepEqual(res.structuredContent, { id: 'a b', name: 'pet-a b', verbose: true, tags: ['x', 'y'] })
    assert.deepEqual(JSON.parse((res.content as Array<{ text: string }>)[0]!.text), { id: 'a b', name: 'pet-a b', verbose: true, tags: ['x', 'y'] })
    const hit = api.seen[before]!
    assert.equal(hit.method, 'GET')
    assert.equal(hit.url, '/v1/pets/a%20b?verbose=true&tag=x&tag=y')
    assert.equal(hit.apiKey, API_SECRET)
    assert.equal(hit.authorization, undefined)

    const created = await client.callTool({ name: 'createPet', arguments: { body: { name: 'Rex', species: 'dog', owner: { name: 'Ann' } } } })
    assert.equal(created.isError, undefined)
    assert.deepEqual(JSON.parse((created.content as Array<{ text: string }>)[0]!.text), { id: 'p-1', name: 'Rex', species: 'dog', owner: { name: 'Ann' } })
    assert.deepEqual(JSON.parse(api.seen.at(-1)!.body), { name: 'Rex', species: 'dog', owner: { name: 'Ann' } })

    // An HTTP error from the API is a tool result the model can read, not a protocol error.
    const missing = await client.callTool({ name: 'getPet', arguments: { petId: 'missing' } })
    assert.equal(missing.isError, true)
    assert.equal((missing.content as Array<{ text: string }>)[0]!.text, 'HTTP 404: {"message":"no such pet"}')
  } finally {
    await client.close()
  }
})

test('a denied tool is absent from tools/list and refused on tools/call, while an allowed one works', async () => {
  const a = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  const r = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY_B)
  try {
    const before = api.seen.length
    await assert.rejects(a.client.callTool({ name: 'deletePet', arguments: { petId: '1' } }), (e: unknown) => e instanceof McpError && e.code === -32602 && /Unknown tool: deletePet/.test(e.message))
    assert.equal(api.seen.length, before, 'the refused call never reached the API')
    const ok = await a.client.callTool({ name: 'getPet', arguments: { petId: '7' } })
    assert.deepEqual(ok.structuredContent, { id: '7', name: 'pet-7', verbose: false, tags: [] })

    // The readers product only allows pets.get* (and pets-limited.*): createPet is hidden and refused for it, getPet works.
    assert.deepEqual((await r.client.listTools()).tools.map((t) => t.name), ['getPet'])
    await assert.rejects(r.client.callTool({ name: 'createPet', arguments: { body: { name: 'x', species: 'cat' } } }), (e: unknown) => e instanceof McpError && e.code === -32602)
    assert.deepEqual((await r.client.callTool({ name: 'getPet', arguments: { petId: '8' } })).structuredContent, { id: '8', name: 'pet-8', verbose: false, tags: [] })
  } finally {
    await a.client.close()
    await r.client.close()
  }
})

test('a per-tool rate limit admits exactly its number of calls, then answers JSON-RPC -32029 rate_limit_exceeded; the trail is in the ledger and metrics', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets-limited`, TEST_KEY)
  try {
    for (let i = 0; i < 3; i++) {
      const res = await client.callTool({ name: 'getPet', arguments: { petId: `l${i}` } })
      assert.equal((res.structuredContent as { id: string }).id, `l${i}`)
    }
    let caught: McpError | null = null
    try {
      await client.callTool({ name: 'getPet', arguments: { petId: 'l3' } })
    } catch (e) {
      caught = e as McpError
    }
    assert.ok(caught instanceof McpError, 'the 4th call is refused')
    assert.equal(caught.code, -32029)
    const data = caught.data as { code: string; limit: number; retryAfterMs: number }
    assert.equal(data.code, 'rate_limit_exceeded')
    assert.equal(data.limit, 3)
    assert.ok(data.retryAfterMs > 0 && data.retryAfterMs <= 60_000, `retryAfterMs ${data.retryAfterMs}`)
    // Another consumer has a counter of its own.
    const other = await mcpClient(`${gw.url}/mcp/pets-limited`, TEST_KEY_B)
    try {
      assert.equal(((await other.client.callTool({ name: 'getPet', arguments: { petId: 'o1' } })).structuredContent as { id: string }).id, 'o1')
    } finally {
      await other.client.close()
    }
  } finally {
    await client.close()
  }
  assert.equal(await gw.gw.ledger!.flush(5000), true)
  const rows = (await gw.gw.ledger!.store.records()).filter((r) => r.model === 'mcp:pets-limited/getPet')
  assert.deepEqual(rows.map((r) => [r.consumer, r.status, r.errorCode, r.backend]), [
    ['team-a', 200, null, 'pets-api'], ['team-a', 200, null, 'pets-api'], ['team-a', 200, null, 'pets-api'],
    ['team-a', 429, 'rate_limit_exceeded', 'pets-api'], ['team-r', 200, null, 'pets-api'],
  ])
  // Bytes in: the arguments' JSON, {"petId":"l0"} = 14 bytes; out: the relayed result (none for the refused call).
  assert.deepEqual(rows.map((r) => r.bytesIn), [14, 14, 14, 14, 14])
  assert.ok(rows.filter((r) => r.status === 200).every((r) => (r.bytesOut ?? 0) > 50), 'answered calls count their result bytes')
  assert.equal(rows.find((r) => r.status === 429)!.bytesOut, 0)
  const prom = parseProm(await (await fetch(`${gw.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).text())
  assert.equal(sumOf(prom, 'sluice_mcp_tool_calls_total', { server: 'pets-limited', tool: 'getPet', status: 'ok' }), 4)
  assert.equal(sumOf(prom, 'sluice_mcp_tool_calls_total', { server: 'pets-limited', tool: 'getPet', status: 'rate_limited' }), 1)
})

test('a per-tool quota admits its number of calls per period, then answers -32030 quota_exceeded', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets-quota`, TEST_KEY)
  try {
    for (const id of ['q1', 'q2']) assert.equal(((await client.callTool({ name: 'getPet', arguments: { petId: id } })).structuredContent as { id: string }).id, id)
    await assert.rejects(client.callTool({ name: 'getPet', arguments: { petId: 'q3' } }), (e: unknown) => {
      const data = (e as McpError).data as { code: string; limit: number; retryAfterMs: number }
      // retryAfterMs runs to the end of the UTC day: more than 0, at most 24 h.
      return e instanceof McpError && e.code === -32030 && data.code === 'quota_exceeded' && data.limit === 2 && data.retryAfterMs > 0 && data.retryAfterMs <= 86_400_000
    })
  } finally {
    await client.close()
  }
})

test('tool arguments and results are logged for a product with mcp.log, redacted', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  try {
    await client.callTool({ name: 'getPet', arguments: { petId: 'PETSECRET-4242', verbose: false } })
  } finally {
    await client.close()
  }
  assert.equal(await gw.gw.ledger!.flush(5000), true)
  const logs = (await gw.gw.ledger!.store.messages()).filter((m) => m.model === 'mcp:pets/getPet' && m.prompt?.includes('REDACTED'))
  assert.equal(logs.length, 1)
  assert.ok(!logs[0]!.prompt!.includes('PETSECRET-4242') && !logs[0]!.completion!.includes('PETSECRET-4242'))
  assert.equal(logs[0]!.consumer, 'team-a')
  // The unredacted parts are kept.
  assert.match(logs[0]!.prompt!, /"verbose":false/)
})

test('an unreachable API is a JSON-RPC bad_gateway; once its backend\'s breaker trips, calls are refused without trying', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/pets-dead`, TEST_KEY)
  try {
    const codes: Array<[number, string]> = []
    for (let i = 0; i < 2; i++) {
      try {
        await client.callTool({ name: 'getPet', arguments: { petId: 'x' } })
      } catch (e) {
        codes.push([(e as McpError).code, ((e as McpError).data as { code: string }).code])
      }
    }
    assert.deepEqual(codes, [[-32010, 'bad_gateway'], [-32010, 'no_healthy_backend']])
  } finally {
    await client.close()
  }
})

test('without a key: 401 with WWW-Authenticate pointing at the RFC 9728 metadata, which names the resource', async () => {
  const res = await rawPost(`${gw.url}/mcp/pets`, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }))
  assert.equal(res.status, 401)
  const expected = `${gw.url}/.well-known/oauth-protected-resource/mcp/pets`
  assert.equal(res.headers.get('www-authenticate'), `Bearer resource_metadata="${expected}"`)
  assert.equal(JSON.parse(res.text).error.code, -32001)
  const meta = await (await fetch(expected)).json() as Record<string, unknown>
  assert.equal(meta.resource, `${gw.url}/mcp/pets`)
  assert.deepEqual(meta.bearer_methods_supported, ['header'])
  assert.ok(Array.isArray(meta.authorization_servers))
  // The same request with a key is served (the contrast).
  const init = await rawPost(`${gw.url}/mcp/pets`, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }), { authorization: `Bearer ${TEST_KEY}` })
  assert.equal(init.status, 200)
  assert.match(init.headers.get('mcp-session-id') ?? '', /^[0-9a-f-]{36}$/)
})

test('protocol revisions are negotiated as the SDK does: a supported one is kept, an unknown one answered with the latest', async () => {
  const initialize = async (version: string) => {
    const res = await rawPost(`${gw.url}/mcp/pets`, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: version, capabilities: {}, clientInfo: { name: 'raw', version: '1' } } }), { authorization: `Bearer ${TEST_KEY}`, accept: 'application/json, text/event-stream' })
    const line = res.text.split('\n').find((l) => l.startsWith('data: '))!
    return (JSON.parse(line.slice(6)) as { result: { protocolVersion: string } }).result.protocolVersion
  }
  assert.equal(await initialize('2025-03-26'), '2025-03-26')
  assert.equal(await initialize('2024-11-05'), '2024-11-05')
  assert.equal(await initialize('1999-01-01'), '2025-11-25')
})

test('a session id is required after initialize and unknown ids are 404; another consumer cannot use one', async () => {
  const { client, transport } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  const sid = transport.sessionId!
  await client.close()
  const list = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' })
  const auth = { authorization: `Bearer ${TEST_KEY}`, 'mcp-protocol-version': '2025-11-25' }
  assert.equal((await rawPost(`${gw.url}/mcp/pets`, list, auth)).status, 400)
  assert.equal((await rawPost(`${gw.url}/mcp/pets`, list, { ...auth, 'mcp-session-id': 'no-such-session' })).status, 404)
  assert.equal((await rawPost(`${gw.url}/mcp/pets`, list, { authorization: `Bearer ${TEST_KEY_B}`, 'mcp-session-id': sid })).status, 404)
  assert.equal((await rawPost(`${gw.url}/mcp/pets`, list, { ...auth, 'mcp-session-id': sid })).status, 200)
  // DELETE ends it.
  const del = await fetch(`${gw.url}/mcp/pets`, { method: 'DELETE', headers: { ...auth, 'mcp-session-id': sid } })
  assert.equal(del.status, 200)
  assert.equal((await rawPost(`${gw.url}/mcp/pets`, list, { ...auth, 'mcp-session-id': sid })).status, 404)
})

test('stateless mode: no session id is issued and calls still work', async () => {
  const spec = writeSpec()
  const sgw = await startTestGateway(`
backends:
  - { id: pets-api, type: openai-compatible, url: ${api.url}/v1, auth: { apiKey: ${API_SECRET} } }
mcp:
  sessions: stateless
  servers:
    - { id: pets, openapi: { spec: ${spec}, backend: pets-api, operations: [getPet] } }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  try {
    const { client, transport } = await mcpClient(`${sgw.url}/mcp/pets`, TEST_KEY)
    assert.equal(transport.sessionId, undefined)
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), ['getPet'])
    assert.equal(((await client.callTool({ name: 'getPet', arguments: { petId: 's1' } })).structuredContent as { id: string }).id, 's1')
    await client.close()
  } finally {
    await sgw.close()
  }
})
