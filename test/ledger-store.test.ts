import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { randomBytes } from 'node:crypto'
import { after } from 'node:test'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import { ThreadedSqliteLedgerStore } from '../src/stores/sqlite/threaded-ledger.ts'
import { PostgresLedgerStore } from '../src/stores/postgres/ledger.ts'
import { SqliteKeyStore } from '../src/stores/sqlite/keys.ts'
import { serviceAvailable } from './helpers/gateway.ts'
import { ledgerStoreContract } from './contract/ledger-store.ts'

const dir = mkdtempSync(join(tmpdir(), 'sluice-ledger-'))
after(() => rmSync(dir, { recursive: true, force: true }))
let n = 0

ledgerStoreContract('sqlite', async () => {
  const path = join(dir, `ledger-${n++}.db`)
  // The key store shares the file in production: open it first so both schemas live side by side.
  const keys = new SqliteKeyStore(path)
  const store = new SqliteLedgerStore(path)
  return { store, reopen: async () => new SqliteLedgerStore(path), dispose: async () => { await store.close(); await keys.close() } }
})

ledgerStoreContract('sqlite, written from a worker thread', async () => {
  const path = join(dir, `ledger-${n++}.db`)
  const keys = new SqliteKeyStore(path)
  const store = new ThreadedSqliteLedgerStore(path)
  return { store, reopen: async () => new ThreadedSqliteLedgerStore(path), dispose: async () => { await store.close(); await keys.close() } }
})

const PG_URL = 'postgres://postgres@127.0.0.1:5432/test'
const pgUp = await serviceAvailable('postgres')
ledgerStoreContract('postgres', async () => {
  // A table prefix of its own per test: concurrent runs (and other engineers' tests) never collide.
  const tablePrefix = `t_${randomBytes(5).toString('hex')}_`
  const store = PostgresLedgerStore.connect(PG_URL, { tablePrefix })
  await store.migrated()
  return {
    store,
    reopen: async () => PostgresLedgerStore.connect(PG_URL, { tablePrefix }),
    dispose: async () => { await store.dropTables(); await store.close() },
  }
}, { skip: !pgUp })
