import type { LedgerConfig } from '../config/schema.ts'
import type { KeyStore } from './keys.ts'
import { MemoryKeyStore } from './memory/keys.ts'

/**
 * Run-time keys live beside the ledger: in its SQLite file, its PostgreSQL database, or in memory without
 * one. The engine's client is imported only when configured.
 */
export async function createKeyStore(ledger: LedgerConfig): Promise<KeyStore> {
  if (ledger.type === 'sqlite') {
    const { SqliteKeyStore } = await import('./sqlite/keys.ts')
    return new SqliteKeyStore(ledger.path)
  }
  if (ledger.type === 'postgres') {
    const { PostgresKeyStore } = await import('./postgres/keys.ts')
    return PostgresKeyStore.connect(ledger.url)
  }
  return new MemoryKeyStore()
}
