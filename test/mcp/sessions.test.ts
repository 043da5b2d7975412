// MCP sessions: the session-store contract (memory and the real Redis), and two real gateway processes on
// one Redis serving one Mcp-Session-Id session alternately, its upstream MCP session included.
import { test, describe, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { serviceAvailable, TEST_KEY } from '../helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from '../helpers/process.ts'
import { closeRedis, createRedisClient, waitReady } from '../../src/stores/redis/connection.ts'
import { MemorySessionStore, RedisSessionStore, type McpSession, type McpSessionStore } from '../../src/mcp/session-store.ts'
import { API_SECRET, UPSTREAM_SECRET, mcpClient, startRestApi, startUpstreamMcp, writeSpec } from './helpers.ts'

const up = await serviceAvailable('redis')
const RUN = `sluice-test:mcp:${randomUUID()}:`

const session = (id: string, consumer = 'team-a'): McpSession => ({ id, server: 'docs', consumer, protocolVersion: '2025-06-18', createdAt: 1_000, upstream: { docs: { sessionId: 'up-1', protocolVersion: '2025-06-18' } } })

function contract(name: string, make: () => Promise<{ store: McpSessionStore; advance: (ms: number) => Promise<void> }>) {
  describe(`McpSessionStore contract: ${name}`, () => {
    test('put then get returns the same record; unknown ids are null', async () => {
      const { store } = await make()
      await store.put(session('s1'), 60_000)
      assert.deepEqual(await store.get('s1', 60_000), session('s1'))
      assert.equal(await store.get('s2', 60_000), null)
    })
    test('put replaces a record (upstream session bound later)', async () => {
      const { store } = await make()
      await store.put(session('s1'), 60_000)
      const next = { ...session('s1'), upstream: { docs: { sessionId: 'up-2', protocolVersion: '2025-06-18' } } }
      await store.put(next, 60_000)
      assert.deepEqual(await store.get('s1', 60_000), next)
    })
    test('delete removes it (true once, then false)', async () => {
      const { store } = await make()
      await store.put(session('s1'), 60_000)
      assert.equal(await store.delete('s1'), true)
      assert.equal(await store.get('s1', 60_000), null)
      assert.equal(await store.delete('s1'), false)
    })
    test('a session expires after its ttl unless it is used (sliding expiry)', async () => {
      const { store, advance } = await make()
      await store.put(session('kept'), 300)
      await store.put(session('idle'), 300)
      await advance(200)
      assert.ok(await store.get('kept', 300), 'used within its ttl: extended')
      await advance(200)
      assert.ok(await store.get('kept', 300), 'still alive 400 ms after creation thanks to the use at 200 ms')
      assert.equal(await store.get('idle', 300), null, 'unused for 400 ms > ttl 300 ms: gone')
    })
  })
}

contract('memory', async () => {
  let now = 0
  return { store: new MemorySessionStore(() => now), advance: async (ms) => { now += ms } }
})

if (up) {
  const redis = createRedisClient({ url: 'redis://127.0.0.1:6379', commandTimeout: 2_000, name: 'sluice-test-mcp' }, pino({ level: 'silent' }))
  assert.ok(await waitReady(redis, 5_000), 'redis ready')
  let n = 0
  after(async () => {
    const keys = await redis.keys(`${RUN}*`)
    if (keys.length) await redis.del(...keys)
    await closeRedis(redis)
  })
  // Real time here: Redis keeps its own clock (PX expiry), so the waits are the expiry itself, not synchronisation.
  contract('redis', async () => ({ store: new RedisSessionStore(redis, `${RUN}${n++}:`), advance: (ms) => new Promise((r) => setTimeout(r, ms)) }))

  test('two gateway processes on one Redis serve one MCP session alternately (its upstream session too)', { timeout: 180_000 }, async () => {
    const upstream = await startUpstreamMcp()
    const api = await startRestApi()
    const spec = writeSpec()
    const dir = mkdtempSync(join(tmpdir(), 'sluice-mcp-mp-'))
    const file = join(dir, 'gw.yaml')
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: admin-token-mp-test }
store: { type: redis, url: redis://127.0.0.1:6379, keyPrefix: "${RUN}mp:" }
ledger: { type: none }
logging: { level: warn }
backends:
  - { id: pets-api, type: openai-compatible, url: ${api.url}/v1, auth: { apiKey: ${API_SECRET} } }
mcp:
  servers:
    - { id: docs, upstream: { url: ${upstream.url}, auth: { apiKey: ${UPSTREAM_SECRET} } } }
    - { id: pets, openapi: { spec: ${spec}, backend: pets-api, operations: [getPet] } }
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
`)
    const procs: GatewayProcess[] = []
    try {
      procs.push(...await Promise.all([spawnGateway(file), spawnGateway(file)]))
      const [a, b] = procs as [GatewayProcess, GatewayProcess]
      assert.notEqual(a.url, b.url)
      const onA = await mcpClient(`${a.url}/mcp/docs`, TEST_KEY)
      const sid = onA.transport.sessionId!
      assert.ok(sid)
      assert.equal(upstream.sessions.size, 1)
      // A second client on process B continues the session A created (no initialize: the SDK reuses the id).
      const onB = await mcpClient(`${b.url}/mcp/docs`, TEST_KEY, { sessionId: sid })
      onB.transport.setProtocolVersion(onA.transport.protocolVersion!)
      const clients = [onA.client, onB.client]
      for (let i = 0; i < 6; i++) {
        const res = await clients[i % 2]!.callTool({ name: 'echo', arguments: { text: `m${i}` } })
        assert.equal((res.content as Array<{ text: string }>)[0]!.text, `echo: m${i}`)
      }
      assert.deepEqual((await onB.client.listTools()).tools.map((t) => t.name).slice(0, 2), ['add', 'echo'])
      assert.equal(upstream.sessions.size, 1, 'both processes used the one upstream session the first created')

      // The same on a REST-derived endpoint; and a session ended on B is gone on A.
      const petsA = await mcpClient(`${a.url}/mcp/pets`, TEST_KEY)
      const petsB = await mcpClient(`${b.url}/mcp/pets`, TEST_KEY, { sessionId: petsA.transport.sessionId })
      petsB.transport.setProtocolVersion(petsA.transport.protocolVersion!)
      assert.equal(((await petsB.client.callTool({ name: 'getPet', arguments: { petId: 'b1' } })).structuredContent as { id: string }).id, 'b1')
      assert.equal(((await petsA.client.callTool({ name: 'getPet', arguments: { petId: 'a1' } })).structuredContent as { id: string }).id, 'a1')
      await petsB.transport.terminateSession()
      const after = await fetch(`${a.url}/mcp/pets`, {
        method: 'POST',
        headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': petsA.transport.sessionId!, 'mcp-protocol-version': '2025-11-25' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/list' }),
      })
      assert.equal(after.status, 404)
      await Promise.allSettled([onA.client.close(), onB.client.close(), petsA.client.close(), petsB.client.close()])
    } finally {
      for (const p of procs) p.child.kill('SIGTERM')
      await Promise.all(procs.map((p) => p.exited))
      await upstream.close()
      await api.close()
    }
  })
}
