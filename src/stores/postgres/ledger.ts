import pg from 'pg'
import { NO_KEY, roundCost, type LedgerStore, type MessageRecord, type RecordQuery, type UsageGroup, type UsageQuery, type UsageRecord, type UsageRow } from '../ledger.ts'

export interface PostgresLedgerOptions {
  /** Prepended to every table name, so several gateways (or test runs) can share one database. */
  readonly tablePrefix?: string
}

const PREFIX = /^[A-Za-z_][A-Za-z0-9_]{0,30}$/

/** Migrations, applied in order at start under an advisory lock (several gateways may start at once). */
const migrations = (p: string): readonly string[] => [
  `CREATE TABLE ${p}usage_records (
     id BIGSERIAL PRIMARY KEY,
     ts TIMESTAMPTZ NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT, model TEXT, backend TEXT,
     status SMALLINT NOT NULL, prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
     cached_tokens BIGINT NOT NULL, reasoning_tokens BIGINT NOT NULL, cost_usd DOUBLE PRECISION,
     latency_ms INTEGER NOT NULL, ttft_ms INTEGER, cache_hit BOOLEAN NOT NULL, stream BOOLEAN NOT NULL,
     attempts SMALLINT NOT NULL, error_code TEXT);
   CREATE INDEX ${p}usage_records_ts ON ${p}usage_records (ts);
   CREATE INDEX ${p}usage_records_request_id ON ${p}usage_records (request_id);
   CREATE TABLE ${p}message_logs (
     id BIGSERIAL PRIMARY KEY,
     ts TIMESTAMPTZ NOT NULL, request_id TEXT NOT NULL, consumer TEXT, product TEXT, model TEXT,
     prompt TEXT, completion TEXT, truncated BOOLEAN NOT NULL);
   CREATE INDEX ${p}message_logs_ts ON ${p}message_logs (ts);
   CREATE INDEX ${p}message_logs_request_id ON ${p}message_logs (request_id);`,
  // Idempotent inserts (issue 18): one row per record id, so a replayed journal or a batch retried after a
  // lost acknowledgement never duplicates. Rows written before have no record id (NULLs never conflict).
  `ALTER TABLE ${p}usage_records ADD COLUMN record_id TEXT;
   CREATE UNIQUE INDEX ${p}usage_records_record_id ON ${p}usage_records (record_id);
   ALTER TABLE ${p}message_logs ADD COLUMN record_id TEXT;
   CREATE UNIQUE INDEX ${p}message_logs_record_id ON ${p}message_logs (record_id);`,
]

/**
 * Columns added after the versioned migrations with ADD COLUMN IF NOT EXISTS (not numbered), so they are
 * safe whichever order they meet other branches' migrations in; run under the same advisory lock.
 */
const addedColumns = (p: string): readonly string[] => [
  `ALTER TABLE ${p}usage_records ADD COLUMN IF NOT EXISTS saved_usd DOUBLE PRECISION`,
  `ALTER TABLE ${p}usage_records ADD COLUMN IF NOT EXISTS bytes_in BIGINT`,
  `ALTER TABLE ${p}usage_records ADD COLUMN IF NOT EXISTS bytes_out BIGINT`,
]

const GROUP_SQL: Record<UsageGroup, string> = {
  consumer: `COALESCE(consumer, '${NO_KEY}')`,
  model: `COALESCE(model, '${NO_KEY}')`,
  backend: `COALESCE(backend, '${NO_KEY}')`,
  day: `to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD')`,
}

interface RecordRow {
  ts: Date; request_id: string; consumer: string | null; product: string | null; model: string | null; backend: string | null
  status: number; prompt_tokens: string; completion_tokens: string; cached_tokens: string; reasoning_tokens: string
  cost_usd: number | null; latency_ms: number; ttft_ms: number | null; cache_hit: boolean; stream: boolean; attempts: number; error_code: string | null
  saved_usd: number | null
  bytes_in: string | null
  bytes_out: string | null
}
interface MessageRow { ts: Date; request_id: string; consumer: string | null; product: string | null; model: string | null; prompt: string | null; completion: string | null; truncated: boolean }

/** The shared ledger on PostgreSQL. Batches go in as one `INSERT … SELECT FROM unnest(…)`: one statement whatever the batch size. */
export class PostgresLedgerStore implements LedgerStore {
  readonly type = 'postgres' as const
  private readonly p: string
  private ready: Promise<void> | null = null

  constructor(private readonly pool: pg.Pool, opts: PostgresLedgerOptions = {}, private readonly ownsPool = false) {
    const prefix = opts.tablePrefix ?? 'sluice_'
    if (!PREFIX.test(prefix)) throw new Error(`ledger tablePrefix "${prefix}" must be letters, digits and "_" (at most 31)`)
    this.p = prefix
    // Kicked off at start; a database that is down now is migrated on the first write that reaches it.
    void this.migrated().catch(() => {})
  }

