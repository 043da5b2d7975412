import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnGateway, type GatewayProcess } from './helpers/process.ts'

// The packages only some configurations need (jose, the CEL evaluator, AWS event streams, ws, ajv, busboy)
// are loaded on first use through src/core/lazy-package.ts, so an idle gateway that needs none of them does
// not hold their code (issue 16's memory target). Proven from outside: a preloaded script in the gateway
// process records every require() made by that module, and the list is read after start-up and a request.
const dir = mkdtempSync(join(tmpdir(), 'sluice-lazy-packages-'))
const preload = join(dir, 'record.cjs')
writeFileSync(preload, `const Module = require('node:module')
const { appendFileSync } = require('node:fs')
const load = Module._load
Module._load = function (request, parent, isMain) {
  if (parent && /[\\\\/]core[\\\\/]lazy-package\\.(ts|js)$/.test(parent.filename ?? '')) appendFileSync(process.env.SLUICE_TEST_LAZY, request + '\\n')
  return load.apply(this, arguments)
}
`)

const KEY = 'sk-lazy-packages-0123456789'
const base = `listen: { host: 127.0.0.1, port: 0 }
admin: { enabled: false }
logging: { level: warn }
ledger: { type: none }
store: { type: memory }
backends:
  - { id: m, type: mock }
models:
  - { name: gpt-4o-mini, target: m }
consumers:
  - { id: c, keys: [ { value: ${KEY} } ] }
`

async function run(name: string, config: string, body: (gw: GatewayProcess, loaded: () => string[]) => Promise<void>): Promise<void> {
  const file = join(dir, `${name}.yaml`)
  writeFileSync(file, config)
  const log = join(dir, `${name}.loaded`)
  const gw = await spawnGateway(file, 0, { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${preload}`, SLUICE_TEST_LAZY: log })
  try {
    await body(gw, () => (existsSync(log) ? [...new Set(readFileSync(log, 'utf8').split('\n').filter(Boolean))].sort() : []))
  } finally {
    gw.child.kill('SIGKILL')
    await gw.exited
  }
}

const chat = (gw: GatewayProcess, auth: string) => fetch(`${gw.url}/v1/chat/completions`, {
  method: 'POST',
  headers: { authorization: `Bearer ${auth}`, 'content-type': 'application/json' },
  body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
})

test('a gateway whose config needs none of the optional packages loads none of them, and serves', async () => {
  await run('none', base, async (gw, loaded) => {
    const res = await chat(gw, KEY)
    assert.equal(res.status, 200)
    await res.arrayBuffer()
    assert.deepEqual(loaded(), [])
  })
})

test('a config with a CEL expression loads the evaluator at start; a JWT is decoded with jose on first use', async () => {
  const config = `${base}policies:
  - rate-limit: { counterKey: '"team:" + consumer.id', requests: 100, per: 60s }
auth:
  jwt:
    - issuer: http://127.0.0.1:1/issuer
      audiences: [api://sluice]
      jwksUri: http://127.0.0.1:1/keys
`
  await run('some', config, async (gw, loaded) => {
    // The recorder is the same in both tests: here it sees the evaluator (the config check parsed the expression).
    assert.deepEqual(loaded(), ['@marcbachmann/cel-js'])
    const ok = await chat(gw, KEY)
    assert.equal(ok.status, 200)
    await ok.arrayBuffer()
    // A JWT-shaped bearer (header {"alg":"RS256"}, payload {"iss":"http://127.0.0.1:1/issuer"}, no valid signature):
    // decoding it needs jose; the issuer's keys cannot be fetched (nothing listens there), so it is the
    // documented 503 for unavailable signing keys, not a crash.
    const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')
    const jwt = `${b64({ alg: 'RS256', typ: 'JWT' })}.${b64({ iss: 'http://127.0.0.1:1/issuer', aud: 'api://sluice', sub: 'x' })}.c2ln`
    const refused = await chat(gw, jwt)
    assert.equal(refused.status, 503)
    assert.match(((await refused.json()) as { error: { message: string } }).error.message, /signing keys are unavailable/)
    assert.deepEqual(loaded(), ['@marcbachmann/cel-js', 'jose'])
  })
})
