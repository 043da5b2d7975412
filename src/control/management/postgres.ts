import pg from 'pg'
import { runLockedDdl } from '../../stores/postgres/locked-ddl.ts'
import type { Suspension } from '../../finops/types.ts'
import type { AuditEntry, AuditQuery, ManagedConsumer, ManagedProduct, ManagedState, ManagementStore } from './store.ts'

/** Management state in PostgreSQL, shared by every replica; writes and their audit entries in one transaction. */
export class PostgresManagementStore implements ManagementStore {
  readonly kind = 'postgres' as const
  private schema: Promise<void> | null = null
  private readonly t: { consumers: string; products: string; suspensions: string; audit: string }

  constructor(private readonly pool: pg.Pool, private readonly prefix = 'sluice_') {
    this.t = { consumers: `${prefix}managed_consumers`, products: `${prefix}managed_products`, suspensions: `${prefix}consumer_suspensions`, audit: `${prefix}admin_audit` }
    void this.ready()
  }

  /**
   * The tables, created once under an advisory lock: replicas starting together against a fresh database
   * would otherwise race on CREATE TABLE IF NOT EXISTS and one of them would fail. A failed attempt (the
   * database down at start) is forgotten, so the next call tries again instead of failing for ever.
   */
  private ready(): Promise<void> {
    if (this.schema === null) {
      const attempt = runLockedDdl(this.pool, `${this.prefix}management_schema`, [
        `CREATE TABLE IF NOT EXISTS ${this.t.consumers} (id TEXT PRIMARY KEY, product TEXT, metadata JSONB NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)`,
        `CREATE TABLE IF NOT EXISTS ${this.t.products} (id TEXT PRIMARY KEY, models JSONB, policies JSONB NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL)`,
        `CREATE TABLE IF NOT EXISTS ${this.t.suspensions} (consumer_id TEXT PRIMARY KEY, until BIGINT, reason TEXT NOT NULL, by TEXT NOT NULL, at BIGINT NOT NULL)`,
        `CREATE TABLE IF NOT EXISTS ${this.t.audit} (seq BIGSERIAL PRIMARY KEY, ts TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, before JSONB, after JSONB)`,
      ])
      // Also marks the rejection handled, so the constructor's unawaited start cannot become an unhandled one.
      attempt.catch(() => { if (this.schema === attempt) this.schema = null })
      this.schema = attempt
    }
    return this.schema
  }

  static connect(url: string, prefix?: string): PostgresManagementStore {
    const pool = new pg.Pool({ connectionString: url, max: 4 })
    // An idle connection dropped by the server (a restart, an outage) must not crash the process: the next query reconnects.
    pool.on('error', () => {})
    return new PostgresManagementStore(pool, prefix)
  }

  async load(): Promise<ManagedState> {
    await this.ready()
    const [c, p, s] = await Promise.all([
      this.pool.query(`SELECT * FROM ${this.t.consumers} ORDER BY id`),
      this.pool.query(`SELECT * FROM ${this.t.products} ORDER BY id`),
      this.pool.query(`SELECT * FROM ${this.t.suspensions} ORDER BY consumer_id`),
    ])
    return {
      consumers: c.rows.map((r) => ({ id: r.id, product: r.product, metadata: r.metadata, createdAt: r.created_at, updatedAt: r.updated_at })),
      products: p.rows.map((r) => ({ id: r.id, models: r.models, policies: r.policies, createdAt: r.created_at, updatedAt: r.updated_at })),
      suspensions: s.rows.map((r) => ({ consumerId: r.consumer_id, until: r.until === null ? null : Number(r.until), reason: r.reason, by: r.by, at: Number(r.at) })),
    }
  }

