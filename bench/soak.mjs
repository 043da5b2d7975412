#!/usr/bin/env node
// A memory soak (issue 16: "flat over a 10-minute soak at 500 req/s"): the gateway under a fixed open-loop
// rate for N minutes against the fake upstream, pinned like bench/run.mjs (gateway alone on CPU 1, client
// and fake upstream on CPU 0). Every --sample seconds one row: RSS, V8 heap in use (through the gateway's
// inspector, read from outside so nothing is added to the gateway), gateway CPU seconds, and the rate,
// p50/p99 and failures of the requests that ended in that interval. Prints the curve as a Markdown table
// ready for BENCHMARKS.md, the non-2xx answers by status, and the verdict of the rule in lib/flatness.mjs;
// writes soak.json and soak.csv.
//   npm run bench:soak   (= node bench/soak.mjs --minutes 10 --rate 500)
//   node bench/soak.mjs [--minutes 10] [--rate 500] [--config bench/configs/governed.yaml] [--sample 10] [--stream] [--out DIR] [--no-pin]
import { execFileSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { cpuMicros, cpuTimes, loadAverage, memory, stealBetween } from './lib/proc.mjs'
import { openLoop } from './lib/open-loop.mjs'
import { connectInspector } from './lib/inspector.mjs'
import { freePort, sluiceRunsFrom, startFakeUpstream, startSluice } from './lib/targets.mjs'
import { FLAT_RULE, judgeFlat } from './lib/flatness.mjs'

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    config: { type: 'string', default: 'bench/configs/governed.yaml' },
    sample: { type: 'string', default: '10' },
    stream: { type: 'boolean', default: false },
    'no-pin': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (opt.help) {
  process.stdout.write('Usage: node bench/soak.mjs [--minutes 10] [--rate 500] [--config FILE] [--sample SECONDS] [--stream] [--out DIR] [--no-pin]\n')
  process.exit(0)
}
const minutes = Number(opt.minutes)
const rate = Number(opt.rate)
const sampleS = Number(opt.sample)
if (!(minutes > 0) || !(rate > 0) || !(sampleS > 0)) throw new Error('--minutes, --rate and --sample are positive numbers')
const outDir = resolve(opt.out ?? mkdtempSync(join(tmpdir(), 'sluice-soak-')))
mkdirSync(outDir, { recursive: true })
const pin = !opt['no-pin'] && availableParallelism() >= 2
// This process (the open-loop client) and the fake upstream it starts on CPU 0; the gateway alone on CPU 1.
if (pin) execFileSync('taskset', ['-a', '-p', '-c', '0', String(process.pid)], { stdio: 'ignore' })

const headers = { authorization: 'Bearer sk-bench-0123456789abcdef', 'content-type': 'application/json' }
const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16, ...(opt.stream ? { stream: true } : {}) })
const command = `node bench/soak.mjs --minutes ${minutes} --rate ${rate} --config ${opt.config} --sample ${sampleS}${opt.stream ? ' --stream' : ''}${pin ? '' : ' --no-pin'}`

const upstream = await startFakeUpstream({ logDir: outDir })
const inspectPort = await freePort()
// Read before the start: sources edited during a 10-minute soak must not relabel what was measured.
const gatewayFrom = sluiceRunsFrom()
const gw = await startSluice({
  name: 'sluice-soak', configFile: resolve(opt.config), upstreamPort: upstream.port, cpu: pin ? 1 : null, logDir: outDir, headers, body,
  nodeArgs: [`--inspect=127.0.0.1:${inspectPort}`],
})
const inspector = await connectInspector(inspectPort)
const MiB = 1024 * 1024
const rows = []
let t0 = Date.now()
const cpu0 = cpuMicros(gw.pid)
const machine0 = cpuTimes()
const row = async (phase, interval) => {
  const m = memory(gw.pid)
  const t = Math.round((Date.now() - t0) / 1000)
  const cpuS = (cpuMicros(gw.pid) - cpu0) / 1e6
  const heap = await inspector.heapUsage().catch(() => ({ usedSize: NaN, totalSize: NaN }))
  rows.push({
    t, phase, rssMiB: +m.rssMiB.toFixed(1), peakMiB: +m.peakMiB.toFixed(1), heapUsedMiB: +(heap.usedSize / MiB).toFixed(1), heapTotalMiB: +(heap.totalSize / MiB).toFixed(1),
    cpuS: +cpuS.toFixed(1), load1: loadAverage()[0],
    ...(interval ? { rps: Math.round(interval.achievedRps), p50: +interval.p50.toFixed(2), p99: +interval.p99.toFixed(2), failed: interval.non2xx + interval.errors, statuses: interval.statuses } : {}),
  })
}
await row('idle')
t0 = Date.now()
// Rows stay in order: each awaits one inspector call, and the inspector answers in order.
const result = await openLoop({
  url: gw.url, headers, body, rate, durationS: minutes * 60, stream: opt.stream, connections: 256,
  intervalS: sampleS, onInterval: (s) => { void row('load', s) },
})
await row('end')
// Idle again: what the process gives back once the load stops.
await new Promise((r) => setTimeout(r, sampleS * 1000))
await row('after')
const steal = stealBetween(machine0, cpuTimes())
inspector.close()
await gw.stop()
await upstream.stop()

