import type { LedgerConfig } from '../config/schema.ts'
import { MemoryResponseStore, type ResponseStore } from './store.ts'

/**
 * The Responses store beside the ledger: the ledger's SQLite file, or its PostgreSQL database (shared by
 * replicas); in process when the ledger is `none`. Each engine's client is loaded only when configured.
 */
export async function createResponseStore(ledger: LedgerConfig): Promise<ResponseStore> {
  if (ledger.type === 'sqlite') {
    const { SqliteResponseStore } = await import('./sqlite-store.ts')
    return new SqliteResponseStore(ledger.path)
  }
  if (ledger.type === 'postgres') {
    const { PostgresResponseStore } = await import('./postgres-store.ts')
    return PostgresResponseStore.connect(ledger.url, ledger.tablePrefix)
  }
  return new MemoryResponseStore()
}