  private async tx(fn: (c: pg.PoolClient) => Promise<boolean>, audit: AuditEntry): Promise<boolean> {
    await this.ready()
    const client = await this.pool.connect()
    try {
      await client.query('BEGIN')
      const ok = await fn(client)
      if (ok) await this.insertAudit(client, audit)
      await client.query('COMMIT')
      return ok
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {})
      throw err
    } finally {
      client.release()
    }
  }

  private async insertAudit(c: pg.PoolClient | pg.Pool, e: AuditEntry): Promise<void> {
    const j = (v: unknown) => (v === null || v === undefined ? null : JSON.stringify(v))
    await c.query(`INSERT INTO ${this.t.audit} (ts, actor, action, target, before, after) VALUES ($1,$2,$3,$4,$5,$6)`, [e.ts, e.actor, e.action, e.target, j(e.before), j(e.after)])
  }

  putConsumer(c: ManagedConsumer, audit: AuditEntry, expectNew: boolean): Promise<boolean> {
    const conflict = expectNew ? 'DO NOTHING' : 'DO UPDATE SET product = EXCLUDED.product, metadata = EXCLUDED.metadata, updated_at = EXCLUDED.updated_at'
    return this.tx(async (cl) => ((await cl.query(`INSERT INTO ${this.t.consumers} (id, product, metadata, created_at, updated_at) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) ${conflict}`,
      [c.id, c.product, JSON.stringify(c.metadata), c.createdAt, c.updatedAt])).rowCount ?? 0) > 0, audit)
  }

  deleteConsumer(id: string, audit: AuditEntry): Promise<boolean> {
    return this.tx(async (cl) => {
      const gone = ((await cl.query(`DELETE FROM ${this.t.consumers} WHERE id = $1`, [id])).rowCount ?? 0) > 0
      if (gone) await cl.query(`DELETE FROM ${this.t.suspensions} WHERE consumer_id = $1`, [id])
      return gone
    }, audit)
  }

  putProduct(p: ManagedProduct, audit: AuditEntry, expectNew: boolean): Promise<boolean> {
    const conflict = expectNew ? 'DO NOTHING' : 'DO UPDATE SET models = EXCLUDED.models, policies = EXCLUDED.policies, updated_at = EXCLUDED.updated_at'
    return this.tx(async (cl) => ((await cl.query(`INSERT INTO ${this.t.products} (id, models, policies, created_at, updated_at) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (id) ${conflict}`,
      [p.id, p.models === null ? null : JSON.stringify(p.models), JSON.stringify(p.policies), p.createdAt, p.updatedAt])).rowCount ?? 0) > 0, audit)
  }

  deleteProduct(id: string, audit: AuditEntry): Promise<boolean> {
    return this.tx(async (cl) => ((await cl.query(`DELETE FROM ${this.t.products} WHERE id = $1`, [id])).rowCount ?? 0) > 0, audit)
  }

  async putSuspension(s: Suspension, audit: AuditEntry): Promise<void> {
    await this.tx(async (cl) => {
      await cl.query(`INSERT INTO ${this.t.suspensions} (consumer_id, until, reason, by, at) VALUES ($1,$2,$3,$4,$5) ON CONFLICT (consumer_id) DO UPDATE SET until = EXCLUDED.until, reason = EXCLUDED.reason, by = EXCLUDED.by, at = EXCLUDED.at`,
        [s.consumerId, s.until, s.reason, s.by, s.at])
      return true
    }, audit)
  }

  deleteSuspension(consumerId: string, audit: AuditEntry): Promise<boolean> {
    return this.tx(async (cl) => ((await cl.query(`DELETE FROM ${this.t.suspensions} WHERE consumer_id = $1`, [consumerId])).rowCount ?? 0) > 0, audit)
  }

  async appendAudit(e: AuditEntry): Promise<void> {
    await this.ready()
    await this.insertAudit(this.pool, e)
  }

  async audit(q: AuditQuery): Promise<AuditEntry[]> {
    await this.ready()
    const where: string[] = []
    const args: unknown[] = []
    if (q.target !== undefined) { args.push(q.target); where.push(`target = $${args.length}`) }
    if (q.after !== undefined) { args.push(q.after); where.push(`seq > $${args.length}`) }
    args.push(q.limit ?? 100)
    const res = await this.pool.query(`SELECT * FROM ${this.t.audit} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${args.length}`, args)
    return res.rows.map((r) => ({ seq: Number(r.seq), ts: r.ts, actor: r.actor, action: r.action, target: r.target, before: r.before, after: r.after }))
  }

  /** The pool, for LISTEN/NOTIFY on the same database. */
  get pgPool(): pg.Pool {
    return this.pool
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
