import pg from 'pg'
import { runLockedDdl } from './locked-ddl.ts'
import type { VectorEntry, VectorMatch, VectorStore } from '../../cache/types.ts'

export interface PostgresVectorOptions {
  /** Table name prefix (default `sluice_semantic_cache`); one table per vector dimension: `<prefix>_d<N>`. */
  readonly table?: string
  /** Schema holding the tables (default: the connection's search_path). */
  readonly schema?: string
  /** Most entries per dimension table; past it the soonest-expiring go first (default: unbounded). */
  readonly maxEntries?: number
  /** Minimum time between two background purges of expired rows (default 60 s). */
  readonly purgeEveryMs?: number
  /** End the pool on `close()`: true only for a pool made for this store alone (default false). */
  readonly ownsPool?: boolean
  /**
   * HNSW candidate list size per lookup (`hnsw.ef_search`, 1..1000; default 100, pgvector's own is 40): higher
   * finds the true nearest neighbour more often in large tables, at some latency. Measured on PGlite at
   * 100k × 512 random vectors with pgvector's 40: 63% top-1 recall (see BENCHMARKS.md, semantic cache lookup latency).
   */
  readonly efSearch?: number
}

const IDENT = /^[a-z_][a-z0-9_]{0,47}$/
/** pgvector's HNSW index supports at most 2000 dimensions. */
const MAX_DIMS = 2000

function checkIdent(kind: string, name: string): string {
  if (!IDENT.test(name)) throw new Error(`postgres vector store: ${kind} "${name}" must match ${IDENT} (lower-case letters, digits, _)`)
  return name
}

/** pgvector's text form: "[x,y,…]". Non-finite components are refused (pgvector would reject them too). */
export function toVectorLiteral(v: Float32Array): string {
  let s = '['
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!
    if (!Number.isFinite(x)) throw new Error('postgres vector store: vector has a non-finite component')
    s += (i ? ',' : '') + x
  }
  return s + ']'
}

export function fromVectorLiteral(text: string): Float32Array {
  const body = text.trim().replace(/^\[|\]$/g, '')
  return body ? Float32Array.from(body.split(','), Number) : new Float32Array(0)
}

interface Row { id: string; partition: string; embedding: string; prompt: string; payload: string; expires_at: string; distance: number | string }

/**
 * The distributed semantic-cache store on PostgreSQL + pgvector. One table per embedding dimension (the
 * `vector(N)` column and its index need a fixed N, and a deployment may run two embedders), created on first
 * use with an HNSW cosine index and a (partition, expires_at) index. A lookup is
 * `ORDER BY embedding <=> $v LIMIT k` restricted to the caller's partition and to unexpired rows, so entries
 * of another partition are never candidates. With HNSW, pgvector applies such filters after the index scan;
 * `hnsw.iterative_scan = strict_order` (pgvector ≥ 0.8) keeps scanning until k rows pass them, and on older
 * pgvector a wide `hnsw.ef_search` narrows the gap — either way a filtered-out neighbour costs a miss, never
 * a wrong answer. Expired rows are purged in the background, at most once per `purgeEveryMs`, by the latest
 * clock a caller passed to `nearest` (lookups go by the caller's clock, so purges must too).
 */
export class PostgresVectorStore implements VectorStore {
  private readonly prefix: string
  private readonly schema: string | null
  private readonly tables = new Map<number, Promise<string>>()
  private readonly tuned = new WeakSet<pg.PoolClient>()
  private extension: Promise<string> | null = null
  private readonly lastPurge = new Map<string, number>()
  private readonly background = new Set<Promise<void>>()
  private closed = false
  private readonly efSearch: number
  /** The latest `now` a caller gave: purges go by the caller's clock, as lookups do, never by ours. */
  private clock = 0

  constructor(private readonly pool: pg.Pool, private readonly opts: PostgresVectorOptions = {}) {
    this.prefix = checkIdent('table', opts.table ?? 'sluice_semantic_cache')
    this.schema = opts.schema ? checkIdent('schema', opts.schema) : null
    this.efSearch = Math.min(1000, Math.max(1, Math.floor(opts.efSearch ?? 100)))
  }

