import type { LedgerConfig } from '../config/schema.ts'
import type { KeyStore } from './keys.ts'
import { MemoryKeyStore } from './memory/keys.ts'
import { PostgresKeyStore } from './postgres/keys.ts'
import { SqliteKeyStore } from './sqlite/keys.ts'

/** Run-time keys live beside the ledger: in its SQLite file, its PostgreSQL database, or in memory without one. */
export function createKeyStore(ledger: LedgerConfig): KeyStore {
  if (ledger.type === 'sqlite') return new SqliteKeyStore(ledger.path)
  if (ledger.type === 'postgres') return PostgresKeyStore.connect(ledger.url)
  return new MemoryKeyStore()
}
