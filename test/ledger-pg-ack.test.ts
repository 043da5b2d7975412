import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pg from 'pg'
import { BatchQueue } from '../src/ledger/queue.ts'
import { usageRecordSize } from '../src/ledger/record.ts'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { PostgresLedgerStore } from '../src/stores/postgres/ledger.ts'
import { serviceAvailable, startTestGateway, BASIC_YAML, TEST_KEY } from './helpers/gateway.ts'
import { TcpProxy } from './helpers/tcp-proxy.ts'
import { usageRecord } from './contract/ledger-store.ts'

/**
 * Issue 18: the PostgreSQL writer was at-least-once (a commit whose acknowledgement was lost got retried,
 * duplicating the batch). The relay here lets an INSERT reach the server and commit, then drops its answer
 * and the connection: the writer sees a failure and retries, and the unique record id absorbs the copy.
 */
const DIRECT = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')
const until = async (cond: () => boolean | Promise<boolean>, what: string, ms = 15_000) => {
  const end = Date.now() + ms
  while (!(await cond()) && Date.now() < end) await new Promise((r) => setTimeout(r, 10))
  assert.ok(await cond(), `timed out waiting for ${what}`)
}

describe('PostgreSQL ledger: a connection cut between commit and acknowledgement', { skip: !pgUp }, () => {
  const relay = new TcpProxy(5432)
  const direct = new pg.Pool({ connectionString: DIRECT, max: 2 })
  const prefixes: string[] = []
  const newPrefix = () => { const p = `a_${randomBytes(5).toString('hex')}_`; prefixes.push(p); return p }
  const countRows = async (prefix: string) =>
    (await direct.query<{ rows: number; ids: number }>(`SELECT COUNT(*)::int AS rows, COUNT(DISTINCT request_id)::int AS ids FROM ${prefix}usage_records`)).rows[0]!
  const dir = mkdtempSync(join(tmpdir(), 'sluice-pg-ack-'))

  before(() => relay.start())
  after(async () => {
    for (const p of prefixes) await direct.query(`DROP TABLE IF EXISTS ${p}usage_records, ${p}message_logs, ${p}ledger_migrations`)
    await direct.end()
    await relay.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('the batch committed, the writer saw an error and retried: still one row per record', async () => {
    const prefix = newPrefix()
    const store = PostgresLedgerStore.connect(`postgres://postgres@127.0.0.1:${relay.port}/test`, { tablePrefix: prefix })
    await store.migrated()
    const queue = new BatchQueue<UsageRecord>({ write: (b) => store.append(b), sizeOf: usageRecordSize }, { batchSize: 1000, flushInterval: 5, retryBase: 20, retryMax: 100 })
    relay.loseReply({ request: `${prefix}usage_records`, reply: 'INSERT 0 ', refuseAfter: true })
    for (let i = 0; i < 120; i++) queue.append(usageRecord({ requestId: `ack-${i}`, recordId: `rid-ack-${i}`, ts: Date.now() }))
    await until(() => relay.cuts === 1 && queue.stats().failures >= 1, 'the lost acknowledgement')
    // The server did commit: the rows are there though the writer was told nothing.
    assert.deepEqual(await countRows(prefix), { rows: 120, ids: 120 })
    assert.equal(queue.stats().retrying, true)
    relay.restore()
    assert.equal(await queue.flush(20_000), true)
    assert.ok(queue.stats().failures >= 1)
    assert.deepEqual(await countRows(prefix), { rows: 120, ids: 120 }, 'the retry of a committed batch added nothing')
    await queue.close()
    await store.close()
  })

  it('a gateway whose ledger inserts keep losing their acknowledgement counts each answered request once', async () => {
    const prefix = newPrefix()
    const tg = await startTestGateway(`ledger: { type: postgres, url: "postgres://postgres@127.0.0.1:${relay.port}/test", tablePrefix: ${prefix}, flushInterval: 5ms, batchSize: 10, journal: { dir: ${join(dir, 'gw')} } }\n${BASIC_YAML}`)
    try {
      await until(async () => (await fetch(`${tg.adminUrl}/admin/usage`)).status === 200, 'the ledger tables')
      relay.loseReply({ request: `${prefix}usage_records`, reply: 'INSERT 0 ', every: true })
      let answered = 0
      await Promise.all(Array.from({ length: 4 }, async () => {
        for (let i = 0; i < 15; i++) {
          const res = await fetch(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'bill me once' }] }) })
          assert.equal(res.status, 200)
          await res.text()
          answered++
        }
      }))
      // Every insert reaches the server and is lost on the way back, so the writer keeps retrying; let a few through.
      await until(() => relay.cuts >= 3, 'lost acknowledgements')
      relay.loseReply(null)
      await until(async () => (await countRows(prefix)).rows >= answered && tg.gw.ledger!.stats().usage.queued === 0, 'the writer to catch up', 20_000)
      assert.deepEqual(await countRows(prefix), { rows: answered, ids: answered })
      assert.equal(answered, 60)
      // The contrast that makes the count mean something: acknowledgements really were lost (at least three
      // committed inserts whose reply never arrived). Whether the queue or the store's own reconnect saw each
      // loss as a failed write depends on timing, so the cuts are counted at the relay, not in the writer.
      assert.ok(relay.cuts >= 3, `lost acknowledgements: ${relay.cuts}`)
    } finally {
      await tg.close()
    }
  })
})
