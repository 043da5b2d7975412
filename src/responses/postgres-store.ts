import pg from 'pg'
import { ownTablePool, runLockedDdl } from '../stores/postgres/locked-ddl.ts'
import { fromRow } from './sqlite-store.ts'
import { rowBody, type ResponseStore, type StoredResponse } from './store.ts'

/**
 * Responses in the ledger's PostgreSQL database, shared by every replica: a follow-up that lands on another
 * process continues the same conversation. The table is created under an advisory lock (two processes starting
 * together would race on CREATE TABLE).
 */
export class PostgresResponseStore implements ResponseStore {
  private readonly ready: Promise<void>
  private readonly table: string

  constructor(private readonly pool: pg.Pool, tablePrefix = 'sluice_') {
    this.table = `${tablePrefix}responses`
    this.ready = this.createTable()
    this.ready.catch(() => {})
  }

  static connect(url: string, tablePrefix?: string): PostgresResponseStore {
    return new PostgresResponseStore(ownTablePool(url), tablePrefix)
  }

  private async createTable(): Promise<void> {
    await runLockedDdl(this.pool, this.table, [
      `CREATE TABLE IF NOT EXISTS ${this.table} (
        id TEXT PRIMARY KEY, consumer_id TEXT NOT NULL, previous_id TEXT, backend_id TEXT, model TEXT NOT NULL,
        created_at BIGINT NOT NULL, expires_at BIGINT NOT NULL, body TEXT NOT NULL)`,
      `CREATE INDEX IF NOT EXISTS ${this.table}_expires ON ${this.table} (expires_at)`,
    ])
  }

  async put(r: StoredResponse): Promise<void> {
    await this.ready
    await this.pool.query(`INSERT INTO ${this.table} (id, consumer_id, previous_id, backend_id, model, created_at, expires_at, body) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)
      ON CONFLICT (id) DO UPDATE SET body = EXCLUDED.body, expires_at = EXCLUDED.expires_at`,
    [r.id, r.consumerId, r.previousId, r.backendId, r.model, r.createdAt, r.expiresAt, rowBody(r)])
  }

  async get(id: string, consumerId: string, now: number): Promise<StoredResponse | null> {
    await this.ready
    const res = await this.pool.query(`SELECT * FROM ${this.table} WHERE id = $1 AND consumer_id = $2 AND expires_at > $3`, [id, consumerId, now])
    return res.rows.length ? fromRow(res.rows[0]) : null
  }

  async chain(id: string, consumerId: string, now: number, maxLength: number): Promise<StoredResponse[]> {
    await this.ready
    const res = await this.pool.query(`WITH RECURSIVE chain(id, previous_id, depth) AS (
        SELECT id, previous_id, 0 FROM ${this.table} WHERE id = $1 AND consumer_id = $2 AND expires_at > $3
        UNION ALL
        SELECT r.id, r.previous_id, c.depth + 1 FROM ${this.table} r JOIN chain c ON r.id = c.previous_id
        WHERE c.depth + 1 < $4 AND r.consumer_id = $2 AND r.expires_at > $3)
      SELECT r.* FROM chain JOIN ${this.table} r ON r.id = chain.id ORDER BY chain.depth DESC`, [id, consumerId, now, maxLength])
    return res.rows.map(fromRow)
  }

  async delete(id: string, consumerId: string): Promise<boolean> {
    await this.ready
    const res = await this.pool.query(`DELETE FROM ${this.table} WHERE id = $1 AND consumer_id = $2`, [id, consumerId])
    return (res.rowCount ?? 0) > 0
  }

  async purge(now: number): Promise<number> {
    await this.ready
    const res = await this.pool.query(`DELETE FROM ${this.table} WHERE expires_at <= $1`, [now])
    return res.rowCount ?? 0
  }

  async close(): Promise<void> {
    await this.pool.end()
  }
}
