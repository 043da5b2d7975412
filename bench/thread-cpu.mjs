#!/usr/bin/env node
// Where a gateway's CPU per request goes, by thread: the main thread (the event loop), the SQLite ledger's
// writer (the one thread the gateway runs at nice 10) and every other thread (V8's platform workers:
// concurrent marking and sweeping, parallel scavenges; libuv's pool). A CPU profile sees the main thread
// only, and on one pinned core the other threads' time is part of what `bench/run.mjs` reports per request.
// Pinned like bench/run.mjs: the gateway on CPU 1, this client and the fake upstream on CPU 0.
//   node bench/thread-cpu.mjs [--variant governed] [--stream] [--seconds 6] [--rounds 3]
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { BENCH_HEADERS, benchBody, ownConfig } from './lib/request.mjs'
import { saturate, wrkAvailable } from './lib/saturate.mjs'
import { sluiceRunsFrom, startFakeUpstream, startSluice } from './lib/targets.mjs'
import { median } from './lib/stats.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const { values: o } = parseArgs({
  options: {
    variant: { type: 'string', default: 'governed' }, stream: { type: 'boolean', default: false },
    seconds: { type: 'string', default: '6' }, rounds: { type: 'string', default: '3' }, connections: { type: 'string', default: '50' },
  },
})
if (sluiceRunsFrom() !== 'dist') {
  console.error('dist/ is missing or older than src/ (the gateway would run from its sources): npx tsc -p tsconfig.build.json first')
  process.exit(2)
}
execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })
const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
const logDir = mkdtempSync(join(tmpdir(), 'sluice-threads-'))
const headers = BENCH_HEADERS
const body = benchBody({ stream: o.stream })
const tool = wrkAvailable() ? 'wrk' : 'autocannon'

/** CPU microseconds per thread group: main, ledger writer (nice 10), other. */
function byThread(pid) {
  const out = { main: 0, writer: 0, other: 0 }
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat
    try { stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8') } catch { continue } // a thread that just ended
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    const us = ((Number(f[11]) + Number(f[12])) * 1e6) / ticks
    const nice = Number(f[16])
    out[tid === String(pid) ? 'main' : nice === 10 ? 'writer' : 'other'] += us
  }
  return out
}

const up = await startFakeUpstream({ logDir })
const gw = await startSluice({ name: o.variant, configFile: ownConfig(join(HERE, 'configs', `${o.variant}.yaml`), logDir, 'run'), upstreamPort: up.port, cpu: 1, logDir, headers, body })
try {
  const run = (s) => saturate({ tool, url: gw.url, headers, body, connections: Number(o.connections), durationS: s, tmpDir: logDir })
  await run(3) // JIT warm-up, unmeasured
  const rows = { main: [], writer: [], other: [], total: [] }
  for (let r = 0; r < Number(o.rounds); r++) {
    const a = byThread(gw.pid)
    const x = await run(Number(o.seconds))
    const b = byThread(gw.pid)
    const n = Math.max(1, x.requests)
    let total = 0
    for (const k of ['main', 'writer', 'other']) { const v = (b[k] - a[k]) / n; rows[k].push(v); total += v }
    rows.total.push(total)
  }
  console.log(`variant ${o.variant}${o.stream ? ', streamed' : ''}; ${o.rounds} rounds × ${o.seconds} s; ${tool}; CPU µs per request by thread (median, then per round)`)
  for (const [k, v] of Object.entries(rows)) console.log(`${k.padEnd(7)} ${median(v).toFixed(1).padStart(6)}   ${v.map((x) => x.toFixed(1)).join(' ')}`)
} finally {
  await gw.stop()
  await up.stop()
}
