import pg from 'pg'
import { ownTablePool, runLockedDdl } from './locked-ddl.ts'
import type { KeyRecord, KeyStore } from '../keys.ts'

interface Row { id: string; consumer_id: string; digest: string; prefix: string; label: string | null; created_at: Date; revoked_at: Date | null }

const toRecord = (r: Row): KeyRecord => ({
  id: r.id, consumerId: r.consumer_id, digest: r.digest, prefix: r.prefix, label: r.label,
  createdAt: r.created_at.toISOString(), revokedAt: r.revoked_at ? r.revoked_at.toISOString() : null,
})

/** Keys in PostgreSQL, shared by every gateway process. */
export class PostgresKeyStore implements KeyStore {
  private ready: Promise<void>

  constructor(private readonly pool: pg.Pool, private readonly ownsPool = false) {
    this.ready = this.createTable()
    this.ready.catch(() => {})
  }

  /**
   * Two processes starting together would race on CREATE TABLE IF NOT EXISTS (PostgreSQL then fails one of
   * them on its catalog's unique index, and every key call of that process after it): the creation runs
   * under a transaction-scoped advisory lock, so the second waits for the first and finds the table.
   */
  private async createTable(): Promise<void> {
    await runLockedDdl(this.pool, 'sluice_consumer_keys', [
      `CREATE TABLE IF NOT EXISTS sluice_consumer_keys (
        id TEXT PRIMARY KEY, consumer_id TEXT NOT NULL, digest TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
        label TEXT, created_at TIMESTAMPTZ NOT NULL, revoked_at TIMESTAMPTZ)`,
    ])
  }

  static connect(url: string): PostgresKeyStore {
    return new PostgresKeyStore(ownTablePool(url), true)
  }

  async add(r: KeyRecord): Promise<void> {
    await this.ready
    await this.pool.query('INSERT INTO sluice_consumer_keys (id, consumer_id, digest, prefix, label, created_at, revoked_at) VALUES ($1,$2,$3,$4,$5,$6,$7)',
      [r.id, r.consumerId, r.digest, r.prefix, r.label, r.createdAt, r.revokedAt])
  }

  async list(consumerId?: string): Promise<KeyRecord[]> {
    await this.ready
    const res = consumerId
      ? await this.pool.query<Row>('SELECT * FROM sluice_consumer_keys WHERE consumer_id = $1 ORDER BY created_at', [consumerId])
      : await this.pool.query<Row>('SELECT * FROM sluice_consumer_keys ORDER BY created_at')
    return res.rows.map(toRecord)
  }

  async revoke(id: string): Promise<boolean> {
    await this.ready
    const res = await this.pool.query('UPDATE sluice_consumer_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id])
    return (res.rowCount ?? 0) > 0
  }

  async revokeAt(id: string, at: string): Promise<boolean> {
    await this.ready
    const res = await this.pool.query('UPDATE sluice_consumer_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL', [id, at])
    return (res.rowCount ?? 0) > 0
  }

  async removeConsumer(consumerId: string): Promise<number> {
    await this.ready
    const res = await this.pool.query('DELETE FROM sluice_consumer_keys WHERE consumer_id = $1', [consumerId])
    return res.rowCount ?? 0
  }

  async findByDigest(digest: string): Promise<KeyRecord | null> {
    await this.ready
    const res = await this.pool.query<Row>('SELECT * FROM sluice_consumer_keys WHERE digest = $1', [digest])
    return res.rows[0] ? toRecord(res.rows[0]) : null
  }

  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end()
  }
}