  /**
   * A store with its own small pool. Lookups sit on the request path, so a query that takes longer than
   * `queryTimeoutMs` (default 2 s) fails and the caller bypasses the cache rather than wait.
   */
  static connect(url: string, opts: Omit<PostgresVectorOptions, 'ownsPool'> & { readonly poolSize?: number; readonly queryTimeoutMs?: number } = {}): PostgresVectorStore {
    const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 4, connectionTimeoutMillis: 5_000, query_timeout: opts.queryTimeoutMs ?? 2_000, idleTimeoutMillis: 30_000 })
    // An idle connection dropped by the server is reported here; without a listener it would crash the process.
    pool.on('error', () => {})
    return new PostgresVectorStore(pool, { ...opts, ownsPool: true })
  }

  private qualified(name: string): string {
    return this.schema ? `"${this.schema}"."${name}"` : `"${name}"`
  }

  /** The extension's version, after making sure it is installed (needs the privilege the first time). */
  private ensureExtension(): Promise<string> {
    this.extension ??= (async () => {
      await runLockedDdl(this.pool, 'sluice_vector_extension', ['CREATE EXTENSION IF NOT EXISTS vector'])
      const r = await this.pool.query<{ extversion: string }>("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
      return r.rows[0]?.extversion ?? '0'
    })()
    this.extension.catch(() => { this.extension = null })
    return this.extension
  }

  /** The table for vectors of `dims` dimensions, created (with its indexes) the first time it is needed. */
  private table(dims: number): Promise<string> {
    if (!Number.isInteger(dims) || dims < 1 || dims > MAX_DIMS) return Promise.reject(new Error(`postgres vector store: ${dims} dimensions is outside 1..${MAX_DIMS}`))
    let t = this.tables.get(dims)
    if (!t) {
      t = (async () => {
        await this.ensureExtension()
        const name = `${this.prefix}_d${dims}`
        const q = this.qualified(name)
        // Under an advisory lock: replicas meeting a new dimension at once would race on CREATE TABLE/INDEX
        // IF NOT EXISTS, and PostgreSQL fails one of them (see locked-ddl.ts).
        await runLockedDdl(this.pool, `${this.schema ?? ''}.${name}_schema`, [
          ...(this.schema ? [`CREATE SCHEMA IF NOT EXISTS "${this.schema}"`] : []),
          `CREATE TABLE IF NOT EXISTS ${q} (
          id text PRIMARY KEY,
          partition text NOT NULL,
          embedding vector(${dims}) NOT NULL,
          prompt text NOT NULL,
          payload text NOT NULL,
          expires_at bigint NOT NULL
        )`,
          `CREATE INDEX IF NOT EXISTS "${name}_hnsw" ON ${q} USING hnsw (embedding vector_cosine_ops)`,
          `CREATE INDEX IF NOT EXISTS "${name}_part" ON ${q} (partition, expires_at)`,
        ])
        return q
      })()
      t.catch(() => this.tables.delete(dims))
      this.tables.set(dims, t)
    }
    return t
  }

  /** Every dimension table of this store that exists, from the catalog (other processes may have made some). */
  private async existingTables(): Promise<string[]> {
    const r = await this.pool.query<{ name: string }>(
      `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE c.relkind = 'r' AND c.relname ~ $1 AND ${this.schema ? 'n.nspname = $2' : 'n.nspname = ANY (current_schemas(false))'}`,
      this.schema ? [`^${this.prefix}_d[0-9]+$`, this.schema] : [`^${this.prefix}_d[0-9]+$`],
    )
    return r.rows.map((x) => this.qualified(x.name))
  }

  async upsert(entry: VectorEntry): Promise<void> {
    const q = await this.table(entry.vector.length)
    await this.pool.query(
      `INSERT INTO ${q} (id, partition, embedding, prompt, payload, expires_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO UPDATE SET partition = EXCLUDED.partition, embedding = EXCLUDED.embedding,
         prompt = EXCLUDED.prompt, payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at`,
      [entry.id, entry.partition, toVectorLiteral(entry.vector), entry.prompt, entry.payload, Math.floor(entry.expiresAt)],
    )
    this.maybePurge(q)
  }

  async nearest(partition: string, vector: Float32Array, k: number, now: number): Promise<VectorMatch[]> {
    if (!(k >= 1)) return []
    const q = await this.table(vector.length)
    if (now > this.clock) this.clock = now
    this.maybePurge(q)
    const version = await this.ensureExtension()
    const client = await this.pool.connect()
    try {
      if (!this.tuned.has(client)) {
        // Session settings, once per connection: they only widen HNSW scans, harmless to other users of a shared pool.
        if (versionAtLeast(version, 0, 8)) {
          await client.query('SET hnsw.iterative_scan = strict_order')
          await client.query(`SET hnsw.ef_search = ${this.efSearch}`)
        } else {
          await client.query('SET hnsw.ef_search = 1000')
        }
        this.tuned.add(client)
      }
      const r = await client.query<Row>(
        `SELECT id, partition, embedding::text AS embedding, prompt, payload, expires_at, embedding <=> $1 AS distance
         FROM ${q} WHERE partition = $2 AND expires_at > $3 ORDER BY embedding <=> $1 LIMIT $4`,
        [toVectorLiteral(vector), partition, Math.floor(now), Math.floor(k)],
      )
      return r.rows.map((row) => ({
        entry: { id: row.id, partition: row.partition, vector: fromVectorLiteral(row.embedding), prompt: row.prompt, payload: row.payload, expiresAt: Number(row.expires_at) },
        distance: Number(row.distance),
      }))
    } finally {
      client.release()
    }
  }

  async delete(id: string): Promise<void> {
    for (const q of await this.existingTables()) await this.pool.query(`DELETE FROM ${q} WHERE id = $1`, [id])
  }

  async size(): Promise<number> {
    let n = 0
    for (const q of await this.existingTables()) {
      const r = await this.pool.query<{ n: string }>(`SELECT count(*) AS n FROM ${q}`)
      n += Number(r.rows[0]!.n)
    }
    return n
  }

  async close(): Promise<void> {
    this.closed = true
    await Promise.allSettled([...this.background])
    if (this.opts.ownsPool) await this.pool.end()
  }

  /** Deletes expired rows (and the overflow past `maxEntries`) off the caller's path, at most once a period. */
  private maybePurge(q: string): void {
    const every = this.opts.purgeEveryMs ?? 60_000
    const now = this.clock
    if (this.closed || now === 0 || now - (this.lastPurge.get(q) ?? 0) < every) return
    this.lastPurge.set(q, now)
    const job = (async () => {
      await this.pool.query(`DELETE FROM ${q} WHERE expires_at <= $1`, [now])
      const max = this.opts.maxEntries
      if (max !== undefined && max >= 0) {
        await this.pool.query(`DELETE FROM ${q} WHERE id IN (SELECT id FROM ${q} ORDER BY expires_at DESC OFFSET $1)`, [Math.floor(max)])
      }
    })().catch(() => { /* best effort: the next period tries again */ })
    this.background.add(job)
    void job.finally(() => this.background.delete(job))
  }
}

function versionAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split('.').map(Number)
  return a > major || (a === major && b >= minor)
}
