import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import Database from 'better-sqlite3'
import pg from 'pg'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import { PostgresLedgerStore } from '../src/stores/postgres/ledger.ts'
import { serviceAvailable } from './helpers/gateway.ts'
import { usageRecord } from './contract/ledger-store.ts'

/**
 * The `saved_usd` column is added outside the numbered migrations, when missing: a ledger written before it
 * existed gains it (old rows read as 0 saved), and one where another migration already added it opens
 * unchanged. Both engines.
 */
const dir = mkdtempSync(join(tmpdir(), 'sluice-saved-'))
after(() => rmSync(dir, { recursive: true, force: true }))

// The usage_records table as the first migration created it, before saved_usd.
const OLD_COLUMNS = `ts INTEGER NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT, model TEXT, backend TEXT,
  status INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL, cached_tokens INTEGER NOT NULL,
  reasoning_tokens INTEGER NOT NULL, cost_usd REAL, latency_ms INTEGER NOT NULL, ttft_ms INTEGER, cache_hit INTEGER NOT NULL,
  stream INTEGER NOT NULL, attempts INTEGER NOT NULL, error_code TEXT`
const OLD_ROW = `INSERT INTO usage_records (ts, request_id, consumer, model, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
  cost_usd, latency_ms, cache_hit, stream, attempts) VALUES (1772359200000, 'old-1', 'team-a', 'gpt-4o', 200, 10, 20, 0, 0, 0, 5, 1, 0, 0)`

function oldSqlite(path: string, extra = ''): void {
  const db = new Database(path)
  db.exec(`CREATE TABLE ledger_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL);
    INSERT INTO ledger_migrations VALUES (1, '2026-01-01');
    CREATE TABLE usage_records (id INTEGER PRIMARY KEY AUTOINCREMENT, ${OLD_COLUMNS}${extra});
    CREATE TABLE message_logs (id INTEGER PRIMARY KEY AUTOINCREMENT, ts INTEGER NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT,
      model TEXT, prompt TEXT, completion TEXT, truncated INTEGER NOT NULL);
    ${OLD_ROW}`)
  db.close()
}

const hit = usageRecord({ requestId: 'new-1', cacheHit: true, costUsd: 0, savedUsd: 0.000225 })

describe('saved_usd column on SQLite', () => {
  it('is added to a ledger written before it; old rows count as nothing saved', async () => {
    const path = join(dir, 'old.db')
    oldSqlite(path)
    const s = new SqliteLedgerStore(path)
    await s.append([hit])
    const [row] = await s.usage({ by: 'consumer' })
    assert.deepEqual([row!.key, row!.cacheHits, row!.savedUsd], ['team-a', 2, 0.000225])
    assert.deepEqual((await s.records()).map((r) => r.savedUsd), [0, 0.000225])
    await s.close()
    // Opening again finds the column and adds nothing.
    const again = new SqliteLedgerStore(path)
    assert.equal((await again.usage({ by: 'consumer' }))[0]!.savedUsd, 0.000225)
    await again.close()
  })

  it('opens a ledger where another migration already added saved_usd', async () => {
    const path = join(dir, 'already.db')
    oldSqlite(path, ', saved_usd REAL')
    const s = new SqliteLedgerStore(path)
    await s.append([hit])
    assert.equal((await s.usage({ by: 'model' }))[0]!.savedUsd, 0.000225)
    await s.close()
  })
})

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')

describe('saved_usd column on PostgreSQL', { skip: !pgUp }, () => {
  const pgOld = async (p: string, extra = '') => {
    const c = new pg.Client({ connectionString: PG_URL })
    await c.connect()
    try {
      await c.query(`CREATE TABLE ${p}ledger_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now());
        INSERT INTO ${p}ledger_migrations (version) VALUES (1);
        CREATE TABLE ${p}usage_records (id BIGSERIAL PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT,
          model TEXT, backend TEXT, status SMALLINT NOT NULL, prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
          cached_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION, latency_ms INTEGER NOT NULL, ttft_ms INTEGER,
          cache_hit BOOLEAN NOT NULL, stream BOOLEAN NOT NULL, attempts SMALLINT NOT NULL, error_code TEXT${extra});
        CREATE TABLE ${p}message_logs (id BIGSERIAL PRIMARY KEY, ts TIMESTAMPTZ NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT,
          model TEXT, prompt TEXT, completion TEXT, truncated BOOLEAN NOT NULL);
        INSERT INTO ${p}usage_records (ts, request_id, consumer, model, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
          cost_usd, latency_ms, cache_hit, stream, attempts) VALUES (to_timestamp(1772359200), 'old-1', 'team-a', 'gpt-4o', 200, 10, 20, 0, 0, 0, 5, true, false, 0)`)
    } finally {
      await c.end()
    }
  }

  for (const [name, extra] of [['is added to a ledger written before it', ''], ['leaves a saved_usd another migration added', ', saved_usd DOUBLE PRECISION']] as const) {
    it(name, async () => {
      const tablePrefix = `t_${randomBytes(5).toString('hex')}_`
      await pgOld(tablePrefix, extra)
      const s = PostgresLedgerStore.connect(PG_URL, { tablePrefix })
      try {
        await s.append([hit])
        const [row] = await s.usage({ by: 'consumer' })
        assert.deepEqual([row!.key, row!.cacheHits, row!.savedUsd], ['team-a', 2, 0.000225])
        assert.deepEqual((await s.records()).map((r) => r.savedUsd), [0, 0.000225])
        const again = PostgresLedgerStore.connect(PG_URL, { tablePrefix })
        await again.migrated()
        await again.close()
      } finally {
        await s.dropTables()
        await s.close()
      }
    })
  }
})
