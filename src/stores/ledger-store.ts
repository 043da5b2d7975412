import type { LedgerConfig } from '../config/schema.ts'
import type { LedgerStore } from './ledger.ts'
import { PostgresLedgerStore } from './postgres/ledger.ts'
import { SqliteLedgerStore } from './sqlite/ledger.ts'

/** The ledger store a config names, or null for `ledger: { type: none }` (no records kept). */
export function createLedgerStore(config: LedgerConfig): LedgerStore | null {
  if (config.type === 'sqlite') return new SqliteLedgerStore(config.path)
  if (config.type === 'postgres') return PostgresLedgerStore.connect(config.url, { tablePrefix: config.tablePrefix })
  return null
}
