import Database from 'better-sqlite3'
import { NO_KEY, roundCost, type LedgerStore, type MessageRecord, type RecordQuery, type UsageGroup, type UsageQuery, type UsageRecord, type UsageRow } from '../ledger.ts'
import { openSqlite } from './open.ts'

/**
 * Migrations, applied in order once each; the version lives in `ledger_migrations` (not `user_version`,
 * because the file is shared with the key store, which may grow migrations of its own).
 */
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE usage_records (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts INTEGER NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT, model TEXT, backend TEXT,
     status INTEGER NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
     cached_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL, cost_usd REAL,
     latency_ms INTEGER NOT NULL, ttft_ms INTEGER, cache_hit INTEGER NOT NULL, stream INTEGER NOT NULL,
     attempts INTEGER NOT NULL, error_code TEXT);
   CREATE INDEX usage_records_ts ON usage_records (ts);
   CREATE INDEX usage_records_request_id ON usage_records (request_id);
   CREATE TABLE message_logs (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     ts INTEGER NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT, model TEXT,
     prompt TEXT, completion TEXT, truncated INTEGER NOT NULL);
   CREATE INDEX message_logs_ts ON message_logs (ts);
   CREATE INDEX message_logs_request_id ON message_logs (request_id);`,
  // Idempotent inserts (issue 18): one row per record id, so a replayed journal or a retried batch never
  // duplicates. Rows written before have no record id (NULLs never conflict in a unique index).
  `ALTER TABLE usage_records ADD COLUMN record_id TEXT;
   CREATE UNIQUE INDEX usage_records_record_id ON usage_records (record_id);
   ALTER TABLE message_logs ADD COLUMN record_id TEXT;
   CREATE UNIQUE INDEX message_logs_record_id ON message_logs (record_id);`,
]

/**
 * Columns added after the versioned migrations, each applied when missing (checked, not numbered), so they
 * are safe whichever order they meet other branches' migrations in.
 */
const ADDED_COLUMNS: ReadonlyArray<readonly [table: string, column: string, type: string]> = [
  ['usage_records', 'saved_usd', 'REAL'],
  ['usage_records', 'bytes_in', 'INTEGER'],
  ['usage_records', 'bytes_out', 'INTEGER'],
]

const GROUP_SQL: Record<UsageGroup, string> = {
  consumer: `COALESCE(consumer, '${NO_KEY}')`,
  model: `COALESCE(model, '${NO_KEY}')`,
  backend: `COALESCE(backend, '${NO_KEY}')`,
  day: `strftime('%Y-%m-%d', ts / 1000, 'unixepoch')`,
}

interface RecordRow {
  ts: number; request_id: string; consumer: string | null; product: string | null; model: string | null; backend: string | null
  status: number; prompt_tokens: number; completion_tokens: number; cached_tokens: number; reasoning_tokens: number
  cost_usd: number | null; latency_ms: number; ttft_ms: number | null; cache_hit: number; stream: number; attempts: number; error_code: string | null
  saved_usd: number | null
  bytes_in: number | null
  bytes_out: number | null
}
interface MessageRow { ts: number; request_id: string; consumer: string | null; product: string | null; model: string | null; prompt: string | null; completion: string | null; truncated: number }

/** The embedded ledger: a SQLite file (by default `.sluice/ledger.db`, shared with the key store). */
export class SqliteLedgerStore implements LedgerStore {
  readonly type = 'sqlite' as const
  private readonly db: Database.Database
  private readonly insertRecord: Database.Statement
  private readonly insertMessage: Database.Statement
  private readonly appendMany: (records: readonly UsageRecord[]) => void
  private readonly appendManyMessages: (records: readonly MessageRecord[]) => void

  constructor(path: string) {
    this.db = openSqlite(path)
    // WAL + NORMAL survives a process crash (only an OS crash can lose the last commits) and keeps batches cheap.
    this.db.pragma('synchronous = NORMAL')
    this.migrate()
    this.insertRecord = this.db.prepare(`INSERT INTO usage_records (ts, request_id, consumer, product, model, backend, status,
      prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, cost_usd, latency_ms, ttft_ms, cache_hit, stream, attempts, error_code, record_id, saved_usd, bytes_in, bytes_out)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (record_id) DO NOTHING`)
    this.insertMessage = this.db.prepare(`INSERT INTO message_logs (ts, request_id, consumer, product, model, prompt, completion, truncated, record_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (record_id) DO NOTHING`)
    this.appendMany = this.db.transaction((records: readonly UsageRecord[]) => {
      for (const r of records) {
        this.insertRecord.run(r.ts, r.requestId, r.consumer, r.product, r.model, r.backend, r.status, r.promptTokens, r.completionTokens,
          r.cachedTokens, r.reasoningTokens, r.costUsd, r.latencyMs, r.ttftMs, r.cacheHit ? 1 : 0, r.stream ? 1 : 0, r.attempts, r.errorCode, r.recordId ?? r.requestId, r.savedUsd ?? 0, r.bytesIn ?? null, r.bytesOut ?? null)
      }
    })
    this.appendManyMessages = this.db.transaction((records: readonly MessageRecord[]) => {
      for (const m of records) this.insertMessage.run(m.ts, m.requestId, m.consumer, m.product, m.model, m.prompt, m.completion, m.truncated ? 1 : 0, m.recordId ?? m.requestId)
    })
  }

  private migrate(): void {
    this.db.exec('CREATE TABLE IF NOT EXISTS ledger_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)')
    // IMMEDIATE takes the write lock first, so two processes opening the same file cannot both apply a migration.
    const apply = this.db.transaction(() => {
      const row = this.db.prepare('SELECT MAX(version) AS v FROM ledger_migrations').get() as { v: number | null }
      for (let v = (row.v ?? 0) + 1; v <= MIGRATIONS.length; v++) {
        this.db.exec(MIGRATIONS[v - 1]!)
        this.db.prepare('INSERT INTO ledger_migrations (version, applied_at) VALUES (?, ?)').run(v, new Date().toISOString())
      }
      for (const [table, column, type] of ADDED_COLUMNS) {
        const cols = this.db.prepare(`PRAGMA table_info(${table})`).all() as { name: string }[]
        if (!cols.some((c) => c.name === column)) this.db.exec(`ALTER TABLE ${table} ADD COLUMN ${column} ${type}`)
      }
    })
    apply.immediate()
  }

  async append(records: readonly UsageRecord[]): Promise<void> {
    if (records.length) this.appendMany(records)
  }

  async appendMessages(records: readonly MessageRecord[]): Promise<void> {
    if (records.length) this.appendManyMessages(records)
  }

  async usage(q: UsageQuery): Promise<UsageRow[]> {
    const key = GROUP_SQL[q.by]
    const rows = this.db.prepare(`SELECT ${key} AS key, COUNT(*) AS requests, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c,
        COALESCE(SUM(cost_usd), 0) AS cost, SUM(cache_hit) AS hits, SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
        COALESCE(SUM(saved_usd), 0) AS saved
      FROM usage_records WHERE ts >= ? AND ts < ? GROUP BY 1 ORDER BY 1`)
      .all(q.since ?? 0, q.until ?? Number.MAX_SAFE_INTEGER) as { key: string; requests: number; p: number; c: number; cost: number; hits: number; errors: number; saved: number }[]
    return rows.map((r) => ({
      key: r.key, requests: r.requests, promptTokens: r.p, completionTokens: r.c, totalTokens: r.p + r.c,
      costUsd: roundCost(r.cost), cacheHits: r.hits, errors: r.errors, savedUsd: roundCost(r.saved),
    }))
  }

  async records(q: RecordQuery = {}): Promise<UsageRecord[]> {
    const { where, params } = filter(q)
    const rows = this.db.prepare(`SELECT * FROM usage_records ${where} ORDER BY ts, id LIMIT ?`).all(...params, q.limit ?? -1) as RecordRow[]
    return rows.map((r) => ({
      ts: r.ts, requestId: r.request_id, consumer: r.consumer, product: r.product, model: r.model, backend: r.backend, status: r.status,
      promptTokens: r.prompt_tokens, completionTokens: r.completion_tokens, cachedTokens: r.cached_tokens, reasoningTokens: r.reasoning_tokens,
      costUsd: r.cost_usd, latencyMs: r.latency_ms, ttftMs: r.ttft_ms, cacheHit: r.cache_hit === 1, stream: r.stream === 1, attempts: r.attempts,
      errorCode: r.error_code, savedUsd: r.saved_usd ?? 0,
      ...(r.bytes_in !== null && r.bytes_in !== undefined ? { bytesIn: r.bytes_in } : {}),
      ...(r.bytes_out !== null && r.bytes_out !== undefined ? { bytesOut: r.bytes_out } : {}),
    }))
  }

  async messages(q: RecordQuery = {}): Promise<MessageRecord[]> {
    const { where, params } = filter(q)
    const rows = this.db.prepare(`SELECT * FROM message_logs ${where} ORDER BY ts, id LIMIT ?`).all(...params, q.limit ?? -1) as MessageRow[]
    return rows.map((m) => ({
      ts: m.ts, requestId: m.request_id, consumer: m.consumer, product: m.product, model: m.model, prompt: m.prompt, completion: m.completion,
      truncated: m.truncated === 1,
    }))
  }

  async ping(): Promise<boolean> {
    try {
      this.db.prepare('SELECT 1').get()
      return true
    } catch {
      return false
    }
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close()
  }
}

function filter(q: RecordQuery): { where: string; params: unknown[] } {
  const parts: string[] = []
  const params: unknown[] = []
  if (q.since != null) { parts.push('ts >= ?'); params.push(q.since) }
  if (q.until != null) { parts.push('ts < ?'); params.push(q.until) }
  if (q.requestIds) {
    parts.push(`request_id IN (SELECT value FROM json_each(?))`)
    params.push(JSON.stringify(q.requestIds))
  }
  return { where: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params }
}
