// Server-to-client requests through the gateway: an upstream MCP server of the test's own asks the client
// things while a tool runs (elicitation, sampling, roots, ping) or outside any request (roots on the GET
// stream); the official SDK client, connected through Sluice, answers; the tool result reflects the answer.
// With Redis, the answer is posted to another gateway process than the one serving the tool call.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js'
import {
  CreateMessageRequestSchema, CreateMessageResultSchema, ElicitRequestSchema, ElicitResultSchema, EmptyResultSchema, ErrorCode,
  ListRootsRequestSchema, ListRootsResultSchema, McpError,
} from '@modelcontextprotocol/sdk/types.js'
import { z } from 'zod'
import { serviceAvailable, startTestGateway, TEST_KEY, type TestGateway } from '../helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from '../helpers/process.ts'
import { UPSTREAM_SECRET, startUpstreamMcp, type UpstreamMcp } from './helpers.ts'

const up = await serviceAvailable('redis')
let upstream: UpstreamMcp
let gw: TestGateway
/** The McpServer built for each upstream session, in order. */
const built: McpServer[] = []

function registerAskingTools(s: McpServer): void {
  built.push(s)
  s.registerTool('confirm_delete', { description: 'Asks the user before deleting', inputSchema: { file: z.string() } }, async ({ file }, extra) => {
    const answer = await extra.sendRequest({ method: 'elicitation/create', params: { mode: 'form', message: `Delete ${file}?`, requestedSchema: { type: 'object', properties: { confirm: { type: 'boolean' } }, required: ['confirm'] } } }, ElicitResultSchema)
    if (answer.action !== 'accept') return { content: [{ type: 'text', text: `kept ${file} (${answer.action})` }] }
    return { content: [{ type: 'text', text: answer.content?.confirm === true ? `deleted ${file}` : `kept ${file}` }] }
  })
  s.registerTool('summarize', { description: 'Asks the client\'s model for a summary', inputSchema: { text: z.string() } }, async ({ text }, extra) => {
    const sample = await extra.sendRequest({ method: 'sampling/createMessage', params: { messages: [{ role: 'user', content: { type: 'text', text: `Summarize: ${text}` } }], maxTokens: 50 } }, CreateMessageResultSchema)
    const c = sample.content as { type: string; text?: string }
    return { content: [{ type: 'text', text: `summary by ${sample.model}: ${c.text}` }] }
  })
  s.registerTool('where', { description: 'Lists the client\'s roots', inputSchema: {} }, async (_a, extra) => {
    const { roots } = await extra.sendRequest({ method: 'roots/list' }, ListRootsResultSchema)
    return { content: [{ type: 'text', text: roots.map((r) => r.uri).join(',') }] }
  })
  s.registerTool('wait_for_cancel', { description: 'Runs until cancelled or released', inputSchema: { tag: z.string() } }, async ({ tag }, extra) => {
    const w = waiting.get(tag)!
    extra.signal.addEventListener('abort', () => w.end('cancelled'), { once: true })
    w.started()
    return { content: [{ type: 'text', text: `${tag}: ${await w.ended}` }] }
  })
  s.registerTool('ping_client', { description: 'Pings the client', inputSchema: {} }, async (_a, extra) => {
    await extra.sendRequest({ method: 'ping' }, EmptyResultSchema)
    return { content: [{ type: 'text', text: 'pong' }] }
  })
}

/** Upstream `wait_for_cancel` calls by tag: the test's side (started, how it ended, release) and the tool's (start, end). */
const waiting = new Map<string, { started: () => void; end: (how: string) => void; ended: Promise<string> }>()
function expectWait(tag: string): { started: Promise<void>; ended: Promise<string>; release: () => void } {
  let started!: () => void
  let end!: (how: string) => void
  const startedP = new Promise<void>((r) => { started = r })
  const ended = new Promise<string>((r) => { end = r })
  waiting.set(tag, { started, end, ended })
  return { started: startedP, ended, release: () => end('released') }
}

/** What the consumer's handlers were asked. */
const asked: string[] = []

/** The official SDK client declaring elicitation, sampling and roots, with handlers that answer them. */
async function askingClient(url: string, opts: { decline?: boolean; capabilities?: Record<string, unknown>; sessionId?: string; fetch?: typeof fetch } = {}): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers: { authorization: `Bearer ${TEST_KEY}` } }, sessionId: opts.sessionId, fetch: opts.fetch })
  const client = new Client({ name: 'asking-client', version: '1.0.0' }, { capabilities: (opts.capabilities ?? { elicitation: {}, sampling: {}, roots: { listChanged: true } }) as never })
  const caps = opts.capabilities ?? { elicitation: {}, sampling: {}, roots: {} }
  if ('elicitation' in caps) client.setRequestHandler(ElicitRequestSchema, async (req) => {
    asked.push(`elicit:${req.params.message}`)
    if (req.params.message === 'Delete forbidden.txt?') throw new McpError(ErrorCode.InvalidRequest, 'the user closed the dialog')
    return opts.decline ? { action: 'decline' } : { action: 'accept', content: { confirm: true } }
  })
  if ('sampling' in caps) client.setRequestHandler(CreateMessageRequestSchema, async (req) => {
    asked.push(`sample:${(req.params.messages[0]!.content as { text: string }).text}`)
    return { role: 'assistant', content: { type: 'text', text: 'a short summary' }, model: 'client-model-1' }
  })
  if ('roots' in caps) client.setRequestHandler(ListRootsRequestSchema, async () => {
    asked.push('roots')
    return { roots: [{ uri: 'file:///work/project', name: 'project' }, { uri: 'file:///work/docs' }] }
  })
  await client.connect(transport)
  if (opts.sessionId) transport.setProtocolVersion('2025-11-25')
  return { client, transport }
}

