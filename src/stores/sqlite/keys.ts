import Database from 'better-sqlite3'
import type { KeyRecord, KeyStore } from '../keys.ts'
import { openSqlite } from './open.ts'

interface Row { id: string; consumer_id: string; digest: string; prefix: string; label: string | null; created_at: string; revoked_at: string | null }

const toRecord = (r: Row): KeyRecord => ({
  id: r.id, consumerId: r.consumer_id, digest: r.digest, prefix: r.prefix, label: r.label, createdAt: r.created_at, revokedAt: r.revoked_at,
})

/** Keys in the embedded SQLite database (the ledger's file by default). */
export class SqliteKeyStore implements KeyStore {
  private readonly db: Database.Database

  constructor(path: string) {
    this.db = openSqlite(path)
    this.db.exec(`CREATE TABLE IF NOT EXISTS consumer_keys (
      id TEXT PRIMARY KEY, consumer_id TEXT NOT NULL, digest TEXT NOT NULL UNIQUE, prefix TEXT NOT NULL,
      label TEXT, created_at TEXT NOT NULL, revoked_at TEXT)`)
  }

  async add(r: KeyRecord): Promise<void> {
    this.db.prepare('INSERT INTO consumer_keys (id, consumer_id, digest, prefix, label, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(r.id, r.consumerId, r.digest, r.prefix, r.label, r.createdAt, r.revokedAt)
  }

  async list(consumerId?: string): Promise<KeyRecord[]> {
    const rows = consumerId
      ? this.db.prepare('SELECT * FROM consumer_keys WHERE consumer_id = ? ORDER BY created_at').all(consumerId)
      : this.db.prepare('SELECT * FROM consumer_keys ORDER BY created_at').all()
    return (rows as Row[]).map(toRecord)
  }

  async revoke(id: string): Promise<boolean> {
    const res = this.db.prepare('UPDATE consumer_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id)
    return res.changes > 0
  }

  async revokeAt(id: string, at: string): Promise<boolean> {
    return this.db.prepare('UPDATE consumer_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes > 0
  }

  async removeConsumer(consumerId: string): Promise<number> {
    return this.db.prepare('DELETE FROM consumer_keys WHERE consumer_id = ?').run(consumerId).changes
  }

  async findByDigest(digest: string): Promise<KeyRecord | null> {
    const row = this.db.prepare('SELECT * FROM consumer_keys WHERE digest = ?').get(digest) as Row | undefined
    return row ? toRecord(row) : null
  }

  async close(): Promise<void> {
    this.db.close()
  }
}
