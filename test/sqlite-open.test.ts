import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import Database from 'better-sqlite3'
import { openSqlite } from '../src/stores/sqlite/open.ts'

// Two gateway processes starting together on one fresh SQLite file (CI saw "sluice: database is locked" at start-up):
// while one connection converts the file to WAL it holds a write lock in rollback mode, and SQLite fails another
// connection's `PRAGMA journal_mode = WAL` at once, busy timeout or not. The holder here is another thread, as it
// would be another process; it keeps a write lock for HOLD_MS after it says it has it.
const HOLD_MS = 300
const dir = mkdtempSync(join(tmpdir(), 'sluice-sqlite-open-'))
after(() => rmSync(dir, { recursive: true, force: true }))

const holderSource = `
const { workerData, parentPort } = require('node:worker_threads')
const Database = require(workerData.driver)
const db = new Database(workerData.path)
db.exec('CREATE TABLE IF NOT EXISTS held (x)')
db.exec('BEGIN IMMEDIATE')
db.exec('INSERT INTO held VALUES (1)')
parentPort.postMessage('holding')
setTimeout(() => { db.exec('COMMIT'); db.close(); parentPort.postMessage('released') }, workerData.holdMs)
`

/** Starts a thread holding a rollback-mode write lock on `path`; resolves once it holds it. */
async function holdWriteLock(path: string): Promise<{ released: Promise<void> }> {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3')
  const w = new Worker(holderSource, { eval: true, workerData: { path, driver, holdMs: HOLD_MS } })
  // The thread says 'holding', then 'released'; `once` rejects if it fails instead.
  assert.deepEqual(await once(w, 'message'), ['holding'])
  const released = once(w, 'message').then(async ([m]) => {
    assert.equal(m, 'released')
    await w.terminate()
  })
  return { released }
}

describe('opening a SQLite file another connection is converting', () => {
  it('a bare switch to WAL fails at once while the lock is held; openSqlite waits it out and opens in WAL', async () => {
    const path = join(dir, 'fresh.db')
    const lock = await holdWriteLock(path)

    // The refusal this guards against, while the lock is surely held.
    const bare = new Database(path, { timeout: 0 })
    assert.throws(() => bare.pragma('journal_mode = WAL'), { code: 'SQLITE_BUSY' })
    bare.close()

    // The same open through openSqlite succeeds, in WAL, and sees the holder's committed row.
    const db = openSqlite(path)
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal')
      assert.deepEqual(db.prepare('SELECT x FROM held').all(), [{ x: 1 }])
    } finally {
      db.close()
    }
    await lock.released
  })

  it('a file already in WAL opens without taking a lock, even while another connection writes', async () => {
    const path = join(dir, 'wal.db')
    const first = openSqlite(path)
    first.exec('CREATE TABLE t (x)')
    first.exec('BEGIN IMMEDIATE')
    first.exec('INSERT INTO t VALUES (1)')
    // With the writer mid-transaction a second connection still opens (reading the mode takes no write lock).
    const second = openSqlite(path)
    try {
      assert.equal(second.pragma('journal_mode', { simple: true }), 'wal')
      assert.deepEqual(second.prepare('SELECT x FROM t').all(), [], 'the uncommitted row is not seen')
      first.exec('COMMIT')
      assert.deepEqual(second.prepare('SELECT x FROM t').all(), [{ x: 1 }])
    } finally {
      second.close()
      first.close()
    }
  })

  it('an in-memory database opens as before', () => {
    const db = openSqlite(':memory:')
    assert.equal(db.pragma('journal_mode', { simple: true }), 'memory')
    db.close()
  })
})

describe('the page cache of a gateway connection', () => {
  // better-sqlite3 compiles SQLite with a 16,000 KiB page cache per connection; the gateway's connections take
  // SQLite's own default of 2,000 KiB (a negative cache_size is KiB), so a long-written ledger holds ~2 MiB of
  // pages per connection, not ~16.
  it('is 2,000 KiB on a gateway connection and 16,000 KiB on a bare better-sqlite3 one', () => {
    const path = join(dir, 'cache.db')
    const bare = new Database(path)
    assert.equal(bare.pragma('cache_size', { simple: true }), -16000)
    const db = openSqlite(path)
    assert.equal(db.pragma('cache_size', { simple: true }), -2000)
    db.close()
    bare.close()
  })
})