/** Fails instead of waiting forever. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout
  return Promise.race([p, new Promise<never>((_, reject) => { t = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms) })]).finally(() => clearTimeout(t))
}

const textOf = (r: unknown) => ((r as { content: Array<{ text: string }> }).content)[0]!.text

before(async () => {
  upstream = await startUpstreamMcp({ tools: ['echo'], extra: registerAskingTools })
  gw = await startTestGateway(`
mcp:
  servers:
    - { id: desk, upstream: { url: ${upstream.url}, auth: { apiKey: ${UPSTREAM_SECRET} }, timeout: 10s } }
    - { id: both, aggregate: [desk] }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
})
after(async () => {
  await gw?.close()
  await upstream?.close()
})

test('elicitation during tools/call: the server asks, the SDK client through Sluice answers, the tool result reflects the answer', async () => {
  const accept = await askingClient(`${gw.url}/mcp/desk`)
  const decline = await askingClient(`${gw.url}/mcp/desk`, { decline: true })
  try {
    asked.length = 0
    assert.equal(textOf(await accept.client.callTool({ name: 'confirm_delete', arguments: { file: 'report.txt' } })), 'deleted report.txt')
    assert.deepEqual(asked, ['elicit:Delete report.txt?'])
    assert.equal(textOf(await decline.client.callTool({ name: 'confirm_delete', arguments: { file: 'report.txt' } })), 'kept report.txt (decline)')
    // The client's JSON-RPC error reaches the server as an error (the tool reports it).
    const failed = await accept.client.callTool({ name: 'confirm_delete', arguments: { file: 'forbidden.txt' } })
    assert.equal(failed.isError, true)
    assert.match(textOf(failed), /the user closed the dialog/)
  } finally {
    await accept.client.close()
    await decline.client.close()
  }
})

test('sampling, roots and ping during tools/call are relayed and answered', async () => {
  const { client } = await askingClient(`${gw.url}/mcp/desk`)
  try {
    asked.length = 0
    assert.equal(textOf(await client.callTool({ name: 'summarize', arguments: { text: 'a long text' } })), 'summary by client-model-1: a short summary')
    assert.equal(textOf(await client.callTool({ name: 'where', arguments: {} })), 'file:///work/project,file:///work/docs')
    assert.equal(textOf(await client.callTool({ name: 'ping_client', arguments: {} })), 'pong')
    assert.deepEqual(asked, ['sample:Summarize: a long text', 'roots'])
  } finally {
    await client.close()
  }
})

test('the consumer\'s capabilities are declared upstream in its name: a client without elicitation is never asked', async () => {
  const before = built.length
  const plain = await askingClient(`${gw.url}/mcp/desk`, { capabilities: { sampling: {} } })
  try {
    assert.equal(built.length, before + 1)
    assert.deepEqual(built.at(-1)!.server.getClientCapabilities(), { sampling: {} })
    asked.length = 0
    // The SDK server does not check before asking; the gateway, answering for a client that cannot elicit, refuses.
    const res = await plain.client.callTool({ name: 'confirm_delete', arguments: { file: 'a.txt' } })
    assert.equal(res.isError, true)
    assert.match(textOf(res), /-32601: Method not found/)
    assert.deepEqual(asked, [])
    // Sampling, which it declared, works on the same session.
    assert.equal(textOf(await plain.client.callTool({ name: 'summarize', arguments: { text: 't' } })), 'summary by client-model-1: a short summary')
  } finally {
    await plain.client.close()
  }
})

test('through an aggregate, a member server\'s questions reach the consumer too', async () => {
  const { client } = await askingClient(`${gw.url}/mcp/both`)
  try {
    assert.equal(textOf(await client.callTool({ name: 'desk_confirm_delete', arguments: { file: 'b.txt' } })), 'deleted b.txt')
  } finally {
    await client.close()
  }
})

test('a request the server sends outside any request travels on the GET stream; the client\'s answer is posted back to the server', async () => {
  const opened = upstream.nextGetStream()
  const before = built.length
  const { client } = await askingClient(`${gw.url}/mcp/desk`)
  try {
    await opened
    assert.equal(built.length, before + 1, 'one upstream session for this gateway session')
    // (the SDK spells an empty elicitation capability as form mode)
    assert.deepEqual(built.at(-1)!.server.getClientCapabilities(), { elicitation: { form: {} }, sampling: {}, roots: { listChanged: true } })
    asked.length = 0
    const { roots } = await built.at(-1)!.server.listRoots(undefined, { timeout: 10_000 })
    assert.deepEqual(roots.map((r) => r.uri), ['file:///work/project', 'file:///work/docs'])
    assert.deepEqual(asked, ['roots'])
  } finally {
    await client.close()
  }
})

test('calls in flight at once on one session each get their own answer (the gateway\'s upstream request ids do not collide)', async () => {
  const { client } = await askingClient(`${gw.url}/mcp/desk`)
  try {
    // Both running on the server at once, answered in the opposite order.
    const first = expectWait('o1')
    const second = expectWait('o2')
    const calls = [client.callTool({ name: 'wait_for_cancel', arguments: { tag: 'o1' } }), client.callTool({ name: 'wait_for_cancel', arguments: { tag: 'o2' } })]
    await within(Promise.all([first.started, second.started]), 10_000, 'both calls reached the server')
    second.release()
    assert.equal(textOf(await calls[1]), 'o2: released')
    first.release()
    assert.equal(textOf(await calls[0]), 'o1: released')
    const texts = ['a', 'b', 'c', 'd', 'e', 'f']
    const answers = await Promise.all(texts.map((text) => client.callTool({ name: 'echo', arguments: { text } })))
    assert.deepEqual(answers.map(textOf), texts.map((t) => `echo: ${t}`))
  } finally {
    await client.close()
  }
})

test('a cancelled tool call is cancelled on the upstream server too; a concurrent one runs on', async () => {
  const { client } = await askingClient(`${gw.url}/mcp/desk`)
  try {
    const cancelled = expectWait('c1')
    const kept = expectWait('k1')
    const ac = new AbortController()
    const call = client.callTool({ name: 'wait_for_cancel', arguments: { tag: 'c1' } }, undefined, { signal: ac.signal })
    const other = client.callTool({ name: 'wait_for_cancel', arguments: { tag: 'k1' } })
    await within(Promise.all([cancelled.started, kept.started]), 10_000, 'both calls reached the server')
    ac.abort('user pressed stop')
    await assert.rejects(call)
    assert.equal(await within(cancelled.ended, 10_000, 'the upstream handler saw the cancellation'), 'cancelled')
    kept.release()
    assert.equal(textOf(await other), 'k1: released')
  } finally {
    await client.close()
  }
})

if (up) {
  test('two gateway processes on one Redis: the answer is posted to the other process than the one running the tool call', { timeout: 180_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-mcp-relay-'))
    const file = join(dir, 'gw.yaml')
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: admin-token-relay-test }
store: { type: redis, url: redis://127.0.0.1:6379, keyPrefix: "sluice-test:mcp-relay:${randomUUID()}:" }
ledger: { type: none }
logging: { level: warn }
mcp:
  servers:
    - { id: desk, upstream: { url: ${upstream.url}, auth: { apiKey: ${UPSTREAM_SECRET} }, timeout: 10s } }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
    const procs: GatewayProcess[] = []
    try {
      procs.push(...await Promise.all([spawnGateway(file), spawnGateway(file)]))
      const [a, b] = procs as [GatewayProcess, GatewayProcess]
      // A load balancer of the test's own: every answer the client posts goes to B, everything else to A.
      const routed: string[] = []
      const lb: typeof fetch = async (url, init) => {
        const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as Record<string, unknown>) : null
        const isAnswer = body !== null && ((body.method === undefined && ('result' in body || 'error' in body)) || body.method === 'notifications/cancelled')
        routed.push(isAnswer ? 'B' : 'A')
        return fetch(isAnswer ? String(url).replace(a.url, b.url) : url, init)
      }
      const { client } = await askingClient(`${a.url}/mcp/desk`, { fetch: lb })
      try {
        asked.length = 0
        assert.equal(textOf(await client.callTool({ name: 'confirm_delete', arguments: { file: 'c.txt' } })), 'deleted c.txt')
        assert.equal(textOf(await client.callTool({ name: 'summarize', arguments: { text: 'x' } })), 'summary by client-model-1: a short summary')
        assert.deepEqual(asked, ['elicit:Delete c.txt?', 'sample:Summarize: x'])
        assert.equal(routed.filter((r) => r === 'B').length, 2, 'both answers went to the other process')
        // A cancellation posted to B stops the call A is serving, upstream included.
        const w = expectWait('mp1')
        const ac = new AbortController()
        const call = client.callTool({ name: 'wait_for_cancel', arguments: { tag: 'mp1' } }, undefined, { signal: ac.signal })
        await within(w.started, 10_000, 'the call reached the server')
        ac.abort()
        await assert.rejects(call)
        assert.equal(await within(w.ended, 10_000, 'the upstream handler saw the cancellation'), 'cancelled')
        assert.equal(routed.filter((r) => r === 'B').length, 3)
      } finally {
        await client.close()
      }
    } finally {
      for (const p of procs) p.child.kill('SIGTERM')
      await Promise.all(procs.map((p) => p.exited))
    }
  })
}