  static connect(url: string, opts: PostgresLedgerOptions = {}): PostgresLedgerStore {
    const pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5_000, query_timeout: 30_000, idleTimeoutMillis: 30_000 })
    // An idle client losing its server (restart, outage) must not crash the process: the next query reconnects.
    pool.on('error', () => {})
    return new PostgresLedgerStore(pool, opts, true)
  }

  /** Applies pending migrations once; after a failure the next call tries again. */
  migrated(): Promise<void> {
    if (!this.ready) {
      this.ready = this.migrate()
      this.ready.catch(() => { this.ready = null })
    }
    return this.ready
  }

  private async migrate(): Promise<void> {
    const client = await this.pool.connect()
    // A checked-out client has no pool listener: without ours, a connection cut mid-migration would crash the process.
    const onError = () => {}
    client.on('error', onError)
    let failed: Error | undefined
    try {
      await client.query('BEGIN')
      await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`${this.p}ledger_migrations`])
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.p}ledger_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`)
      const { rows } = await client.query<{ v: number | null }>(`SELECT MAX(version) AS v FROM ${this.p}ledger_migrations`)
      const list = migrations(this.p)
      for (let v = (rows[0]?.v ?? 0) + 1; v <= list.length; v++) {
        await client.query(list[v - 1]!)
        await client.query(`INSERT INTO ${this.p}ledger_migrations (version) VALUES ($1)`, [v])
      }
      for (const sql of addedColumns(this.p)) await client.query(sql)
      await client.query('COMMIT')
    } catch (err) {
      failed = err as Error
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.off('error', onError)
      client.release(failed) // a failed client is discarded, not returned to the pool
    }
  }

  async append(records: readonly UsageRecord[]): Promise<void> {
    if (!records.length) return
    await this.migrated()
    const col = <T>(f: (r: UsageRecord) => T): T[] => records.map(f)
    await this.pool.query(
      `INSERT INTO ${this.p}usage_records (ts, request_id, consumer, product, model, backend, status, prompt_tokens, completion_tokens,
         cached_tokens, reasoning_tokens, cost_usd, latency_ms, ttft_ms, cache_hit, stream, attempts, error_code, record_id, saved_usd, bytes_in, bytes_out)
       SELECT to_timestamp(ts / 1000.0), request_id, consumer, product, model, backend, status, prompt_tokens, completion_tokens,
         cached_tokens, reasoning_tokens, cost_usd, latency_ms, ttft_ms, cache_hit, stream, attempts, error_code, record_id, saved_usd, bytes_in, bytes_out
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::smallint[], $8::bigint[], $9::bigint[],
         $10::bigint[], $11::bigint[], $12::float8[], $13::int[], $14::int[], $15::bool[], $16::bool[], $17::smallint[], $18::text[], $19::text[], $20::float8[],
         $21::bigint[], $22::bigint[])
         AS t(ts, request_id, consumer, product, model, backend, status, prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens,
              cost_usd, latency_ms, ttft_ms, cache_hit, stream, attempts, error_code, record_id, saved_usd, bytes_in, bytes_out)
       ON CONFLICT (record_id) DO NOTHING`,
      [col((r) => r.ts), col((r) => r.requestId), col((r) => r.consumer), col((r) => r.product), col((r) => r.model), col((r) => r.backend),
        col((r) => r.status), col((r) => r.promptTokens), col((r) => r.completionTokens), col((r) => r.cachedTokens), col((r) => r.reasoningTokens),
        col((r) => r.costUsd), col((r) => r.latencyMs), col((r) => r.ttftMs), col((r) => r.cacheHit), col((r) => r.stream), col((r) => r.attempts),
        col((r) => r.errorCode), col((r) => r.recordId ?? r.requestId), col((r) => r.savedUsd ?? 0),
        col((r) => r.bytesIn ?? null), col((r) => r.bytesOut ?? null)],
    )
  }

  async appendMessages(records: readonly MessageRecord[]): Promise<void> {
    if (!records.length) return
    await this.migrated()
    const col = <T>(f: (r: MessageRecord) => T): T[] => records.map(f)
    await this.pool.query(
      `INSERT INTO ${this.p}message_logs (ts, request_id, consumer, product, model, prompt, completion, truncated, record_id)
       SELECT to_timestamp(ts / 1000.0), request_id, consumer, product, model, prompt, completion, truncated, record_id
       FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::bool[], $9::text[])
         AS t(ts, request_id, consumer, product, model, prompt, completion, truncated, record_id)
       ON CONFLICT (record_id) DO NOTHING`,
      [col((m) => m.ts), col((m) => m.requestId), col((m) => m.consumer), col((m) => m.product), col((m) => m.model), col((m) => m.prompt),
        col((m) => m.completion), col((m) => m.truncated), col((m) => m.recordId ?? m.requestId)],
    )
  }

  async usage(q: UsageQuery): Promise<UsageRow[]> {
    await this.migrated()
    const key = GROUP_SQL[q.by]
    const { rows } = await this.pool.query<{ key: string; requests: string; p: string; c: string; cost: number; hits: string; errors: string; saved: number }>(
      `SELECT ${key} AS key, COUNT(*) AS requests, SUM(prompt_tokens) AS p, SUM(completion_tokens) AS c,
         COALESCE(SUM(cost_usd), 0)::float8 AS cost, SUM(CASE WHEN cache_hit THEN 1 ELSE 0 END) AS hits,
         SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors, COALESCE(SUM(saved_usd), 0)::float8 AS saved
       FROM ${this.p}usage_records WHERE ts >= to_timestamp($1 / 1000.0) AND ts < to_timestamp($2 / 1000.0) GROUP BY 1 ORDER BY 1`,
      [q.since ?? 0, q.until ?? 253402300799000 /* 9999-12-31 */],
    )
    return rows.map((r) => {
      const p = Number(r.p)
      const c = Number(r.c)
      return { key: r.key, requests: Number(r.requests), promptTokens: p, completionTokens: c, totalTokens: p + c, costUsd: roundCost(r.cost), cacheHits: Number(r.hits), errors: Number(r.errors), savedUsd: roundCost(r.saved) }
    })
  }

  async records(q: RecordQuery = {}): Promise<UsageRecord[]> {
    await this.migrated()
    const { where, params } = filter(q)
    const { rows } = await this.pool.query<RecordRow>(`SELECT * FROM ${this.p}usage_records ${where} ORDER BY ts, id ${q.limit ? `LIMIT ${Math.floor(q.limit)}` : ''}`, params)
    return rows.map((r) => ({
      ts: r.ts.getTime(), requestId: r.request_id, consumer: r.consumer, product: r.product, model: r.model, backend: r.backend, status: r.status,
      promptTokens: Number(r.prompt_tokens), completionTokens: Number(r.completion_tokens), cachedTokens: Number(r.cached_tokens),
      reasoningTokens: Number(r.reasoning_tokens), costUsd: r.cost_usd, latencyMs: r.latency_ms, ttftMs: r.ttft_ms, cacheHit: r.cache_hit,
      stream: r.stream, attempts: r.attempts, errorCode: r.error_code, savedUsd: r.saved_usd ?? 0,
      ...(r.bytes_in !== null && r.bytes_in !== undefined ? { bytesIn: Number(r.bytes_in) } : {}),
      ...(r.bytes_out !== null && r.bytes_out !== undefined ? { bytesOut: Number(r.bytes_out) } : {}),
    }))
  }

  async messages(q: RecordQuery = {}): Promise<MessageRecord[]> {
    await this.migrated()
    const { where, params } = filter(q)
    const { rows } = await this.pool.query<MessageRow>(`SELECT * FROM ${this.p}message_logs ${where} ORDER BY ts, id ${q.limit ? `LIMIT ${Math.floor(q.limit)}` : ''}`, params)
    return rows.map((m) => ({
      ts: m.ts.getTime(), requestId: m.request_id, consumer: m.consumer, product: m.product, model: m.model, prompt: m.prompt, completion: m.completion,
      truncated: m.truncated,
    }))
  }

  async ping(): Promise<boolean> {
    try {
      await this.pool.query('SELECT 1')
      return true
    } catch {
      return false
    }
  }

  /** Drops this prefix's tables (tests clean up their per-run prefix with it). */
  async dropTables(): Promise<void> {
    await this.pool.query(`DROP TABLE IF EXISTS ${this.p}usage_records, ${this.p}message_logs, ${this.p}ledger_migrations`)
    this.ready = null
  }

  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end()
  }
}

function filter(q: RecordQuery): { where: string; params: unknown[] } {
  const parts: string[] = []
  const params: unknown[] = []
  if (q.since != null) { params.push(q.since); parts.push(`ts >= to_timestamp($${params.length} / 1000.0)`) }
  if (q.until != null) { params.push(q.until); parts.push(`ts < to_timestamp($${params.length} / 1000.0)`) }
  if (q.requestIds) { params.push(q.requestIds); parts.push(`request_id = ANY($${params.length}::text[])`) }
  return { where: parts.length ? `WHERE ${parts.join(' AND ')}` : '', params }
}
