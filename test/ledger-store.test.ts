import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { after, test } from 'node:test'
import assert from 'node:assert/strict'
import Database from 'better-sqlite3'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import { ThreadedSqliteLedgerStore } from '../src/stores/sqlite/threaded-ledger.ts'
import { PostgresLedgerStore } from '../src/stores/postgres/ledger.ts'
import { SqliteKeyStore } from '../src/stores/sqlite/keys.ts'
import { serviceAvailable } from './helpers/gateway.ts'
import { ledgerStoreContract, usageRecord } from './contract/ledger-store.ts'

const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

ledgerStoreContract('sqlite', async () => {
  const path = join(dir, `ledger-${n++}.db`)
  // The key store shares the file in production: open it first so both schemas live side by side.
  const keys = new SqliteKeyStore(path)
  const store = new SqliteLedgerStore(path)
  return { store, reopen: async () => new SqliteLedgerStore(path), dispose: async () => { await store.close(); await keys.close() } }
})

ledgerStoreContract('sqlite, written from a worker thread', async () => {
  const path = join(dir, `ledger-${n++}.db`)
  const keys = new SqliteKeyStore(path)
  const store = new ThreadedSqliteLedgerStore(path)
  return { store, reopen: async () => new ThreadedSqliteLedgerStore(path), dispose: async () => { await store.close(); await keys.close() } }
})

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')
ledgerStoreContract('postgres', async () => {
  // A table prefix of its own per test: concurrent runs (and other engineers' tests) never collide.
  const tablePrefix = `t_${randomBytes(5).toString('hex')}_`
  const store = PostgresLedgerStore.connect(PG_URL, { tablePrefix })
  await store.migrated()
  return {
    store,
    reopen: async () => PostgresLedgerStore.connect(PG_URL, { tablePrefix }),
    dispose: async () => { await store.dropTables(); await store.close() },
  }
}, { skip: !pgUp })

test('a ledger file from before record ids is migrated in place: its rows stay, new inserts are idempotent', async () => {
  const path = join(dir, `ledger-${n++}.db`)
  // The first migration's schema, as a gateway of the previous release left it (with a batch written twice).
  const old = new Database(path)
  old.exec(`CREATE TABLE ledger_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
    INSERT INTO ledger_migrations VALUES (1, '2026-01-01T00:00:00Z');
    CREATE TABLE usage_records (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT,
      model TEXT, backend TEXT, status INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
      reasoning_tokens INTEGER NOT NULL, cost_usd REAL, latency_ms INTEGER NOT NULL, ttft_ms INTEGER, cache_hit INTEGER NOT NULL, stream INTEGER NOT NULL,
      attempts INTEGER NOT NULL, error_code TEXT);
    CREATE TABLE message_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT, model TEXT,
      prompt TEXT, completion TEXT, truncated INTEGER NOT NULL);`)
  const ins = old.prepare(`INSERT INTO usage_records (ts, request_id, consumer, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, latency_ms, cache_hit, stream, attempts)
    VALUES (?, ?, 'team-a', 200, 1, 1, 0, 0, 5, 0, 0, 1)`)
  ins.run(1000, 'legacy-1')
  ins.run(1000, 'legacy-1')
  old.close()

  const store = new SqliteLedgerStore(path)
  try {
    assert.deepEqual((await store.records()).map((r) => r.requestId), ['legacy-1', 'legacy-1'], 'old rows are kept as they were')
    const fresh = usageRecord({ ts: 2000, requestId: 'new-1', recordId: 'rid-new-1' })
    await store.append([fresh])
    await store.append([fresh])
    assert.deepEqual((await store.records()).map((r) => r.requestId), ['legacy-1', 'legacy-1', 'new-1'])
  } finally {
    await store.close()
  }
})
