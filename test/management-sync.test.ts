import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { serviceAvailable, startTestGateway, type TestGateway } from './helpers/gateway.ts'

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')

const MODELS = `
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m } ]
`
const chat = (url: string, key: string) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] }) })
const post = (admin: string, path: string, body: unknown) => fetch(`${admin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

async function within(ms: number, what: string, check: () => Promise<boolean>): Promise<number> {
  const t0 = Date.now()
  while (Date.now() - t0 <= ms) {
    if (await check()) return Date.now() - t0
    await new Promise((r) => setTimeout(r, 20))
  }
  throw new Error(`${what} did not happen within ${ms} ms`)
}

/** Creates a consumer and a key on A; returns the key once B serves it, and how long that took. */
async function createOnAServedByB(a: TestGateway, b: TestGateway, limitMs: number) {
  const id = `sync-${randomUUID().slice(0, 6)}`
  assert.equal((await post(a.adminUrl, '/admin/consumers', { id })).status, 201)
  const made = await post(a.adminUrl, '/admin/keys', { consumer: id })
  assert.equal(made.status, 201)
  const { key } = await made.json() as { key: string }
  assert.equal((await chat(a.url, key)).status, 200)
  const took = await within(limitMs, 'B serving the new consumer', async () => (await chat(b.url, key)).status === 200)
  return { id, key, took }
}

describe('replicas keep their run-time consumers in step', () => {
  const open: TestGateway[] = []
  const dirs: string[] = []
  after(async () => {
    for (const g of open) await g.close()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  })

  it('without any notification channel, the periodic resync alone heals (shared SQLite file, memory store)', { timeout: 30_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sluice-sync-'))
    dirs.push(dir)
    const yaml = `ledger: { type: sqlite, path: ${join(dir, 'l.db')} }\nmanagement: { resync: 300ms }\n${MODELS}`
    const a = await startTestGateway(yaml, { keyStore: undefined })
    const b = await startTestGateway(yaml, { keyStore: undefined })
    open.push(a, b)
    const { id, key } = await createOnAServedByB(a, b, 2000)
    assert.equal((await fetch(`${a.adminUrl}/admin/consumers/${id}`, { method: 'DELETE' })).status, 200)
    await within(2000, 'B refusing the deleted consumer', async () => (await chat(b.url, key)).status === 401)
  })

  it('PostgreSQL LISTEN/NOTIFY carries a change to the other replica within a second', { skip: !pgUp, timeout: 30_000 }, async () => {
    const prefix = `t${randomUUID().replaceAll('-', '').slice(0, 10)}`
    // A long resync: only the notification can make it in time.
    const yaml = `ledger: { type: postgres, url: "${PG_URL}", tablePrefix: ${prefix}, flushInterval: 50ms }\nmanagement: { resync: 60s }\n${MODELS}`
    const a = await startTestGateway(yaml, { keyStore: undefined })
    const b = await startTestGateway(yaml, { keyStore: undefined })
    open.push(a, b)
    try {
      const { id, key, took } = await createOnAServedByB(a, b, 1000)
      assert.ok(took <= 1000)
      assert.equal((await post(a.adminUrl, `/admin/consumers/${id}/suspend`, { reason: 'pg test' })).status, 200)
      await within(1000, 'B refusing the suspended consumer', async () => (await chat(b.url, key)).status === 403)
      assert.equal((await fetch(`${a.adminUrl}/admin/consumers/${id}`, { method: 'DELETE' })).status, 200)
      await within(1000, 'B refusing the deleted consumer', async () => (await chat(b.url, key)).status === 401)
      const audit = await (await fetch(`${b.adminUrl}/admin/audit?target=consumer:${id}`)).json() as any
      assert.deepEqual(audit.entries.map((e: any) => e.action), ['consumer.delete', 'consumer.suspend', 'consumer.create'])
    } finally {
      const c = new pg.Client({ connectionString: PG_URL })
      await c.connect()
      for (const t of ['managed_consumers', 'managed_products', 'consumer_suspensions', 'admin_audit']) await c.query(`DROP TABLE IF EXISTS ${prefix}_${t}`)
      await c.end()
    }
  })
})
