import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import { randomBytes } from 'node:crypto'
import pg from 'pg'
import { BatchQueue } from '../src/ledger/queue.ts'
import { usageRecordSize } from '../src/ledger/record.ts'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { PostgresLedgerStore } from '../src/stores/postgres/ledger.ts'
import { serviceAvailable, startTestGateway, BASIC_YAML, TEST_KEY } from './helpers/gateway.ts'
import { usageRecord } from './contract/ledger-store.ts'

/**
 * A TCP relay in front of the real PostgreSQL: `down()` resets every connection and refuses new ones (what a
 * database restart or a network cut looks like to the client), `restore()` lets connections through again.
 */
class FlakyRelay {
  private readonly server = net.createServer((client) => this.accept(client))
  private readonly sockets = new Set<net.Socket>()
  private up = true
  port = 0

  async start(): Promise<void> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r))
    this.port = (this.server.address() as net.AddressInfo).port
  }

  private accept(client: net.Socket): void {
    if (!this.up) { client.destroy(); return }
    const upstream = net.connect(5432, '127.0.0.1')
    for (const s of [client, upstream]) {
      this.sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => { this.sockets.delete(s); client.destroy(); upstream.destroy() })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  }

  down(): void {
    this.up = false
    for (const s of this.sockets) s.destroy()
  }

  restore(): void { this.up = true }

  async close(): Promise<void> {
    this.down()
    await new Promise<void>((r) => this.server.close(() => r()))
  }
}

const DIRECT = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')
const until = async (cond: () => boolean | Promise<boolean>, what: string, ms = 10_000) => {
  const end = Date.now() + ms
  while (!(await cond()) && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
  assert.ok(await cond(), `timed out waiting for ${what}`)
}

describe('ledger during a PostgreSQL outage', { skip: !pgUp }, () => {
  const relay = new FlakyRelay()
  const direct = new pg.Pool({ connectionString: DIRECT, max: 2 })
  const prefixes: string[] = []
  const newPrefix = () => { const p = `o_${randomBytes(5).toString('hex')}_`; prefixes.push(p); return p }
  const countRows = async (prefix: string): Promise<{ rows: number; ids: number }> => {
    const r = await direct.query(`SELECT COUNT(*)::int AS rows, COUNT(DISTINCT request_id)::int AS ids FROM ${prefix}usage_records`).catch(() => ({ rows: [{ rows: 0, ids: 0 }] }))
    return r.rows[0] as { rows: number; ids: number }
  }

  before(() => relay.start())
  after(async () => {
    for (const p of prefixes) await direct.query(`DROP TABLE IF EXISTS ${p}usage_records, ${p}message_logs, ${p}ledger_migrations`)
    await direct.end()
    await relay.close()
  })

  const queueFor = (store: PostgresLedgerStore) => new BatchQueue<UsageRecord>({ write: (b) => store.append(b), sizeOf: usageRecordSize }, { batchSize: 50, flushInterval: 20, retryBase: 20, retryMax: 200 })
  const rec = (i: number) => usageRecord({ requestId: `out-${i}`, ts: Date.now() })

  it('keeps records through an outage and writes each exactly once when the database is back', async () => {
    const prefix = newPrefix()
    const store = PostgresLedgerStore.connect(`postgres://postgres@127.0.0.1:${relay.port}/test`, { tablePrefix: prefix })
    await store.migrated()
    const queue = queueFor(store)
    for (let i = 0; i < 100; i++) queue.append(rec(i))
    assert.equal(await queue.flush(10_000), true)
    assert.deepEqual(await countRows(prefix), { rows: 100, ids: 100 })

    relay.down()
    for (let i = 100; i < 400; i++) assert.equal(queue.append(rec(i)), true)
    await until(() => queue.stats().failures >= 3, 'failed attempts during the outage')
    assert.equal(queue.stats().retrying, true)
    assert.deepEqual(await countRows(prefix), { rows: 100, ids: 100 }, 'nothing reached the database while it was cut off')

    relay.restore()
    assert.equal(await queue.flush(20_000), true)
    assert.deepEqual(await countRows(prefix), { rows: 400, ids: 400 })
    assert.equal(queue.stats().dropped, 0)
    await queue.close()
    await store.close()
  })

  it('starts while the database is down: migrations and writes happen once it is reachable', async () => {
    const prefix = newPrefix()
    relay.down()
    const store = PostgresLedgerStore.connect(`postgres://postgres@127.0.0.1:${relay.port}/test`, { tablePrefix: prefix })
    const queue = queueFor(store)
    for (let i = 0; i < 60; i++) queue.append(rec(i))
    await until(() => queue.stats().failures >= 2, 'failed attempts while down')
    relay.restore()
    assert.equal(await queue.flush(20_000), true)
    assert.deepEqual(await countRows(prefix), { rows: 60, ids: 60 })
    await queue.close()
    await store.close()
  })

  it('a gateway keeps serving during the outage and its usage report catches up afterwards', async () => {
    const prefix = newPrefix()
    const tg = await startTestGateway(`ledger: { type: postgres, url: "postgres://postgres@127.0.0.1:${relay.port}/test", tablePrefix: ${prefix}, flushInterval: 20ms }\n${BASIC_YAML}`)
    try {
      const send = async () => {
        const res = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'count me' }] }) })
        assert.equal(res.status, 200)
        return ((await res.json()) as { usage: { total_tokens: number } }).usage.total_tokens
      }
      let tokens = await send()
      relay.down()
      for (let i = 0; i < 20; i++) tokens += await send()
      const during = await fetch(`${tg.adminUrl}/admin/usage`)
      assert.equal(during.status, 503)
      assert.equal(((await during.json()) as { error: { code: string } }).error.code, 'service_unavailable')
      relay.restore()
      await until(async () => (await fetch(`${tg.adminUrl}/admin/usage`)).status === 200, 'the report to answer again', 20_000)
      const body = (await (await fetch(`${tg.adminUrl}/admin/usage?by=consumer`)).json()) as { rows: { key: string; requests: number; totalTokens: number }[] }
      assert.deepEqual(body.rows.map((r) => [r.key, r.requests, r.totalTokens]), [['team-a', 21, tokens]])
      assert.equal(tg.gw.ledger!.stats().usage.dropped, 0)
    } finally {
      await tg.close()
    }
  })
})
