import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

/** How long an open waits for another connection's lock, for statements and for the switch to WAL alike. */
const BUSY_TIMEOUT_MS = 5000

/**
 * Each connection's page cache, in KiB: SQLite's own default (2,000 KiB). better-sqlite3 compiles SQLite with
 * 16,000 KiB instead, and a connection fills it as its file grows, so the ledger's writer alone held ~16 MiB of
 * pages once a saturated gateway had written a few hundred thousand rows (governed's peak RSS 169–178 MiB
 * against 151–161 with this; BENCHMARKS.md, "Issue 16: the ledger's page cache"). The gateway's SQLite work is
 * batched inserts and indexed point reads; a page that misses the cache is read back from the operating system's
 * file cache, which holds it anyway, so a process keeping a second copy only costs memory (the writer's CPU per
 * request did not move). An in-memory database is not bounded by it: its pages are its storage.
 */
const PAGE_CACHE_KIB = 2000

/**
 * Opens (creating its folder) one of the gateway's SQLite files the way every store shares them: WAL, so
 * the ledger writer, key lookups and management reads don't block each other, a busy timeout for the
 * moments two connections write at once, and SQLite's default page cache rather than better-sqlite3's.
 */
export function openSqlite(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  // The timeout is given at open, so it covers every statement from the first on.
  const db = new Database(path, { timeout: BUSY_TIMEOUT_MS })
  try {
    db.pragma(`cache_size = -${PAGE_CACHE_KIB}`)
    if (path === ':memory:') db.pragma('journal_mode = WAL')
    else enterWal(db, path)
  } catch (err) {
    db.close()
    throw err
  }
  return db
}

/**
 * Puts the file in WAL mode. SQLite does not run the busy handler for `PRAGMA journal_mode = WAL` when another
 * connection holds a write lock on a file still in rollback mode: it fails at once with SQLITE_BUSY. That is
 * exactly the moment several processes (or a process's stores) open a fresh file together and one of them is
 * converting it, so the switch is retried with a short backoff within the busy timeout. WAL persists in the file,
 * so after the first open the mode is read, found, and nothing is locked at all.
 */
function enterWal(db: Database.Database, path: string): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS
  for (let pauseMs = 2; ; pauseMs = Math.min(pauseMs * 2, 50)) {
    try {
      if (db.pragma('journal_mode', { simple: true }) === 'wal') return
      // When the mode cannot be changed SQLite answers with the old one rather than an error.
      if (db.pragma('journal_mode = WAL', { simple: true }) === 'wal') return
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY') throw err
    }
    if (Date.now() >= deadline) throw Object.assign(new Error(`database is locked: ${path} could not be switched to WAL mode within ${BUSY_TIMEOUT_MS} ms`), { code: 'SQLITE_BUSY' })
    // A start-up wait, once per store open and only while another connection converts the file.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, pauseMs)
  }
}
