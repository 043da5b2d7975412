import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { spawnSync } from 'node:child_process'
import { request } from 'undici'
import pino from 'pino'
import { loadConfigFile } from '../src/config/load.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { createGateway } from '../src/server/gateway.ts'
import { authHeaders, TEST_KEY } from './helpers/gateway.ts'
import { spawnGateway } from './helpers/process.ts'

const dir = mkdtempSync(join(tmpdir(), 'sluice-life-'))
const chat = (model: string, stream = false) => JSON.stringify({ model, stream, messages: [{ role: 'user', content: 'hello' }] })

function yaml(port: number, adminPort: number, models: string, extra = '') {
  return `
listen: { host: 127.0.0.1, port: ${port} }
admin: { host: 127.0.0.1, port: ${adminPort}, token: admin-secret }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')} }
logging: { level: warn }
backends:
  - { id: m, type: mock }
  - { id: slow, type: mock, ttft: 10ms, tokensPerSecond: 40, completionTokens: 30 }
models:
${models}
consumers:
  - { id: team-a, keys: [ { value: ${TEST_KEY} } ] }
${extra}`
}

test('reload swaps the config atomically: streams in flight finish, a bad file is refused and the old one keeps serving', async () => {
  const file = join(dir, 'reload.yaml')
  writeFileSync(file, yaml(0, 0, '  - { name: a, target: m }\n  - { name: slow, target: slow }'))
  const loaded = await loadConfigFile(file, { registry: builtinPolicies() })
  assert.ok(loaded.ok)
  const gw = await createGateway({ config: loaded.config, configFile: file, logger: pino({ level: 'silent' }) })
  const { url, adminUrl } = await gw.listen()
  try {
    const admin = (method: 'GET' | 'POST', path: string, token = 'admin-secret') =>
      request(`${adminUrl}${path}`, { method, headers: { authorization: `Bearer ${token}` } })
    const denied = await admin('POST', '/admin/config', 'wrong')
    assert.equal(denied.statusCode, 401)
    await denied.body.text()

    // A stream starts on version 1…
    const streaming = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('slow', true) })
    // …the file changes (model "a" renamed to "b") and is reloaded mid-stream.
    writeFileSync(file, yaml(0, 0, '  - { name: b, target: m }\n  - { name: slow, target: slow }'))
    const r = await admin('POST', '/admin/config')
    assert.equal(r.statusCode, 200)
    const v = (await r.body.json()) as { version: number }
    const text = await streaming.body.text()
    assert.match(text, /data: \[DONE\]\n\n$/, 'the stream that began before the reload finished cleanly')
    const b = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('b') })
    assert.equal(b.statusCode, 200)
    await b.body.text()
    const a = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('a') })
    assert.equal(a.statusCode, 404)
    await a.body.text()

    writeFileSync(file, 'models:\n  - { name: c, target: nowhere }\n')
    const bad = await admin('POST', '/admin/config')
    assert.equal(bad.statusCode, 400)
    assert.match(await bad.body.text(), /unknown target \\"nowhere\\"/)
    const still = await request(`${url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('b') })
    assert.equal(still.statusCode, 200, 'the old configuration keeps serving')
    await still.body.text()
    const cfg = await admin('GET', '/admin/config')
    assert.equal(((await cfg.body.json()) as { version: number }).version, v.version)
  } finally {
    await gw.close()
  }
})

test('consumer keys: created once through the admin API, stored hashed, usable, revocable', async () => {
  const file = join(dir, 'keys.yaml')
  writeFileSync(file, yaml(0, 0, '  - { name: a, target: m }'))
  const loaded = await loadConfigFile(file, { registry: builtinPolicies() })
  assert.ok(loaded.ok)
  const gw = await createGateway({ config: loaded.config, configFile: file, logger: pino({ level: 'silent' }) })
  const { url, adminUrl } = await gw.listen()
  try {
    const h = { authorization: 'Bearer admin-secret', 'content-type': 'application/json' }
    const created = await request(`${adminUrl}/admin/keys`, { method: 'POST', headers: h, body: JSON.stringify({ consumer: 'team-a', label: 'ci' }) })
    assert.equal(created.statusCode, 201)
    const rec = (await created.body.json()) as { id: string; key: string; prefix: string }
    assert.match(rec.key, /^sk-sluice-/)
    const use = (key: string) => request(`${url}/v1/chat/completions`, { method: 'POST', headers: { ...authHeaders(key) }, body: chat('a') })
    const ok = await use(rec.key)
    assert.equal(ok.statusCode, 200)
    await ok.body.text()
    const listed = await request(`${adminUrl}/admin/keys`, { headers: h })
    const listText = await listed.body.text()
    assert.ok(!listText.includes(rec.key), 'a listing never shows the key')
    assert.match(listText, new RegExp(rec.id))
    const del = await request(`${adminUrl}/admin/keys/${rec.id}`, { method: 'DELETE', headers: h })
    assert.equal(del.statusCode, 200)
    await del.body.text()
    const revoked = await use(rec.key)
    assert.equal(revoked.statusCode, 401)
    await revoked.body.text()
  } finally {
    await gw.close()
  }
  // The CLI writes to the same store; a gateway started afterwards accepts the printed key.
  const cli = spawnSync(process.execPath, ['bin/sluice.js', 'keys', 'create', '--consumer', 'team-a', '--config', file], { encoding: 'utf8' })
  assert.equal(cli.status, 0, cli.stderr)
  const key = cli.stdout.split('\n').find((l) => l.startsWith('sk-sluice-'))!
  assert.ok(key)
  const list = spawnSync(process.execPath, ['bin/sluice.js', 'keys', 'list', '--config', file], { encoding: 'utf8' })
  assert.ok(!list.stdout.includes(key) && list.stdout.includes('team-a'))
  const again = await loadConfigFile(file, { registry: builtinPolicies() })
  assert.ok(again.ok)
  const gw2 = await createGateway({ config: again.config, logger: pino({ level: 'silent' }) })
  const { url: url2 } = await gw2.listen()
  try {
    const r = await request(`${url2}/v1/chat/completions`, { method: 'POST', headers: authHeaders(key), body: chat('a') })
    assert.equal(r.statusCode, 200)
    await r.body.text()
  } finally {
    await gw2.close()
  }
})

test('SIGTERM: stop accepting, finish the stream in flight, exit 0', async () => {
  const file = join(dir, 'term.yaml')
  writeFileSync(file, yaml(0, 0, '  - { name: slow, target: slow }'))
  const gp = await spawnGateway(file)
  const res = await request(`${gp.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('slow', true) })
  let text = ''
  let signalled = false
  for await (const chunk of res.body) {
    text += chunk.toString()
    if (!signalled && text.includes('"content":"')) {
      signalled = true
      gp.child.kill('SIGTERM')
    }
  }
  assert.ok(signalled)
  assert.match(text, /data: \[DONE\]\n\n$/, 'the stream in flight completed')
  const code = await gp.exited
  assert.equal(code, 0, gp.output())
  await assert.rejects(request(`${gp.url}/healthz`), 'no longer accepting')
})

test('SIGHUP reloads the file in a running process', async () => {
  const file = join(dir, 'hup.yaml')
  writeFileSync(file, yaml(0, 0, '  - { name: a, target: m }'))
  const gp = await spawnGateway(file)
  try {
    // The contrast first: before the reload "z" is unknown.
    const before = await request(`${gp.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('z') })
    assert.equal(before.statusCode, 404)
    await before.body.text()
    writeFileSync(file, yaml(0, 0, '  - { name: z, target: m }'))
    gp.child.kill('SIGHUP')
    for (let i = 0; i < 250 && !gp.output().includes('reloaded'); i++) await new Promise((r) => setTimeout(r, 20))
    assert.match(gp.output(), /configuration reloaded/, 'the reload did not land within 5 s')
    const r = await request(`${gp.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('z') })
    assert.equal(r.statusCode, 200)
    await r.body.text()
  } finally {
    gp.child.kill('SIGTERM')
    await gp.exited
  }
})
