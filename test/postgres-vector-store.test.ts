// The pgvector store, through the `pg` driver over the PostgreSQL wire protocol: in CI against PGlite with
// the pgvector extension served by @electric-sql/pglite-socket (Debian's PostgreSQL here has no pgvector
// package), and also against the real PostgreSQL on 127.0.0.1:5432 when pgvector is installed there.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import { PGlite } from '@electric-sql/pglite'
import { vector } from '@electric-sql/pglite-pgvector'
import { PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { axis, entry, vectorStoreContract } from './contract/vector-store.ts'
import { serviceAvailable } from './helpers/gateway.ts'
import { PostgresVectorStore, fromVectorLiteral, toVectorLiteral } from '../src/stores/postgres/vector-store.ts'
import { createVectorStore } from '../src/cache/factory.ts'

const T0 = Date.parse('2026-01-01T00:00:00Z')
const run = randomUUID().replace(/-/g, '').slice(0, 10)

const db = await PGlite.create({ extensions: { vector } })
const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 8 })
let port = 0
server.addEventListener('listening', (e) => { port = (e as CustomEvent<{ port: number }>).detail.port })
await server.start()
const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', max: 4 })
after(async () => {
  await pool.end()
  await server.stop()
  await db.close()
})

let n = 0
vectorStoreContract('postgres (PGlite + pgvector over the wire)', async () => new PostgresVectorStore(pool, { table: `vc_${run}_${n++}` }))

describe('PostgresVectorStore specifics (PGlite)', () => {
  it('round-trips vectors through the pgvector text form', () => {
    const v = Float32Array.from([0.5, -1.25, 3e-7, 0])
    assert.deepEqual(fromVectorLiteral(toVectorLiteral(v)), v)
    assert.throws(() => toVectorLiteral(Float32Array.from([1, NaN])), /non-finite/)
  })

  it('finds the partition\'s entries past many closer entries of another partition (HNSW filtering)', async () => {
    const s = new PostgresVectorStore(pool, { table: `vf_${run}` })
    // 400 entries of tenant A right at the query vector, 3 of tenant B far from it.
    for (let i = 0; i < 400; i++) await s.upsert(entry(`a${i}`, 'A', axis(0, 1, 1, (i % 50) / 1000)))
    for (let i = 0; i < 3; i++) await s.upsert(entry(`b${i}`, 'B', axis(5, 1, i, 0.1)))
    const m = await s.nearest('B', axis(0), 3, T0)
    assert.deepEqual(m.map((x) => x.entry.id).sort(), ['b0', 'b1', 'b2'])
    assert.ok(m.every((x) => x.entry.partition === 'B'))
    await s.close()
  })

  it('keeps tables per dimension apart and counts them all', async () => {
    const s = new PostgresVectorStore(pool, { table: `vd_${run}` })
    await s.upsert(entry('eight', 'p', axis(0)))
    await s.upsert({ ...entry('three', 'p', Float32Array.from([1, 0, 0])) })
    assert.equal(await s.size(), 2)
    assert.deepEqual((await s.nearest('p', Float32Array.from([1, 0, 0]), 5, T0)).map((x) => x.entry.id), ['three'])
    await s.delete('three')
    assert.equal(await s.size(), 1)
    await assert.rejects(s.nearest('p', new Float32Array(0), 1, T0), /dimensions/)
    await s.close()
  })

  it('purges expired rows in the background and bounds the table', async () => {
    const s = new PostgresVectorStore(pool, { table: `vp_${run}`, purgeEveryMs: 0, maxEntries: 5 })
    const now = Date.now()
    await s.upsert(entry('expired', 'p', axis(0), now - 1))
    for (let i = 0; i < 8; i++) await s.upsert(entry(`live${i}`, 'p', axis(1), now + 60_000 + i))
    // Purges go by the caller's clock, which the store learns from lookups.
    assert.equal((await s.nearest('p', axis(0), 1, now))[0]!.entry.id.startsWith('live'), true)
    await s.upsert(entry('live8', 'p', axis(1), now + 60_000 + 8))
    await s.close() // waits for the background purges
    const r = await pool.query<{ id: string }>(`SELECT id FROM "vp_${run}_d8" ORDER BY id`)
    assert.equal(r.rows.length, 5)
    assert.ok(!r.rows.some((x) => x.id === 'expired'))
  })

  it('works in its own schema and refuses unsafe identifiers', async () => {
    const s = new PostgresVectorStore(pool, { table: 'vs', schema: `sch_${run}` })
    await s.upsert(entry('x', 'p', axis(2)))
    assert.equal((await s.nearest('p', axis(2), 1, T0))[0]!.entry.id, 'x')
    assert.equal(await s.size(), 1)
    await s.close()
    assert.throws(() => new PostgresVectorStore(pool, { table: 'bad"; drop table x; --' }), /must match/)
  })
})

describe('createVectorStore({ kind: postgres })', () => {
  it('connects by URL with its own pool, and closes it', async () => {
    const s = createVectorStore({ kind: 'postgres', url: `postgres://postgres@127.0.0.1:${port}/postgres`, table: `vu_${run}` })
    await s.upsert(entry('u', 'p', axis(3)))
    assert.equal((await s.nearest('p', axis(3), 1, T0))[0]!.entry.id, 'u')
    await s.close()
  })

  it('fails fast (for the caller to bypass the cache) when the database is unreachable', async () => {
    const s = createVectorStore({ kind: 'postgres', url: 'postgres://postgres@127.0.0.1:1/none' })
    await assert.rejects(s.nearest('p', axis(0), 1, T0))
    await s.close()
  })
})

// The real server, when it has pgvector (Debian bookworm does not package it; CI uses PGlite above).
describe('PostgresVectorStore on the real PostgreSQL', () => {
  let real: pg.Pool | null = null
  let reason = ''
  before(async () => {
    if (!(await serviceAvailable('postgres'))) { reason = 'no PostgreSQL on 127.0.0.1:5432'; return }
    const p = new pg.Pool({ host: '127.0.0.1', port: 5432, user: 'postgres', database: 'test', max: 4 })
    try {
      await p.query('CREATE EXTENSION IF NOT EXISTS vector')
      real = p
    } catch (err) {
      reason = `pgvector is not installed there (${(err as Error).message.split('\n')[0]})`
      await p.end()
    }
  })
  after(async () => {
    if (real) {
      await real.query(`DROP SCHEMA IF EXISTS "vreal_${run}" CASCADE`)
      await real.end()
    }
  })
  it('passes the contract cases (skipped without pgvector)', async (t) => {
    if (!real) { t.skip(reason); return }
    const s = new PostgresVectorStore(real, { table: 'vc', schema: `vreal_${run}` })
    await s.upsert(entry('same', 'p', axis(0, 5)))
    await s.upsert(entry('orth', 'p', axis(1)))
    await s.upsert(entry('other', 'q', axis(0)))
    const m = await s.nearest('p', axis(0), 5, T0)
    assert.deepEqual(m.map((x) => x.entry.id), ['same', 'orth'])
    await s.close()
  })
})
