// Top-1 lookup latency of the semantic-cache vector stores at 10k and 100k entries (one partition, 512 dims:
// the local USE-Lite size), p50/p99 over random queries near stored vectors, plus how often the top-1 is the
// vector the query was made from (the index's recall; exact search gives 100%).
//
//   node --import tsx bench/vector-lookup.ts [--sizes 10000,100000] [--dims 512] [--queries 300]
//                                            [--stores memory,memory-brute,pglite] [--ef-search 100]
//
// memory       MemoryVectorStore as configured by default past 2048 entries per partition (usearch HNSW)
// memory-brute MemoryVectorStore forced to brute force (indexAbove: Infinity)
// pglite       PostgresVectorStore over the wire (`pg` → @electric-sql/pglite-socket → PGlite + pgvector,
//              HNSW cosine): the CI stand-in for PostgreSQL, wasm and single-threaded, so a pessimistic bound
//              for a real server. Rows are bulk-loaded and the HNSW index built afterwards (as a restore would);
//              lookups go through the store's own `nearest()`.
import { parseArgs } from 'node:util'
import pg from 'pg'
import type { VectorEntry, VectorStore } from '../src/cache/types.ts'
import { MemoryVectorStore } from '../src/stores/memory/vector.ts'
import { PostgresVectorStore, toVectorLiteral } from '../src/stores/postgres/vector-store.ts'

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10000,100000' },
    dims: { type: 'string', default: '512' },
    queries: { type: 'string', default: '300' },
    stores: { type: 'string', default: 'memory,memory-brute,pglite' },
    'ef-search': { type: 'string', default: '100' },
  },
})
const SIZES = args.sizes!.split(',').map(Number)
const DIMS = Number(args.dims)
const QUERIES = Number(args.queries)
const STORES = args.stores!.split(',')
const NOW = Date.now()
const PARTITION = 'product:bench|model:bench'

// A seeded generator, so every store sees the same vectors and queries.
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1); t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296 }
}
function gaussian(r: () => number): number { return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r()) }
function randomUnit(r: () => number, dims: number): Float32Array {
  const v = new Float32Array(dims)
  let n = 0
  for (let i = 0; i < dims; i++) { v[i] = gaussian(r); n += v[i]! * v[i]! }
  const inv = 1 / Math.sqrt(n)
  for (let i = 0; i < dims; i++) v[i]! *= inv
  return v
}
/** A query close to `v` (cosine ≈ 0.9), as a paraphrase would be. */
function near(r: () => number, v: Float32Array): Float32Array {
  const q = new Float32Array(v.length)
  for (let i = 0; i < v.length; i++) q[i] = v[i]! + gaussian(r) * 0.02
  return q
}

function entries(n: number): VectorEntry[] {
  const r = rng(42)
  return Array.from({ length: n }, (_, i) => ({ id: `e${i}`, partition: PARTITION, vector: randomUnit(r, DIMS), prompt: `prompt ${i}`, payload: `{"answer":${i}}`, expiresAt: NOW + 3_600_000 }))
}

function pct(sorted: number[], p: number): number { return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! }

async function measure(store: VectorStore, data: VectorEntry[]): Promise<{ p50: number; p99: number; recall: number }> {
  const r = rng(7)
  const picks = Array.from({ length: QUERIES + 20 }, () => Math.floor(r() * data.length))
  const times: number[] = []
  let found = 0
  for (let i = 0; i < picks.length; i++) {
    const src = data[picks[i]!]!
    const q = near(r, src.vector)
    const t0 = performance.now()
    const m = await store.nearest(PARTITION, q, 1, NOW)
    const dt = performance.now() - t0
    if (i < 20) continue // warm-up
    times.push(dt)
    if (m[0]?.entry.id === src.id) found++
  }
  times.sort((a, b) => a - b)
  return { p50: pct(times, 50), p99: pct(times, 99), recall: found / QUERIES }
}

async function memoryStore(data: VectorEntry[], brute: boolean): Promise<VectorStore> {
  const s = new MemoryVectorStore({ maxEntries: data.length, maxEntriesPerPartition: data.length, ...(brute ? { indexAbove: Number.POSITIVE_INFINITY } : {}) })
  for (const e of data) await s.upsert(e)
  return s
}

interface Pglite { store: VectorStore; stop(): Promise<void> }
async function pgliteStore(data: VectorEntry[], n: number): Promise<Pglite> {
  const { PGlite } = await import('@electric-sql/pglite')
  const { vector } = await import('@electric-sql/pglite-pgvector')
  const { PGLiteSocketServer } = await import('@electric-sql/pglite-socket')
  const db = await PGlite.create({ extensions: { vector } })
  const server = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 4 })
  let port = 0
  server.addEventListener('listening', (e) => { port = (e as CustomEvent<{ port: number }>).detail.port })
  await server.start()
  const pool = new pg.Pool({ host: '127.0.0.1', port, user: 'postgres', database: 'postgres', max: 2 })
  const table = `bench_${n}`
  const store = new PostgresVectorStore(pool, { table, efSearch: Number(args['ef-search']) })
  await store.nearest(PARTITION, data[0]!.vector, 1, NOW) // creates the table and its indexes
  const name = `${table}_d${DIMS}`
  await pool.query(`DROP INDEX "${name}_hnsw"`)
  const ROWS = 200
  for (let i = 0; i < data.length; i += ROWS) {
    const chunk = data.slice(i, i + ROWS)
    const params: unknown[] = []
    const tuples = chunk.map((e, j) => { params.push(e.id, e.partition, toVectorLiteral(e.vector), e.prompt, e.payload, e.expiresAt); const b = j * 6; return `($${b + 1},$${b + 2},$${b + 3},$${b + 4},$${b + 5},$${b + 6})` })
    await pool.query(`INSERT INTO "${name}" (id, partition, embedding, prompt, payload, expires_at) VALUES ${tuples.join(',')}`, params)
  }
  await pool.query(`SET maintenance_work_mem = '512MB'`).catch(() => {})
  await pool.query(`CREATE INDEX "${name}_hnsw" ON "${name}" USING hnsw (embedding vector_cosine_ops)`)
  await pool.query(`ANALYZE "${name}"`)
  return { store, stop: async () => { await store.close(); await pool.end(); await server.stop(); await db.close() } }
}

const fmt = (ms: number) => (ms < 1 ? ms.toFixed(3) : ms.toFixed(2))
console.log(`vector lookup, top-1, ${DIMS} dims, one partition, ${QUERIES} queries after 20 warm-up (node ${process.version})`)
console.log('store         entries   load s   p50 ms   p99 ms   top-1 recall')
for (const n of SIZES) {
  const data = entries(n)
  for (const kind of STORES) {
    const t0 = performance.now()
    let store: VectorStore
    let stop: () => Promise<void>
    if (kind === 'pglite') { const p = await pgliteStore(data, n); store = p.store; stop = p.stop }
    else if (kind === 'memory' || kind === 'memory-brute') { store = await memoryStore(data, kind === 'memory-brute'); stop = () => store.close() }
    else throw new Error(`unknown store ${kind}`)
    const load = (performance.now() - t0) / 1000
    const m = await measure(store, data)
    console.log(`${kind.padEnd(13)} ${String(n).padStart(7)}  ${load.toFixed(1).padStart(7)}  ${fmt(m.p50).padStart(7)}  ${fmt(m.p99).padStart(7)}   ${(m.recall * 100).toFixed(1)}%`)
    await stop()
  }
}