const load = rows.filter((s) => s.phase === 'load')
const judged = judgeFlat(load, minutes * 60)
const summary = {
  command,
  at: new Date(t0).toISOString(),
  pinned: pin,
  from: gatewayFrom,
  steal,
  result,
  rule: FLAT_RULE,
  rss: { idleMiB: rows[0].rssMiB, maxMiB: Math.max(...rows.map((s) => s.rssMiB)), ...judged },
  rows,
}
writeFileSync(join(outDir, 'soak.json'), JSON.stringify(summary, null, 2))
writeFileSync(join(outDir, 'soak.csv'), 't_s,phase,rss_mib,peak_mib,heap_used_mib,heap_total_mib,cpu_s,rps,p50_ms,p99_ms,failed,load1\n' +
  rows.map((s) => [s.t, s.phase, s.rssMiB, s.peakMiB, s.heapUsedMiB, s.heapTotalMiB, s.cpuS, s.rps ?? '', s.p50 ?? '', s.p99 ?? '', s.failed ?? '', s.load1].join(',')).join('\n') + '\n')

const out = []
const f = (n, d = 1) => (Number.isFinite(n) ? n.toFixed(d) : '—')
out.push(`Command: \`${command}\` (${summary.at}; gateway from ${summary.from === 'dist' ? 'dist/' : 'src/ through tsx (dist/ missing or stale)'}; ${pin ? 'gateway on CPU 1, client + fake upstream on CPU 0' : 'unpinned'}; ` +
  `steal over the soak: ${Object.entries(steal).map(([n, v]) => `${n} ${f(100 * v.steal)} %`).join(', ')})`)
out.push('')
const byStatus = Object.entries(result.statuses).map(([code, n]) => `${n} × ${code}`).join(', ')
out.push(`Requests: ${result.completed.toLocaleString('en-US')} of ${result.scheduled.toLocaleString('en-US')} answered 2xx, ` +
  `${result.non2xx} non-2xx${byStatus ? ` (${byStatus})` : ''}, ${result.errors} errors (no answer); ${f(result.achievedRps, 0)} req/s achieved; ` +
  `p50 ${f(result.p50, 2)} ms, p99 ${f(result.p99, 2)} ms from the scheduled time.`)
out.push(`RSS: idle ${summary.rss.idleMiB} MiB, max ${summary.rss.maxMiB} MiB; second minute ${f(judged.secondMinuteMeanMiB)} MiB, last minute ${f(judged.lastMinuteMeanMiB)} MiB ` +
  `(${f(judged.driftPct)} %), least-squares trend after the second minute ${f(judged.trendMiBPerMin, 2)} MiB/min. Verdict: **${judged.verdict}** (${FLAT_RULE}).`)
out.push('')
out.push('| t (s) | phase | RSS MiB | heap used MiB | gateway CPU s | req/s | p50 ms | p99 ms | failed |')
out.push('|---|---|---|---|---|---|---|---|---|')
for (const s of rows) {
  const failed = s.failed === undefined ? '' : s.failed ? `${s.failed} (${Object.entries(s.statuses).map(([c, n]) => `${n}×${c}`).join(' ') || 'no answer'})` : '0'
  out.push(`| ${s.t} | ${s.phase} | ${s.rssMiB} | ${f(s.heapUsedMiB)} | ${s.cpuS} | ${s.rps ?? ''} | ${s.p50 ?? ''} | ${s.p99 ?? ''} | ${failed} |`)
}
out.push('', `samples: ${join(outDir, 'soak.csv')}, ${join(outDir, 'soak.json')}; gateway log in ${outDir}`)
process.stdout.write(out.join('\n') + '\n')
writeFileSync(join(outDir, 'soak.md'), out.join('\n') + '\n')
