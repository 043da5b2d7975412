// Added latency per MCP tool call: the same tools/call (an SDK McpServer's `add` tool on loopback) made with
// the official SDK client directly against the server, and through a Sluice gateway's passthrough endpoint
// (`/mcp/{id}`: auth, session store, governance, ledger queue, metrics). Sessions are open before timing;
// calls are sequential (one at a time), so the figures are per-call latency, not throughput.
//
//   node --import tsx bench/mcp-latency.ts [--calls 500] [--warmup 100] [--store memory|redis]
import { parseArgs } from 'node:util'
import { randomUUID } from 'node:crypto'
import pino from 'pino'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { createGateway } from '../src/server/gateway.ts'
import { MemoryKeyStore } from '../src/stores/memory/keys.ts'
import { mcpClient, startUpstreamMcp, startRestApi, writeSpec, UPSTREAM_SECRET, API_SECRET } from '../test/mcp/helpers.ts'
import { Client } from '@modelcontextprotocol/sdk/client/index.js'
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js'

const { values: args } = parseArgs({ options: { calls: { type: 'string', default: '500' }, warmup: { type: 'string', default: '100' }, store: { type: 'string', default: 'memory' } } })
const CALLS = Number(args.calls)
const WARMUP = Number(args.warmup)
const KEY = 'sk-bench-mcp-consumer-key'

const up = await startUpstreamMcp()
const api = await startRestApi()
const spec = writeSpec()
const registry = builtinPolicies()
const yaml = `
listen: { host: 127.0.0.1, port: 0 }
admin: { enabled: false }
logging: { level: silent }
store: ${args.store === 'redis' ? `{ type: redis, url: redis://127.0.0.1:6379, keyPrefix: "sluice-bench:${randomUUID()}:" }` : '{ type: memory }'}
ledger: { type: sqlite, path: /tmp/sluice-bench-mcp-${randomUUID()}.db }
backends:
  - { id: pets-api, type: openai-compatible, url: ${api.url}/v1, auth: { apiKey: ${API_SECRET} } }
mcp:
  servers:
    - { id: docs, upstream: { url: ${up.url}, auth: { apiKey: ${UPSTREAM_SECRET} } } }
    - { id: pets, openapi: { spec: ${spec}, backend: pets-api, operations: [getPet] } }
products: [ { id: p, mcp: { deny: ["docs.huge"], limits: [ { tools: "docs.*", requests: 1000000, per: 1m } ] } } ]
consumers: [ { id: bench, product: p, keys: [ { value: ${KEY} } ] } ]
`
const res = loadConfigText(yaml, { registry, env: {} })
if (!res.ok) throw new Error(JSON.stringify(res.problems))
const gw = await createGateway({ config: res.config, registry, keyStore: new MemoryKeyStore(), logger: pino({ level: 'silent' }), processGuards: false })
const { url } = await gw.listen()

async function direct(): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(up.url), { requestInit: { headers: { authorization: `Bearer ${UPSTREAM_SECRET}` } } })
  const client = new Client({ name: 'bench', version: '1' })
  await client.connect(transport)
  return client
}

async function time(label: string, call: () => Promise<unknown>): Promise<{ label: string; p50: number; p90: number; p99: number; mean: number }> {
  for (let i = 0; i < WARMUP; i++) await call()
  const ms: number[] = []
  for (let i = 0; i < CALLS; i++) {
    const t0 = performance.now()
    await call()
    ms.push(performance.now() - t0)
  }
  ms.sort((a, b) => a - b)
  const q = (p: number) => ms[Math.min(ms.length - 1, Math.floor(p * ms.length))]!
  return { label, p50: q(0.5), p90: q(0.9), p99: q(0.99), mean: ms.reduce((a, b) => a + b, 0) / ms.length }
}

const d = await direct()
const g = (await mcpClient(`${url}/mcp/docs`, KEY)).client
const r = (await mcpClient(`${url}/mcp/pets`, KEY)).client
const rows = []
// Interleaved rounds so drift on a shared machine hits both sides alike.
for (let round = 0; round < 2; round++) {
  rows.push(await time(`direct tools/call (round ${round + 1})`, () => d.callTool({ name: 'add', arguments: { a: 1, b: 2 } })))
  rows.push(await time(`via Sluice passthrough (round ${round + 1})`, () => g.callTool({ name: 'add', arguments: { a: 1, b: 2 } })))
}
rows.push(await time('via Sluice REST->MCP (getPet)', () => r.callTool({ name: 'getPet', arguments: { petId: '1' } })))
console.log(`calls=${CALLS} warmup=${WARMUP} store=${args.store}`)
console.log('| path | p50 ms | p90 ms | p99 ms | mean ms |\n|---|---|---|---|---|')
for (const row of rows) console.log(`| ${row.label} | ${row.p50.toFixed(2)} | ${row.p90.toFixed(2)} | ${row.p99.toFixed(2)} | ${row.mean.toFixed(2)} |`)
await Promise.allSettled([d.close(), g.close(), r.close()])
await gw.close()
await up.close()
await api.close()
