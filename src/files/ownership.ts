import type { LedgerConfig } from '../config/schema.ts'

/**
 * Who created which file or batch: the gateway's only source of truth for access to `/v1/files` and
 * `/v1/batches`, since the backend holds everyone's objects under the gateway's one key. Kept beside the
 * ledger (its SQLite file, its PostgreSQL database) so every replica agrees; in memory without a ledger.
 */
export type OwnedKind = 'file' | 'batch'

export interface OwnedObject {
  readonly kind: OwnedKind
  /** The backend's id (`file-…`, `batch_…`), bounded by the caller. */
  readonly id: string
  readonly backend: string
  readonly consumer: string
  readonly createdAt: number
  /** For a batch's output (or error) file: the batch it belongs to (its usage is recorded when it is read). */
  readonly batchId: string | null
}

export interface OwnershipStore {
  /** Records an owner; the first owner of an id keeps it (a second put of the same id is ignored). */
  put(o: OwnedObject): Promise<void>
  get(kind: OwnedKind, backend: string, id: string): Promise<OwnedObject | null>
  /** Ids of one kind the consumer owns at the backend. */
  idsOf(kind: OwnedKind, backend: string, consumer: string): Promise<Set<string>>
  remove(kind: OwnedKind, backend: string, id: string): Promise<void>
  /** True exactly once per batch (across processes): whoever gets true records the batch's usage. */
  claimBatchUsage(backend: string, batchId: string, at: number): Promise<boolean>
  close(): Promise<void>
}

const keyOf = (kind: OwnedKind, backend: string, id: string) => `${kind}\u0000${backend}\u0000${id}`

export class MemoryOwnershipStore implements OwnershipStore {
  private readonly items = new Map<string, OwnedObject>()
  private readonly claimed = new Set<string>()

  async put(o: OwnedObject): Promise<void> {
    const k = keyOf(o.kind, o.backend, o.id)
    if (!this.items.has(k)) this.items.set(k, o)
  }

  async get(kind: OwnedKind, backend: string, id: string): Promise<OwnedObject | null> {
    return this.items.get(keyOf(kind, backend, id)) ?? null
  }

  async idsOf(kind: OwnedKind, backend: string, consumer: string): Promise<Set<string>> {
    const out = new Set<string>()
    for (const o of this.items.values()) if (o.kind === kind && o.backend === backend && o.consumer === consumer) out.add(o.id)
    return out
  }

  async remove(kind: OwnedKind, backend: string, id: string): Promise<void> {
    this.items.delete(keyOf(kind, backend, id))
  }

  async claimBatchUsage(backend: string, batchId: string): Promise<boolean> {
    const k = `${backend}\u0000${batchId}`
    if (this.claimed.has(k)) return false
    this.claimed.add(k)
    return true
  }

  async close(): Promise<void> {}
}

/** The store the ledger config implies; the engine's client is imported only when configured. */
export async function createOwnershipStore(ledger: LedgerConfig): Promise<OwnershipStore> {
  if (ledger.type === 'sqlite') {
    const { SqliteOwnershipStore } = await import('./ownership-sqlite.ts')
    return new SqliteOwnershipStore(ledger.path)
  }
  if (ledger.type === 'postgres') {
    const { PostgresOwnershipStore } = await import('./ownership-postgres.ts')
    return PostgresOwnershipStore.connect(ledger.url, ledger.tablePrefix)
  }
  return new MemoryOwnershipStore()
}
