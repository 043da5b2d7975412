import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { McpError, LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { API_SECRET, UPSTREAM_SECRET, mcpClient, startRestApi, startUpstreamMcp, writeSpec, type RestApi, type UpstreamMcp } from './helpers.ts'

let api: RestApi
let up: UpstreamMcp
let gw: TestGateway
const deadUrl = 'http://127.0.0.1:1/mcp' // nothing listens on port 1

before(async () => {
  api = await startRestApi()
  up = await startUpstreamMcp({ tools: ['zeta', 'echo', 'add', 'slow_progress'] })
  const spec = writeSpec()
  gw = await startTestGateway(`
backends:
  - { id: pets-api, type: openai-compatible, url: ${api.url}/v1, auth: { apiKey: ${API_SECRET} } }
mcp:
  servers:
    - { id: pets, openapi: { spec: ${spec}, backend: pets-api, operations: [getPet, createPet] } }
    - { id: docs, upstream: { url: ${up.url}, auth: { apiKey: ${UPSTREAM_SECRET} } } }
    - { id: down, upstream: { url: ${deadUrl}, auth: { apiKey: x }, timeout: 2s, connectTimeout: 1s } }
    - { id: all, aggregate: [pets, docs] }
    - { id: partial, aggregate: [down, docs, pets], memberTimeout: 3s }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
})
after(async () => {
  await gw?.close()
  await up?.close()
  await api?.close()
})

test('passthrough: tools listed in a stable (name) order and called on the upstream with the gateway\'s credential', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/docs`, TEST_KEY)
  try {
    const first = (await client.listTools()).tools.map((t) => t.name)
    assert.deepEqual(first, ['add', 'echo', 'slow_progress', 'zeta'])
    assert.deepEqual((await client.listTools()).tools.map((t) => t.name), first)
    const res = await client.callTool({ name: 'add', arguments: { a: 2, b: 40 } })
    assert.deepEqual(res.structuredContent, { sum: 42 })
    assert.equal((res.content as Array<{ text: string }>)[0]!.text, '42')
    assert.deepEqual([...up.authSeen], [`Bearer ${UPSTREAM_SECRET}`], 'the upstream only ever saw the gateway\'s credential')
    // The upstream's own answer for a tool it does not have is relayed as it is (the SDK's McpServer makes it an error result).
    const unknown = await client.callTool({ name: 'nope', arguments: {} })
    assert.equal(unknown.isError, true)
    assert.match((unknown.content as Array<{ text: string }>)[0]!.text, /nope/)
  } finally {
    await client.close()
  }
})

test('passthrough relays resources, prompts, progress and log notifications, on one upstream session per gateway session', async () => {
  const { client, transport } = await mcpClient(`${gw.url}/mcp/docs`, TEST_KEY)
  try {
    assert.ok(client.getServerCapabilities()?.resources, 'the upstream\'s capabilities are announced')
    const sessionsBefore = up.sessions.size
    const resources = await client.listResources()
    assert.deepEqual(resources.resources.map((r) => r.uri), ['docs://readme'])
    const read = await client.readResource({ uri: 'docs://readme' })
    assert.equal((read.contents[0] as { text: string }).text, 'read me')
    const prompts = await client.listPrompts()
    assert.deepEqual(prompts.prompts.map((p) => p.name), ['greet'])
    const prompt = await client.getPrompt({ name: 'greet', arguments: { who: 'Ada' } })
    assert.equal((prompt.messages[0]!.content as { text: string }).text, 'Hello Ada')
    const progress: number[] = []
    const logs: unknown[] = []
    client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => { logs.push(n.params.data) })
    const res = await client.callTool({ name: 'slow_progress', arguments: {} }, undefined, { onprogress: (p) => progress.push(p.progress) })
    assert.equal((res.content as Array<{ text: string }>)[0]!.text, 'done')
    assert.deepEqual(progress, [1, 2, 3])
    assert.deepEqual(logs, ['working'])
    assert.equal(up.sessions.size, sessionsBefore, 'no upstream session was opened after initialize')
    assert.ok(transport.sessionId)
  } finally {
    await client.close()
  }
})

test('aggregate: members\' tools prefixed, in a stable order, calls routed to the right member', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/all`, TEST_KEY)
  try {
    const names = (await client.listTools()).tools.map((t) => t.name)
    assert.deepEqual(names, ['docs_add', 'docs_echo', 'docs_slow_progress', 'docs_zeta', 'pets_createPet', 'pets_getPet'])
    for (let i = 0; i < 3; i++) assert.deepEqual((await client.listTools()).tools.map((t) => t.name), names)
    const echo = await client.callTool({ name: 'docs_echo', arguments: { text: 'hi' } })
    assert.equal((echo.content as Array<{ text: string }>)[0]!.text, 'echo: hi')
    const pet = await client.callTool({ name: 'pets_getPet', arguments: { petId: '5' } })
    assert.deepEqual(pet.structuredContent, { id: '5', name: 'pet-5', verbose: false, tags: [] })
    await assert.rejects(client.callTool({ name: 'ghost_tool', arguments: {} }), (e: unknown) => e instanceof McpError && e.code === -32602)
  } finally {
    await client.close()
  }
})

test('aggregate with a member down: its tools are left out, the others keep working', async () => {
  const { client } = await mcpClient(`${gw.url}/mcp/partial`, TEST_KEY)
  try {
    const names = (await client.listTools()).tools.map((t) => t.name)
    assert.deepEqual(names, ['docs_add', 'docs_echo', 'docs_slow_progress', 'docs_zeta', 'pets_createPet', 'pets_getPet'])
    assert.equal(((await client.callTool({ name: 'docs_add', arguments: { a: 1, b: 1 } })).structuredContent as { sum: number }).sum, 2)
    await assert.rejects(client.callTool({ name: 'down_anything', arguments: {} }), (e: unknown) => e instanceof McpError && e.code === -32010)
  } finally {
    await client.close()
  }
})

test('a passthrough server that is down answers initialize with a JSON-RPC error (bad_gateway), nothing leaked', async () => {
  const res = await fetch(`${gw.url}/mcp/down`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
  })
  assert.equal(res.status, 502)
  const body = await res.json() as { id: number; error: { code: number; message: string } }
  assert.equal(body.id, 1)
  assert.equal(body.error.code, -32010)
  assert.doesNotMatch(JSON.stringify(body), /127\.0\.0\.1:1|ECONNREFUSED|at /)
})
