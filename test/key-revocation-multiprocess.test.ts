import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { serviceAvailable } from './helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from './helpers/process.ts'

// A key created and revoked through the admin API of one gateway process must be refused by another process
// sharing the key store, within that process's documented bound: `auth.keyCacheTtl` (30 s by default). The test
// sets it to 400 ms so the bound can be waited for honestly, and checks that no call starting after it is accepted,
// after proving the other process had accepted the key (and so cached it) and refused a key the store lacks.
const TTL_MS = 400
const ADMIN = 'admin-token-revocation'
const pgUp = await serviceAvailable('postgres')
const dir = mkdtempSync(join(tmpdir(), 'sluice-revoke-'))
const running: GatewayProcess[] = []
const pgPrefix = `rv${randomUUID().slice(0, 8)}_`

after(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
  if (pgUp) {
    const c = new pg.Client({ connectionString: 'postgres://postgres@127.0.0.1:5432/test' })
    await c.connect()
    const t = await c.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE tablename LIKE $1", [`${pgPrefix}%`])
    for (const r of t.rows) await c.query(`DROP TABLE IF EXISTS "${r.tablename}"`)
    await c.end()
  }
})

async function twoGateways(ledger: string): Promise<[GatewayProcess, GatewayProcess]> {
  const start = async () => {
    const file = join(dir, `gw-${randomUUID().slice(0, 8)}.yaml`)
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: 0 }
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN} }
ledger: ${ledger}
logging: { level: warn }
auth: { keyCacheTtl: ${TTL_MS}ms }
backends:
  - { id: m, type: mock }
models:
  - { name: gpt-4o-mini, target: m }
consumers:
  - { id: team-a }
`)
    const p = await spawnGateway(file)
    running.push(p)
    return p
  }
  return Promise.all([start(), start()])
}

const call = async (url: string, key: string): Promise<number> => {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 }),
  })
  await res.arrayBuffer()
  return res.status
}

async function revocationSeenByTheOther(ledger: string): Promise<void> {
  const [a, b] = await twoGateways(ledger)
  try {
    await revokeOnAseenByB(a, b)
  } finally {
    for (const p of [a, b]) p.child.kill('SIGKILL')
    await Promise.all([a.exited, b.exited])
  }
}

async function revokeOnAseenByB(a: GatewayProcess, b: GatewayProcess): Promise<void> {
  const admin = (p: GatewayProcess, method: string, path: string, body?: unknown) => fetch(`${p.adminUrl}${path}`, {
    method, headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body),
  })
  const created = await admin(a, 'POST', '/admin/keys', { consumer: 'team-a', label: 'revocation test' })
  assert.equal(created.status, 201, await created.clone().text())
  const { id, key } = (await created.json()) as { id: string; key: string }

  // The hit first: both processes accept the key (B looks it up in the shared store and caches it).
  assert.equal(await call(a.url, key), 200)
  assert.equal(await call(b.url, key), 200)
  assert.equal(await call(b.url, 'sk-sluice-never-issued-0000'), 401, 'B refuses a key the store does not hold')

  const del = await admin(a, 'DELETE', `/admin/keys/${id}`)
  assert.equal(del.status, 200)
  const revokedAt = Date.now()
  assert.equal(await call(a.url, key), 401, 'the process that revoked it refuses at once')

  // B refuses within its bound, measured so a loaded machine cannot blur it: B looked the key up before the
  // revocation returned, so its cache entry expires before revokedAt + TTL, and every call that *starts* after that
  // must be refused. (With the default 30 s, calls in that window would be accepted and this would fail.)
  const calls: Array<{ startedAfter: number; status: number }> = []
  for (;;) {
    const startedAfter = Date.now() - revokedAt
    const status = await call(b.url, key)
    calls.push({ startedAfter, status })
    if (status === 401) break
    // A wait that runs out fails.
    assert.ok(startedAfter < TTL_MS + 30_000, `B still accepted the revoked key ${startedAfter} ms after the revocation`)
    await new Promise((r) => setTimeout(r, 25))
  }
  const lateAccepted = calls.filter((c) => c.startedAfter > TTL_MS && c.status === 200)
  assert.deepEqual(lateAccepted, [], `B accepted the key after keyCacheTtl (${TTL_MS} ms) had passed since the revocation`)
  assert.ok(calls.every((c) => c.status === 200 || c.status === 401), JSON.stringify(calls))
  // And it stays refused.
  assert.equal(await call(b.url, key), 401)
}

describe('key revocation seen by a second gateway process', () => {
  it('sharing the SQLite key store', { timeout: 180_000 }, async () => {
    await revocationSeenByTheOther(`{ type: sqlite, path: ${join(dir, 'shared.db')} }`)
  })

  it('sharing the PostgreSQL key store', { skip: !pgUp, timeout: 180_000 }, async () => {
    await revocationSeenByTheOther(`{ type: postgres, url: "postgres://postgres@127.0.0.1:5432/test", tablePrefix: ${pgPrefix} }`)
  })
})
