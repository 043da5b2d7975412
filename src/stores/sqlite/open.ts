import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import Database from 'better-sqlite3'

/**
 * Opens (creating its folder) one of the gateway's SQLite files the way every store shares them: WAL, so
 * the ledger writer, key lookups and management reads don't block each other, and a busy timeout for the
 * moments two connections write at once.
 */
export function openSqlite(path: string): Database.Database {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new Database(path)
  db.pragma('journal_mode = WAL')
  db.pragma('busy_timeout = 5000')
  return db
}
