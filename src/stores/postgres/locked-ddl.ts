import type pg from 'pg'

/**
 * Runs schema statements (CREATE TABLE/INDEX IF NOT EXISTS…) in one transaction under an advisory lock named
 * `lockName`: two processes starting together would otherwise race on CREATE TABLE and one would fail
 * (PostgreSQL's IF NOT EXISTS is not safe against a concurrent creator of the same catalog entry).
 */
export async function runLockedDdl(pool: pg.Pool, lockName: string, statements: readonly string[]): Promise<void> {
  const client = await pool.connect()
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockName])
    for (const sql of statements) await client.query(sql)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.release()
  }
}
