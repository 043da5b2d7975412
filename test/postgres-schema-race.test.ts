import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { PostgresManagementStore } from '../src/control/management/postgres.ts'
import { serviceAvailable } from './helpers/gateway.ts'

// Replicas started together against a fresh database each create their tables at start. PostgreSQL's
// CREATE TABLE IF NOT EXISTS is not safe against a concurrent creator of the same name: one of them fails with
// a unique violation on pg_type. CI saw it as a 500 from POST /admin/keys on the second of two gateway
// processes (key-revocation-multiprocess.test.ts): the management store's schema promise had failed for good.
const PG_URL = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')
const prefixes: string[] = []

after(async () => {
  if (!pgUp || prefixes.length === 0) return
  const c = new pg.Client({ connectionString: PG_URL })
  await c.connect()
  for (const p of prefixes) {
    const t = await c.query<{ tablename: string }>('SELECT tablename FROM pg_tables WHERE tablename LIKE $1', [`${p}%`])
    for (const r of t.rows) await c.query(`DROP TABLE IF EXISTS "${r.tablename}"`)
  }
  await c.end()
})

const entry = (i: number) => ({ ts: new Date(0).toISOString(), actor: `replica-${i}`, action: 'key.create', target: 'team-a', before: null, after: { i } })

describe('PostgreSQL management tables created by replicas starting at once', { skip: !pgUp }, () => {
  it('eight stores on one fresh prefix, constructed together, all write their audit entry', { timeout: 60_000 }, async () => {
    // Several rounds: the race is a window of a few milliseconds, and each round starts on a new prefix.
    for (let round = 0; round < 5; round++) {
      const prefix = `sr${randomUUID().slice(0, 8)}_`
      prefixes.push(prefix)
      const pools = Array.from({ length: 8 }, () => new pg.Pool({ connectionString: PG_URL, max: 2 }))
      try {
        const stores = pools.map((p) => new PostgresManagementStore(p, prefix))
        const results = await Promise.allSettled(stores.map((s, i) => s.appendAudit(entry(i))))
        const failed = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason))
        assert.deepEqual(failed, [], `round ${round}`)
        // Exactly the eight entries, no more and no fewer, seen from any one of them.
        const seen = await stores[0]!.audit({ limit: 100 })
        assert.deepEqual(seen.map((e) => e.actor).sort(), Array.from({ length: 8 }, (_, i) => `replica-${i}`).sort())
      } finally {
        await Promise.all(pools.map((p) => p.end()))
      }
    }
  })

  it('a store whose first schema attempt failed tries again on the next call', { timeout: 30_000 }, async () => {
    const prefix = `sr${randomUUID().slice(0, 8)}_`
    prefixes.push(prefix)
    // The pool's only connection is held, so the store's first attempt (made at construction) times out, as at a
    // start with the database unreachable; once a connection is free, the next call creates the tables.
    const pool = new pg.Pool({ connectionString: PG_URL, max: 1, connectionTimeoutMillis: 2000 })
    try {
      const blocker = await pool.connect()
      const store = new PostgresManagementStore(pool, prefix)
      await assert.rejects(store.appendAudit(entry(0)), /timeout/i)
      blocker.release()
      await store.appendAudit(entry(1))
      assert.deepEqual((await store.audit({ limit: 10 })).map((e) => e.actor), ['replica-1'])
    } finally {
      await pool.end()
    }
  })
})
