// `npx tsx bench/journal-replay.ts [--records N]`: the crash journal's replay rate. Writes N usage records
// to a journal as the request path does (one append each), "crashes" (leaves it unclosed), then replays it
// as a restarted gateway does: read + checksum + parse only, and end to end into a SQLite ledger (batches
// of 500, idempotent inserts). Prints records/s for each, and the append cost per record.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { Journal } from '../src/ledger/journal.ts'
import { SqliteLedgerStore } from '../src/stores/sqlite/ledger.ts'
import type { UsageRecord } from '../src/stores/ledger.ts'

const { values } = parseArgs({ options: { records: { type: 'string', default: '200000' } } })
const N = Number(values.records)
const dir = mkdtempSync(join(tmpdir(), 'sluice-replay-bench-'))
const rec = (i: number): UsageRecord => ({
  ts: 1_780_000_000_000 + i, requestId: `req-${i.toString(36)}-bench`, consumer: 'team-a', product: 'standard', model: 'gpt-4o-mini', backend: 'east',
  status: 200, promptTokens: 120, completionTokens: 48, cachedTokens: 0, reasoningTokens: 0, costUsd: 0.0000468, latencyMs: 312, ttftMs: null,
  cacheHit: false, stream: false, attempts: 1, errorCode: null, recordId: `bench0000000.${i.toString(36)}`,
})
const cpuSince = (c: NodeJS.CpuUsage) => { const d = process.cpuUsage(c); return d.user + d.system }
const dead = () => writeFileSync(join(dir, 'ledger-0.lock'), JSON.stringify({ pid: 2 ** 22 + 7, host: hostname(), at: '' }))

try {
  const w = Journal.open({ dir, maxBytes: Number.MAX_SAFE_INTEGER })
  // CPU time (user + system), not wall time: the figure is what the process spends, whatever else runs.
  let c = process.cpuUsage()
  let t = process.hrtime.bigint()
  for (let i = 0; i < N; i++) w.append('usage', rec(i))
  const appendNs = Number(process.hrtime.bigint() - t) / N
  const appendCpu = cpuSince(c) / N
  const bytes = w.stats().bytes
  dead()

  const r1 = Journal.open({ dir, maxBytes: Number.MAX_SAFE_INTEGER })
  c = process.cpuUsage()
  t = process.hrtime.bigint()
  let read = 0
  await r1.replay(async (chunk) => { read += chunk.length }, 2000)
  const readS = Number(process.hrtime.bigint() - t) / 1e9
  const readCpu = cpuSince(c) / 1e6
  dead() // r1 committed nothing: the journal is still whole

  const store = new SqliteLedgerStore(join(dir, 'ledger.db'))
  const r2 = Journal.open({ dir, maxBytes: Number.MAX_SAFE_INTEGER })
  c = process.cpuUsage()
  t = process.hrtime.bigint()
  let written = 0
  await r2.replay(async (chunk) => {
    for (let i = 0; i < chunk.length; i += 500) {
      const part = chunk.slice(i, i + 500)
      await store.append(part.map((r) => r.value as UsageRecord))
      r2.committed('usage', part.map((r) => r.pos))
    }
    written += chunk.length
  }, 2000)
  const storeS = Number(process.hrtime.bigint() - t) / 1e9
  const storeCpu = cpuSince(c) / 1e6
  r2.close()
  const rows = (await store.records()).length
  await store.close()
  console.log(`records ${N}, journal ${(bytes / 1e6).toFixed(1)} MB (${Math.round(bytes / N)} B/record)`)
  console.log(`append (encode + checksum + write, the request path's part): ${appendCpu.toFixed(2)} µs CPU/record (${(appendNs / 1000).toFixed(2)} µs wall)`)
  console.log(`replay, read + checksum + parse: ${Math.round(read / readCpu).toLocaleString('en')} records per CPU-second (${Math.round(read / readS).toLocaleString('en')}/s wall, ${readS.toFixed(2)} s)`)
  console.log(`replay into SQLite, end to end: ${Math.round(written / storeCpu).toLocaleString('en')} records per CPU-second (${Math.round(written / storeS).toLocaleString('en')}/s wall, ${storeS.toFixed(2)} s), rows ${rows}`)
} finally {
  rmSync(dir, { recursive: true, force: true })
}
