import type Database from 'better-sqlite3'
import { openSqlite } from '../stores/sqlite/open.ts'
import { rowBody, type ResponseStore, type RowBody, type StoredResponse } from './store.ts'

interface Row { id: string; consumer_id: string; previous_id: string | null; backend_id: string | null; model: string; created_at: number; expires_at: number; body: string }

export function fromRow(r: Row): StoredResponse {
  const b = JSON.parse(r.body) as RowBody
  return {
    id: r.id, consumerId: r.consumer_id, previousId: r.previous_id, backendId: r.backend_id, model: r.model,
    createdAt: Number(r.created_at), expiresAt: Number(r.expires_at), input: b.input, output: b.output, response: b.response,
  }
}

/**
 * Responses in the ledger's SQLite file (its own table, its own connection). Rows are small and bounded
 * (responses.maxStoredBytes), so each statement takes well under a millisecond; writes run after the answer.
 */
export class SqliteResponseStore implements ResponseStore {
  private readonly db: Database.Database
  private readonly insert: Database.Statement
  private readonly one: Database.Statement
  private readonly walk: Database.Statement
  private readonly remove: Database.Statement
  private readonly expire: Database.Statement

  constructor(path: string) {
    this.db = openSqlite(path)
    this.db.exec(`CREATE TABLE IF NOT EXISTS sluice_responses (
      id TEXT PRIMARY KEY, consumer_id TEXT NOT NULL, previous_id TEXT, backend_id TEXT, model TEXT NOT NULL,
      created_at INTEGER NOT NULL, expires_at INTEGER NOT NULL, body TEXT NOT NULL)`)
    this.db.exec('CREATE INDEX IF NOT EXISTS sluice_responses_expires ON sluice_responses (expires_at)')
    this.insert = this.db.prepare('INSERT OR REPLACE INTO sluice_responses (id, consumer_id, previous_id, backend_id, model, created_at, expires_at, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)')
    this.one = this.db.prepare('SELECT * FROM sluice_responses WHERE id = ? AND consumer_id = ? AND expires_at > ?')
    // The conversation in one statement: from the response back through previous_id, newest first, bounded.
    this.walk = this.db.prepare(`WITH RECURSIVE chain(id, previous_id, depth) AS (
        SELECT id, previous_id, 0 FROM sluice_responses WHERE id = ? AND consumer_id = ? AND expires_at > ?
        UNION ALL
        SELECT r.id, r.previous_id, c.depth + 1 FROM sluice_responses r JOIN chain c ON r.id = c.previous_id
        WHERE c.depth + 1 < ? AND r.consumer_id = ? AND r.expires_at > ?)
      SELECT r.* FROM chain JOIN sluice_responses r ON r.id = chain.id ORDER BY chain.depth DESC`)
    this.remove = this.db.prepare('DELETE FROM sluice_responses WHERE id = ? AND consumer_id = ?')
    this.expire = this.db.prepare('DELETE FROM sluice_responses WHERE expires_at <= ?')
  }

  async put(r: StoredResponse): Promise<void> {
    this.insert.run(r.id, r.consumerId, r.previousId, r.backendId, r.model, r.createdAt, r.expiresAt, rowBody(r))
  }

  async get(id: string, consumerId: string, now: number): Promise<StoredResponse | null> {
    const row = this.one.get(id, consumerId, now) as Row | undefined
    return row ? fromRow(row) : null
  }

  async chain(id: string, consumerId: string, now: number, maxLength: number): Promise<StoredResponse[]> {
    return (this.walk.all(id, consumerId, now, maxLength, consumerId, now) as Row[]).map(fromRow)
  }

  async delete(id: string, consumerId: string): Promise<boolean> {
    return this.remove.run(id, consumerId).changes > 0
  }

  async purge(now: number): Promise<number> {
    return this.expire.run(now).changes
  }

  async close(): Promise<void> {
    this.db.close()
  }
}
