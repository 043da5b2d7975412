import type Database from 'better-sqlite3'
import { openSqlite } from '../stores/sqlite/open.ts'
import type { OwnedKind, OwnedObject, OwnershipStore } from './ownership.ts'

interface Row { kind: OwnedKind; id: string; backend: string; consumer: string; created_at: number; batch_id: string | null }

/**
 * Owners in the ledger's SQLite file (its own tables). Every statement is one indexed row lookup or write,
 * cheap enough for the request path; WAL and the busy timeout (open.ts) let it share the file with the
 * ledger's writer thread.
 */
export class SqliteOwnershipStore implements OwnershipStore {
  private readonly db: Database.Database
  private readonly insert: Database.Statement
  private readonly select: Database.Statement
  private readonly selectIds: Database.Statement
  private readonly del: Database.Statement
  private readonly claim: Database.Statement

  constructor(path: string) {
    this.db = openSqlite(path)
    this.db.exec(`CREATE TABLE IF NOT EXISTS sluice_owned_objects (
        kind TEXT NOT NULL, backend TEXT NOT NULL, id TEXT NOT NULL, consumer TEXT NOT NULL, created_at INTEGER NOT NULL, batch_id TEXT,
        PRIMARY KEY (kind, backend, id));
      CREATE INDEX IF NOT EXISTS sluice_owned_objects_consumer ON sluice_owned_objects (consumer, kind, backend);
      CREATE TABLE IF NOT EXISTS sluice_batch_usage (backend TEXT NOT NULL, batch_id TEXT NOT NULL, recorded_at INTEGER NOT NULL, PRIMARY KEY (backend, batch_id));`)
    this.insert = this.db.prepare('INSERT INTO sluice_owned_objects (kind, backend, id, consumer, created_at, batch_id) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING')
    this.select = this.db.prepare('SELECT * FROM sluice_owned_objects WHERE kind = ? AND backend = ? AND id = ?')
    this.selectIds = this.db.prepare('SELECT id FROM sluice_owned_objects WHERE consumer = ? AND kind = ? AND backend = ?').pluck()
    this.del = this.db.prepare('DELETE FROM sluice_owned_objects WHERE kind = ? AND backend = ? AND id = ?')
    this.claim = this.db.prepare('INSERT INTO sluice_batch_usage (backend, batch_id, recorded_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING')
  }

  async put(o: OwnedObject): Promise<void> {
    this.insert.run(o.kind, o.backend, o.id, o.consumer, o.createdAt, o.batchId)
  }

  async get(kind: OwnedKind, backend: string, id: string): Promise<OwnedObject | null> {
    const r = this.select.get(kind, backend, id) as Row | undefined
    return r ? { kind: r.kind, id: r.id, backend: r.backend, consumer: r.consumer, createdAt: r.created_at, batchId: r.batch_id } : null
  }

  async idsOf(kind: OwnedKind, backend: string, consumer: string): Promise<Set<string>> {
    return new Set(this.selectIds.all(consumer, kind, backend) as string[])
  }

  async remove(kind: OwnedKind, backend: string, id: string): Promise<void> {
    this.del.run(kind, backend, id)
  }

  async claimBatchUsage(backend: string, batchId: string, at: number): Promise<boolean> {
    return this.claim.run(backend, batchId, at).changes === 1
  }

  async close(): Promise<void> {
    this.db.close()
  }
}
