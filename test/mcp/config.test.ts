import { test } from 'node:test'
import assert from 'node:assert/strict'
import { loadConfigText } from '../../src/config/load.ts'
import { builtinPolicies } from '../../src/policies/registry.ts'

const load = (yaml: string) => loadConfigText(yaml, { registry: builtinPolicies(), env: {} })

test('the contract\'s mcp section loads: openapi, upstream, aggregate servers and product allow/deny', () => {
  const res = load(`
backends: [ { id: weather-api, type: openai-compatible, url: http://127.0.0.1:9/v1 } ]
products: [ { id: standard, mcp: { allow: ["weather.*"], deny: ["docs.delete*"] } } ]
mcp:
  servers:
    - { id: weather, openapi: { spec: ./weather-openapi.yaml, backend: weather-api, operations: [getForecast] } }
    - { id: docs, upstream: { url: https://mcp.example.com/mcp, auth: { apiKey: k } } }
    - { id: all, aggregate: [weather, docs] }
`)
  assert.equal(res.ok, true, res.ok ? '' : JSON.stringify(res.problems))
  if (!res.ok) return
  assert.deepEqual(res.config.mcp.servers.map((s) => s.id), ['weather', 'docs', 'all'])
  assert.equal(res.config.mcp.sessions, 'stateful')
  assert.deepEqual(res.config.products[0]!.mcp, { allow: ['weather.*'], deny: ['docs.delete*'], limits: [] })
})

test('bad references are reported with their paths: unknown backend, unknown or nested aggregate member, duplicate id', () => {
  const res = load(`
backends: [ { id: api, type: openai-compatible, url: http://127.0.0.1:9/v1 } ]
mcp:
  servers:
    - { id: a, openapi: { spec: x.yaml, backend: nope } }
    - { id: b, upstream: { url: http://127.0.0.1:9/mcp } }
    - { id: c, aggregate: [b, ghost] }
    - { id: d, aggregate: [c] }
    - { id: b, upstream: { url: http://127.0.0.1:9/mcp } }
`)
  assert.equal(res.ok, false)
  if (res.ok) return
  const paths = res.problems.map((p) => `${p.path}: ${p.message}`)
  assert.ok(paths.some((p) => p.startsWith('mcp.servers[0].openapi.backend') && p.includes('unknown backend "nope"')), paths.join('\n'))
  assert.ok(paths.some((p) => p.startsWith('mcp.servers[2].aggregate[1]') && p.includes('unknown MCP server "ghost"')), paths.join('\n'))
  assert.ok(paths.some((p) => p.startsWith('mcp.servers[3].aggregate[0]') && p.includes('is an aggregate')), paths.join('\n'))
  assert.ok(paths.some((p) => p.startsWith('mcp.servers[4].id') && p.includes('used twice')), paths.join('\n'))
})

test('a server may not be both kinds, and a tool limit needs requests or a quota', () => {
  const both = load(`
mcp: { servers: [ { id: x, upstream: { url: http://127.0.0.1:9/mcp }, aggregate: [y] } ] }
`)
  assert.equal(both.ok, false)
  const noLimit = load(`
mcp: { servers: [ { id: x, upstream: { url: http://127.0.0.1:9/mcp }, limits: [ { tools: "x.*" } ] } ] }
`)
  assert.equal(noLimit.ok, false)
  const ok = load(`
mcp: { servers: [ { id: x, upstream: { url: http://127.0.0.1:9/mcp }, limits: [ { tools: "x.*", requests: 5, per: 1m } ] } ] }
`)
  assert.equal(ok.ok, true)
})
