import pg from 'pg'
import { ownTablePool, runLockedDdl } from '../stores/postgres/locked-ddl.ts'
import type { OwnedKind, OwnedObject, OwnershipStore } from './ownership.ts'

interface Row { kind: OwnedKind; id: string; backend: string; consumer: string; created_at: string; batch_id: string | null }

/** Owners in the ledger's PostgreSQL database, shared by every replica (tables under the ledger's prefix). */
export class PostgresOwnershipStore implements OwnershipStore {
  private readonly ready: Promise<void>
  private readonly objects: string
  private readonly usage: string

  constructor(private readonly pool: pg.Pool, prefix = 'sluice_', private readonly ownsPool = false) {
    this.objects = `${prefix}owned_objects`
    this.usage = `${prefix}batch_usage`
    this.ready = this.createTables()
    this.ready.catch(() => {})
  }

  static connect(url: string, prefix?: string): PostgresOwnershipStore {
    return new PostgresOwnershipStore(ownTablePool(url), prefix ?? 'sluice_', true)
  }

  /** Under an advisory lock: replicas starting together must not race on CREATE TABLE (stores/postgres/locked-ddl.ts). */
  private async createTables(): Promise<void> {
    await runLockedDdl(this.pool, this.objects, [
      `CREATE TABLE IF NOT EXISTS ${this.objects} (
        kind TEXT NOT NULL, backend TEXT NOT NULL, id TEXT NOT NULL, consumer TEXT NOT NULL, created_at BIGINT NOT NULL, batch_id TEXT,
        PRIMARY KEY (kind, backend, id))`,
      `CREATE INDEX IF NOT EXISTS ${this.objects}_consumer ON ${this.objects} (consumer, kind, backend)`,
      `CREATE TABLE IF NOT EXISTS ${this.usage} (backend TEXT NOT NULL, batch_id TEXT NOT NULL, recorded_at BIGINT NOT NULL, PRIMARY KEY (backend, batch_id))`,
    ])
  }

  async put(o: OwnedObject): Promise<void> {
    await this.ready
    await this.pool.query(`INSERT INTO ${this.objects} (kind, backend, id, consumer, created_at, batch_id) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
      [o.kind, o.backend, o.id, o.consumer, o.createdAt, o.batchId])
  }

  async get(kind: OwnedKind, backend: string, id: string): Promise<OwnedObject | null> {
    await this.ready
    const r = (await this.pool.query<Row>(`SELECT * FROM ${this.objects} WHERE kind = $1 AND backend = $2 AND id = $3`, [kind, backend, id])).rows[0]
    return r ? { kind: r.kind, id: r.id, backend: r.backend, consumer: r.consumer, createdAt: Number(r.created_at), batchId: r.batch_id } : null
  }

  async idsOf(kind: OwnedKind, backend: string, consumer: string): Promise<Set<string>> {
    await this.ready
    const res = await this.pool.query<{ id: string }>(`SELECT id FROM ${this.objects} WHERE consumer = $1 AND kind = $2 AND backend = $3`, [consumer, kind, backend])
    return new Set(res.rows.map((r) => r.id))
  }

  async remove(kind: OwnedKind, backend: string, id: string): Promise<void> {
    await this.ready
    await this.pool.query(`DELETE FROM ${this.objects} WHERE kind = $1 AND backend = $2 AND id = $3`, [kind, backend, id])
  }

  async claimBatchUsage(backend: string, batchId: string, at: number): Promise<boolean> {
    await this.ready
    const res = await this.pool.query(`INSERT INTO ${this.usage} (backend, batch_id, recorded_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`, [backend, batchId, at])
    return (res.rowCount ?? 0) === 1
  }

  async close(): Promise<void> {
    if (this.ownsPool) await this.pool.end().catch(() => {})
  }
}
