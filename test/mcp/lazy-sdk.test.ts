import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { idleGatewayYaml, spawnGateway, type GatewayProcess } from '../helpers/process.ts'

// The MCP SDK (with its zod schemas, ~15–20 MiB of a running gateway) is loaded only by a gateway that has
// MCP servers. Proven from outside: a module-resolution hook in the gateway process records every module
// it resolves, and the list is read after start-up (and after an MCP request to the gateway without any).
const dir = mkdtempSync(join(tmpdir(), 'sluice-lazy-mcp-'))
const hooks = join(dir, 'hooks.mjs')
writeFileSync(hooks, `import { appendFileSync } from 'node:fs'
export async function resolve(specifier, context, next) {
  const r = await next(specifier, context)
  appendFileSync(process.env.SLUICE_TEST_RESOLVED, r.url + '\\n')
  return r
}
`)
const register = join(dir, 'register.mjs')
writeFileSync(register, `import { register } from 'node:module'\nregister(${JSON.stringify(pathToFileURL(hooks).href)})\n`)

const KEY = 'sk-lazy-mcp-0123456789'
const base = idleGatewayYaml(KEY)

async function run(name: string, config: string, body: (gw: GatewayProcess, resolved: () => string[]) => Promise<void>): Promise<void> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, config)
  const log = join(dir, `${name}.resolved`)
  const gw = await spawnGateway(file, 0, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --import ${pathToFileURL(register).href}`, SLUICE_TEST_RESOLVED: log })
  try {
    await body(gw, () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : []))
  } finally {
    gw.child.kill('SIGKILL')
    await gw.exited
  }
}

const sdk = (urls: string[]) => urls.filter((u) => u.includes('/@modelcontextprotocol/sdk/'))

test('a gateway without MCP servers never loads the MCP SDK, and answers an MCP route 404 without it', async () => {
  await run('none', base, async (gw, resolved) => {
    // The hook saw the gateway's own modules: the probe works.
    assert.ok(resolved().some((u) => u.includes('/fastify/')), 'the resolution hook recorded nothing')
    assert.deepEqual(sdk(resolved()), [])
    const res = await fetch(`${gw.url}/mcp/docs`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }) })
    assert.equal(res.status, 404)
    const err = (await res.json()) as { error: { code: number } }
    assert.equal(err.error.code, -32601)
    assert.deepEqual(sdk(resolved()), [])
  })
})

test('a gateway with an MCP server loads the SDK at start', async () => {
  await run('some', `${base}mcp:\n  servers:\n    - { id: docs, upstream: { url: http://127.0.0.1:1/mcp } }\n`, async (_gw, resolved) => {
    // Loaded in the background right after start-up: wait for it, 30 s at most.
    const deadline = Date.now() + 30_000
    while (sdk(resolved()).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    assert.ok(sdk(resolved()).some((u) => u.endsWith('/server/streamableHttp.js')))
  })
})
