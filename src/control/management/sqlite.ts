import Database from 'better-sqlite3'
import type { Suspension } from '../../finops/types.ts'
import type { AuditEntry, AuditQuery, ManagedConsumer, ManagedProduct, ManagedState, ManagementStore } from './store.ts'
import { openSqlite } from '../../stores/sqlite/open.ts'

/**
 * Management state in the ledger's SQLite file. Several gateway processes on one machine may share the
 * file (WAL mode); each write and its audit entry commit in one transaction.
 */
export class SqliteManagementStore implements ManagementStore {
  readonly kind = 'sqlite' as const
  private readonly db: Database.Database

  constructor(path: string) {
    this.db = openSqlite(path)
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS managed_consumers (id TEXT PRIMARY KEY, product TEXT, metadata TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS managed_products (id TEXT PRIMARY KEY, models TEXT, policies TEXT NOT NULL, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS consumer_suspensions (consumer_id TEXT PRIMARY KEY, until INTEGER, reason TEXT NOT NULL, by TEXT NOT NULL, at INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS admin_audit (seq INTEGER PRIMARY KEY AUTOINCREMENT, ts TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, target TEXT NOT NULL, before TEXT, after TEXT);
      CREATE INDEX IF NOT EXISTS admin_audit_target ON admin_audit (target, seq);`)
  }

  async load(): Promise<ManagedState> {
    const consumers = (this.db.prepare('SELECT * FROM managed_consumers ORDER BY id').all() as any[]).map((r) => ({
      id: r.id, product: r.product, metadata: JSON.parse(r.metadata), createdAt: r.created_at, updatedAt: r.updated_at,
    }))
    const products = (this.db.prepare('SELECT * FROM managed_products ORDER BY id').all() as any[]).map((r) => ({
      id: r.id, models: r.models === null ? null : JSON.parse(r.models), policies: JSON.parse(r.policies), createdAt: r.created_at, updatedAt: r.updated_at,
    }))
    const suspensions = (this.db.prepare('SELECT * FROM consumer_suspensions ORDER BY consumer_id').all() as any[]).map((r) => ({
      consumerId: r.consumer_id, until: r.until, reason: r.reason, by: r.by, at: r.at,
    }))
    return { consumers, products, suspensions }
  }

  private tx<T>(fn: () => T, audit: AuditEntry | null): T {
    return this.db.transaction(() => {
      const r = fn()
      if (audit && r !== false) this.insertAudit(audit)
      return r
    })()
  }

  private insertAudit(e: AuditEntry): void {
    this.db.prepare('INSERT INTO admin_audit (ts, actor, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?)')
      .run(e.ts, e.actor, e.action, e.target, e.before === null || e.before === undefined ? null : JSON.stringify(e.before), e.after === null || e.after === undefined ? null : JSON.stringify(e.after))
  }

  async putConsumer(c: ManagedConsumer, audit: AuditEntry, expectNew: boolean): Promise<boolean> {
    return this.tx(() => {
      const sql = expectNew
        ? 'INSERT OR IGNORE INTO managed_consumers (id, product, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)'
        : 'INSERT OR REPLACE INTO managed_consumers (id, product, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?)'
      return this.db.prepare(sql).run(c.id, c.product, JSON.stringify(c.metadata), c.createdAt, c.updatedAt).changes > 0
    }, audit)
  }

  async deleteConsumer(id: string, audit: AuditEntry): Promise<boolean> {
    return this.tx(() => {
      const gone = this.db.prepare('DELETE FROM managed_consumers WHERE id = ?').run(id).changes > 0
      if (gone) this.db.prepare('DELETE FROM consumer_suspensions WHERE consumer_id = ?').run(id)
      return gone
    }, audit)
  }

  async putProduct(p: ManagedProduct, audit: AuditEntry, expectNew: boolean): Promise<boolean> {
    return this.tx(() => {
      const sql = expectNew
        ? 'INSERT OR IGNORE INTO managed_products (id, models, policies, created_at, updated_at) VALUES (?, ?, ?, ?, ?)'
        : 'INSERT OR REPLACE INTO managed_products (id, models, policies, created_at, updated_at) VALUES (?, ?, ?, ?, ?)'
      return this.db.prepare(sql).run(p.id, p.models === null ? null : JSON.stringify(p.models), JSON.stringify(p.policies), p.createdAt, p.updatedAt).changes > 0
    }, audit)
  }

  async deleteProduct(id: string, audit: AuditEntry): Promise<boolean> {
    return this.tx(() => this.db.prepare('DELETE FROM managed_products WHERE id = ?').run(id).changes > 0, audit)
  }

  async putSuspension(s: Suspension, audit: AuditEntry): Promise<void> {
    this.tx(() => {
      this.db.prepare('INSERT OR REPLACE INTO consumer_suspensions (consumer_id, until, reason, by, at) VALUES (?, ?, ?, ?, ?)').run(s.consumerId, s.until, s.reason, s.by, s.at)
      return true
    }, audit)
  }

  async deleteSuspension(consumerId: string, audit: AuditEntry): Promise<boolean> {
    return this.tx(() => this.db.prepare('DELETE FROM consumer_suspensions WHERE consumer_id = ?').run(consumerId).changes > 0, audit)
  }

  async appendAudit(e: AuditEntry): Promise<void> {
    this.insertAudit(e)
  }

  async audit(q: AuditQuery): Promise<AuditEntry[]> {
    const where: string[] = []
    const args: unknown[] = []
    if (q.target !== undefined) { where.push('target = ?'); args.push(q.target) }
    if (q.after !== undefined) { where.push('seq > ?'); args.push(q.after) }
    const rows = this.db.prepare(`SELECT * FROM admin_audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`).all(...args, q.limit ?? 100) as any[]
    return rows.map((r) => ({ seq: r.seq, ts: r.ts, actor: r.actor, action: r.action, target: r.target, before: r.before === null ? null : JSON.parse(r.before), after: r.after === null ? null : JSON.parse(r.after) }))
  }

  async close(): Promise<void> {
    this.db.close()
  }
}
