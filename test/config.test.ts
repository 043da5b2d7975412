import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { loadConfigText } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'

const registry = builtinPolicies()
const load = (yaml: string, env: Record<string, string> = {}) => loadConfigText(yaml, { registry, env })

const GOOD = `
listen: { host: 127.0.0.1, port: \${PORT} }
admin:  { host: 127.0.0.1, port: 8081, token: \${ADMIN_TOKEN} }
backends:
  - id: east
    type: azure-openai
    url: https://example-east.openai.azure.com
    auth: { apiKey: \${AOAI_KEY} }
    models: { gpt-4o: gpt-4o-ptu }
    timeout: 60s
    circuitBreaker: { failures: 3, window: 10s, statusCodes: ["429", "500-599"], tripDuration: 30s, acceptRetryAfter: true }
  - id: local
    type: mock
    latency: 200ms
pools:
  - id: gpt-4o-pool
    strategy: priority
    members:
      - { backend: east, priority: 1 }
      - { backend: local, priority: 2, weight: 3 }
models:
  - { name: gpt-4o, target: gpt-4o-pool }
products:
  - id: standard
    models: [gpt-4o]
consumers:
  - id: team-a
    product: standard
    keys: [ { value: \${TEAM_A_KEY} } ]
`
const ENV = { PORT: '9090', ADMIN_TOKEN: 'adm: in#secret', AOAI_KEY: 'k-123', TEAM_A_KEY: 'team-a-secret-key' }

test('a valid file loads into a frozen snapshot with env substituted and durations parsed', () => {
  const res = load(GOOD, ENV)
  assert.ok(res.ok, JSON.stringify(!res.ok && res.problems))
  const c = res.config
  assert.equal(c.listen.port, 9090, 'a whole ${VAR} takes the type its text spells')
  assert.equal(c.admin.token, 'adm: in#secret', 'a secret with YAML syntax cannot change the structure')
  assert.equal(c.backends[0]!.timeout, 60_000)
  assert.equal(c.backends[0]!.circuitBreaker!.tripDuration, 30_000)
  assert.equal(c.backends[1]!.latency, 200)
  assert.ok(Object.isFrozen(c) && Object.isFrozen(c.backends[0]))
})

test('a missing environment variable is an error naming it and its line', () => {
  const res = load(GOOD, { ...ENV, AOAI_KEY: '' })
  assert.equal(res.ok, false)
  const p = !res.ok ? res.problems : []
  assert.equal(p.length, 1)
  assert.match(p[0]!.message, /AOAI_KEY is not set/)
  assert.equal(p[0]!.line, 8)
})

test('${NAME:-default} falls back; references in comments are ignored', () => {
  const res = load('# token: ${NOT_SET}\nlisten: { port: ${P:-7070} }  # ${ALSO_NOT_SET}\n')
  assert.ok(res.ok)
  assert.equal(res.config.listen.port, 7070)
})

test('every problem is reported with its path and line', () => {
  const bad = `
backends:
  - id: a
    type: mock
    colour: blue
  - id: a
    type: mock
  - id: c
    type: carrier-pigeon
pools:
  - id: p
    members: [ { backend: nope } ]
models:
  - { name: m, target: missing, fallbacks: [m] }
consumers:
  - { id: x, product: ghost }
`
  const res = load(bad)
  assert.equal(res.ok, false)
  const problems = !res.ok ? res.problems : []
  const byPath = new Map(problems.map((p) => [p.path, p]))
  assert.match(byPath.get('backends[0]')?.message ?? '', /unknown key "colour"/)
  assert.equal(byPath.get('backends[0]')?.line, 5)
  assert.match(byPath.get('backends[2].type')?.message ?? '', /must be one of/)
  // Shape errors stop before cross-references; fix them and the references are checked.
  const res2 = load(bad.replace('    colour: blue\n', '').replace('carrier-pigeon', 'mock'))
  assert.equal(res2.ok, false)
  const p2 = new Map((!res2.ok ? res2.problems : []).map((p) => [p.path, p]))
  assert.match(p2.get('backends[1].id')?.message ?? '', /duplicate id "a"/)
  assert.match(p2.get('pools[0].members[0].backend')?.message ?? '', /unknown backend "nope"/)
  assert.match(p2.get('models[0].target')?.message ?? '', /unknown target "missing"/)
  assert.match(p2.get('models[0].fallbacks[0]')?.message ?? '', /itself/)
  assert.match(p2.get('consumers[0].product')?.message ?? '', /unknown product "ghost"/)
  assert.equal(p2.get('pools[0].members[0].backend')?.line, 11)
})

test('unknown policies and invalid YAML are reported', () => {
  const res = load('policies:\n  - teleport: { to: mars }\n')
  assert.equal(res.ok, false)
  assert.match(!res.ok ? res.problems[0]!.message : '', /unknown policy "teleport"/)
  const yamlErr = load('backends: [ {id: a\n')
  assert.equal(yamlErr.ok, false)
  assert.match(!yamlErr.ok ? yamlErr.problems[0]!.message : '', /YAML/)
})

test('sluice check prints every problem and exits 1; a good file exits 0', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-check-'))
  const bad = join(dir, 'bad.yaml')
  writeFileSync(bad, 'backends:\n  - { id: a, type: mock }\n  - { id: a, type: mock }\nmodels:\n  - { name: m, target: zzz }\n')
  const r = spawnSync(process.execPath, ['bin/sluice.js', 'check', '--config', bad], { encoding: 'utf8' })
  assert.equal(r.status, 1)
  assert.match(r.stderr, /2 problems/)
  assert.match(r.stderr, /backends\[1\]\.id \(line 3\): duplicate id "a"/)
  assert.match(r.stderr, /models\[0\]\.target \(line 5\): unknown target "zzz"/)
  const good = join(dir, 'good.yaml')
  writeFileSync(good, 'backends:\n  - { id: a, type: mock }\nmodels:\n  - { name: m, target: a }\n')
  const ok = spawnSync(process.execPath, ['bin/sluice.js', 'check', '--config', good], { encoding: 'utf8' })
  assert.equal(ok.status, 0, ok.stderr)
  assert.match(ok.stdout, /ok/)
})

test('the shipped example configuration is valid', () => {
  const r = spawnSync(process.execPath, ['bin/sluice.js', 'check', '--config', 'examples/sluice.example.yaml'], {
    encoding: 'utf8',
    env: { ...process.env, SLUICE_ADMIN_TOKEN: 't', AOAI_EAST_KEY: 'k', AOAI_WEST_KEY: 'k', OPENAI_API_KEY: 'k', TEAM_A_KEY: '123456789012' },
  })
  assert.equal(r.status, 0, r.stderr)
})
