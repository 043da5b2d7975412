import pg from 'pg'

/**
 * Runs schema statements (CREATE TABLE/INDEX IF NOT EXISTS…) in one transaction under an advisory lock named
 * `lockName`: two processes starting together would otherwise race on CREATE TABLE and one would fail
 * (PostgreSQL's IF NOT EXISTS is not safe against a concurrent creator of the same catalog entry).
 */
export async function runLockedDdl(pool: pg.Pool, lockName: string, statements: readonly string[]): Promise<void> {
  const client = await pool.connect()
  // A connection cut while the client is checked out is also emitted as 'error' on it: the failing query
  // already reports it, so the event must not become an uncaught exception (a database outage at start-up).
  const onError = () => {}
  client.on('error', onError)
  try {
    await client.query('BEGIN')
    await client.query('SELECT pg_advisory_xact_lock(hashtext($1))', [lockName])
    for (const sql of statements) await client.query(sql)
    await client.query('COMMIT')
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {})
    throw err
  } finally {
    client.off('error', onError)
    client.release()
  }
}

/**
 * A small pool for one of the gateway's own tables. Idle clients whose connection the database cuts (a
 * restart, an outage) emit 'error' on the pool; the next query reconnects, so the event is absorbed here
 * instead of crashing the process.
 */
export function ownTablePool(url: string): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4 })
  pool.on('error', () => {})
  return pool
}
