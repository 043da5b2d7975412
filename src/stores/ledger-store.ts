import type { LedgerConfig } from '../config/schema.ts'
import type { LedgerStore } from './ledger.ts'

/**
 * The ledger store a config names, or null for `ledger: { type: none }` (no records kept). Each engine's
 * client is imported only when it is configured, so a SQLite gateway never loads `pg` and the reverse.
 */
export async function createLedgerStore(config: LedgerConfig, opts: { writerThread?: boolean } = {}): Promise<LedgerStore | null> {
  if (config.type === 'sqlite') {
    // A serving gateway writes from a worker thread (a commit can fsync); a one-off reader (the CLI) needs none.
    if (opts.writerThread) {
      const { ThreadedSqliteLedgerStore } = await import('./sqlite/threaded-ledger.ts')
      return new ThreadedSqliteLedgerStore(config.path)
    }
    const { SqliteLedgerStore } = await import('./sqlite/ledger.ts')
    return new SqliteLedgerStore(config.path)
  }
  if (config.type === 'postgres') {
    const { PostgresLedgerStore } = await import('./postgres/ledger.ts')
    return PostgresLedgerStore.connect(config.url, { tablePrefix: config.tablePrefix })
  }
  return null
}
