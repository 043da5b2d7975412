import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { McpError } from '@modelcontextprotocol/sdk/types.js'
import { startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { API_SECRET, UPSTREAM_SECRET, mcpClient, rawPost, startRestApi, startUpstreamMcp, writeSpec, type RestApi, type UpstreamMcp } from './helpers.ts'

let api: RestApi
let up: UpstreamMcp
let gw: TestGateway
let sid = ''
const auth = () => ({ authorization: `Bearer ${TEST_KEY}`, 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' })

/** Nothing in an answer may name a secret, a stack frame or a file of the gateway. */
function assertClean(text: string): void {
  for (const bad of [API_SECRET, UPSTREAM_SECRET, TEST_KEY, 'node_modules', '/src/', '    at ']) assert.ok(!text.includes(bad), `answer leaks ${JSON.stringify(bad)}: ${text.slice(0, 300)}`)
}

before(async () => {
  api = await startRestApi()
  up = await startUpstreamMcp()
  const spec = writeSpec()
  gw = await startTestGateway(`
listen: { host: 127.0.0.1, port: 0, bodyLimit: 1MiB }
backends:
  - { id: pets-api, type: openai-compatible, url: ${api.url}/v1, auth: { apiKey: ${API_SECRET} } }
mcp:
  servers:
    - { id: pets, openapi: { spec: ${spec}, backend: pets-api }, maxResultBytes: 100KB }
    - { id: docs, upstream: { url: ${up.url}, auth: { apiKey: ${UPSTREAM_SECRET} }, timeout: 1500ms }, maxResultBytes: 100KB }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
  const { client, transport } = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  sid = transport.sessionId!
  await client.close()
})
after(async () => {
  await gw?.close()
  await up?.close()
  await api?.close()
})

/** The endpoint still serves: a real call after the bad input answers properly. */
async function stillServes(): Promise<void> {
  const res = await rawPost(`${gw.url}/mcp/pets`, JSON.stringify({ jsonrpc: '2.0', id: 77, method: 'tools/call', params: { name: 'getPet', arguments: { petId: 'alive' } } }), auth())
  assert.equal(res.status, 200)
  assert.match(res.text, /"id\\?":\\?"alive/)
}

test('malformed JSON is a JSON-RPC parse error (-32700); the gateway keeps serving', async () => {
  const res = await rawPost(`${gw.url}/mcp/pets`, '{"jsonrpc":"2.0","id":1,"method":', auth())
  assert.equal(res.status, 400)
  const body = JSON.parse(res.text) as { jsonrpc: string; id: null; error: { code: number } }
  assert.deepEqual([body.jsonrpc, body.id, body.error.code], ['2.0', null, -32700])
  assertClean(res.text)
  for (const text of ['42', '"x"', 'null', '[1,2]', '[]']) {
    const r = await rawPost(`${gw.url}/mcp/pets`, text, auth())
    assert.equal(r.status, 400, text)
    assert.equal((JSON.parse(r.text) as { error: { code: number } }).error.code, -32600, text)
  }
  await stillServes()
})

test('a message that is not JSON-RPC and an unknown method get JSON-RPC errors', async () => {
  const notRpc = await rawPost(`${gw.url}/mcp/pets`, JSON.stringify({ hello: 'world' }), auth())
  assert.equal(notRpc.status, 400)
  assert.ok([-32600, -32700].includes((JSON.parse(notRpc.text) as { error: { code: number } }).error.code))
  const unknown = await rawPost(`${gw.url}/mcp/pets`, JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/frobnicate', params: {} }), auth())
  assert.equal(unknown.status, 200)
  const line = unknown.text.split('\n').find((l) => l.startsWith('data: '))!
  const msg = JSON.parse(line.slice(6)) as { id: number; error: { code: number } }
  assert.deepEqual([msg.id, msg.error.code], [5, -32601])
  assertClean(unknown.text)
  await stillServes()
})

test('a batch of 10,000 requests is refused whole with -32600, quickly; a body over the limit is 413', async () => {
  const batch = JSON.stringify(Array.from({ length: 10_000 }, (_, i) => ({ jsonrpc: '2.0', id: i, method: 'tools/list' })))
  const t0 = performance.now()
  const res = await rawPost(`${gw.url}/mcp/pets`, batch, auth())
  assert.ok(performance.now() - t0 < 5000)
  assert.equal(res.status, 400)
  const body = JSON.parse(res.text) as { error: { code: number; message: string } }
  assert.equal(body.error.code, -32600)
  assert.match(body.error.message, /at most 100/)
  const big = await rawPost(`${gw.url}/mcp/pets`, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { pad: 'z'.repeat(2 * 1024 * 1024) } }), auth())
  assert.equal(big.status, 413)
  assert.equal((JSON.parse(big.text) as { error: { code: number } }).error.code, -32600)
  await stillServes()
})

test('an oversized tool result (REST and upstream) is a JSON-RPC -32012 result_too_large, not relayed', async () => {
  const pets = await mcpClient(`${gw.url}/mcp/pets`, TEST_KEY)
  const docs = await mcpClient(`${gw.url}/mcp/docs`, TEST_KEY)
  try {
    for (const [c, name] of [[pets.client, 'bigAnswer'], [docs.client, 'huge']] as const) {
      let err: McpError | null = null
      try {
        await c.callTool({ name, arguments: {} })
      } catch (e) {
        err = e as McpError
      }
      assert.ok(err instanceof McpError, name)
      assert.equal(err.code, -32012, `${name}: ${err.message}`)
      assert.equal((err.data as { code: string }).code, 'result_too_large')
      assertClean(err.message)
    }
    // Small results on the same endpoints still pass.
    assert.equal(((await docs.client.callTool({ name: 'echo', arguments: { text: 'ok' } })).content as Array<{ type: string }>)[0]!.type, 'text')
  } finally {
    await pets.client.close()
    await docs.client.close()
  }
  await stillServes()
})

test('an upstream that hangs mid-stream: -32011 gateway_timeout after the upstream timeout, the gateway alive', async () => {
  const docs = await mcpClient(`${gw.url}/mcp/docs`, TEST_KEY)
  try {
    const t0 = performance.now()
    let err: McpError | null = null
    try {
      await docs.client.callTool({ name: 'hang', arguments: {} })
    } catch (e) {
      err = e as McpError
    }
    const waited = performance.now() - t0
    assert.ok(err instanceof McpError)
    assert.equal(err.code, -32011, err.message)
    assert.ok(waited >= 1400 && waited < 15_000, `waited ${waited} ms for a 1.5 s upstream timeout`)
    assertClean(err.message)
    up.release()
    assert.equal(((await docs.client.callTool({ name: 'add', arguments: { a: 1, b: 2 } })).structuredContent as { sum: number }).sum, 3)
  } finally {
    await docs.client.close()
  }
  await stillServes()
})

test('inspector-cli lists and calls tools through Sluice', async () => {
  const { execFile } = await import('node:child_process')
  const run = (args: string[]) => new Promise<string>((resolve, reject) => {
    // Run from its build folder: the CLI finds its own package.json relative to the working directory.
    execFile(process.execPath, ['index.js', `${gw.url}/mcp/pets`, '--transport', 'http', '--header', `Authorization: Bearer ${TEST_KEY}`, ...args], { timeout: 60_000, cwd: 'node_modules/@modelcontextprotocol/inspector-cli/build' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
  const listed = JSON.parse(await run(['--method', 'tools/list'])) as { tools: Array<{ name: string }> }
  assert.deepEqual(listed.tools.map((t) => t.name), ['bigAnswer', 'createPet', 'deletePet', 'getPet'])
  const called = JSON.parse(await run(['--method', 'tools/call', '--tool-name', 'getPet', '--tool-arg', 'petId=ins'])) as { structuredContent: unknown }
  assert.deepEqual(called.structuredContent, { id: 'ins', name: 'pet-ins', verbose: false, tags: [] })
})
