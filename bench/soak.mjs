#!/usr/bin/env node
// A memory soak: the gateway under a fixed open-loop rate for N minutes against the fake upstream, its
// resident memory sampled every few seconds. Flat means the RSS of the last samples is within a few MiB of
// the samples after warm-up; a leak shows as a slope. Writes the samples as CSV and JSON and prints them.
//   node bench/soak.mjs --minutes 10 --rate 500 [--config bench/configs/full.yaml] [--sample 10] [--out DIR]
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { cpuMicros, loadAverage, memory } from './lib/proc.mjs'
import { openLoop } from './lib/open-loop.mjs'
import { startFakeUpstream, startSluice } from './lib/targets.mjs'

const { values: opt } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    rate: { type: 'string', default: '500' },
    config: { type: 'string', default: 'bench/configs/full.yaml' },
    sample: { type: 'string', default: '10' },
    stream: { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
})
if (opt.help) {
  process.stdout.write('Usage: node bench/soak.mjs [--minutes 10] [--rate 500] [--config FILE] [--sample SECONDS] [--stream] [--out DIR]\n')
  process.exit(0)
}
const minutes = Number(opt.minutes)
const rate = Number(opt.rate)
const sampleS = Number(opt.sample)
if (!(minutes > 0) || !(rate > 0) || !(sampleS > 0)) throw new Error('--minutes, --rate and --sample are positive numbers')
const outDir = resolve(opt.out ?? mkdtempSync(join(tmpdir(), 'sluice-soak-')))
mkdirSync(outDir, { recursive: true })

const headers = { authorization: 'Bearer sk-bench-0123456789abcdef', 'content-type': 'application/json' }
const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 16, ...(opt.stream ? { stream: true } : {}) })

const upstream = await startFakeUpstream({ logDir: outDir })
const gw = await startSluice({ name: 'sluice-soak', configFile: resolve(opt.config), upstreamPort: upstream.port, cpu: null, logDir: outDir, headers, body })
const samples = []
const t0 = Date.now()
const cpu0 = cpuMicros(gw.pid)
const sample = (phase) => {
  const m = memory(gw.pid)
  samples.push({ t: Math.round((Date.now() - t0) / 1000), phase, rssMiB: +m.rssMiB.toFixed(1), peakMiB: +m.peakMiB.toFixed(1), cpuS: +((cpuMicros(gw.pid) - cpu0) / 1e6).toFixed(1), load1: loadAverage()[0] })
}
sample('idle')
const timer = setInterval(() => sample('load'), sampleS * 1000)
let result
try {
  result = await openLoop({ url: gw.url, headers, body, rate, durationS: minutes * 60, stream: opt.stream, connections: 256 })
} finally {
  clearInterval(timer)
}
sample('end')
// Idle again: what the process gives back once the load stops.
await new Promise((r) => setTimeout(r, sampleS * 1000))
sample('after')
await gw.stop()
await upstream.stop()

const loadSamples = samples.filter((s) => s.phase === 'load')
const warm = loadSamples.filter((s) => s.t >= 60)
const firstMin = warm.slice(0, 6)
const lastMin = warm.slice(-6)
const avg = (xs) => xs.reduce((a, s) => a + s.rssMiB, 0) / Math.max(1, xs.length)
const summary = {
  command: `node bench/soak.mjs --minutes ${minutes} --rate ${rate} --config ${opt.config} --sample ${sampleS}${opt.stream ? ' --stream' : ''}`,
  at: new Date(t0).toISOString(),
  result,
  rss: {
    idleMiB: samples[0].rssMiB,
    maxMiB: Math.max(...samples.map((s) => s.rssMiB)),
    // Flatness: the last minute's mean against the mean of the minute after warm-up.
    secondMinuteMeanMiB: +avg(firstMin).toFixed(1),
    lastMinuteMeanMiB: +avg(lastMin).toFixed(1),
    driftMiB: +(avg(lastMin) - avg(firstMin)).toFixed(1),
  },
  samples,
}
writeFileSync(join(outDir, 'soak.json'), JSON.stringify(summary, null, 2))
writeFileSync(join(outDir, 'soak.csv'), 't_s,phase,rss_mib,peak_mib,cpu_s,load1\n' + samples.map((s) => `${s.t},${s.phase},${s.rssMiB},${s.peakMiB},${s.cpuS},${s.load1}`).join('\n') + '\n')
process.stdout.write(`${summary.command}\n`)
process.stdout.write(`requests: ${result.completed}/${result.scheduled} ok, ${result.errors} errors, ${result.non2xx} non-2xx, ${result.achievedRps.toFixed(0)} req/s; p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms\n`)
process.stdout.write(`RSS: idle ${summary.rss.idleMiB} MiB, max ${summary.rss.maxMiB} MiB, 2nd minute ${summary.rss.secondMinuteMeanMiB} MiB, last minute ${summary.rss.lastMinuteMeanMiB} MiB (drift ${summary.rss.driftMiB} MiB)\n`)
process.stdout.write('| t (s) | phase | RSS MiB | peak MiB | CPU s | load1 |\n|---|---|---|---|---|---|\n')
for (const s of samples) process.stdout.write(`| ${s.t} | ${s.phase} | ${s.rssMiB} | ${s.peakMiB} | ${s.cpuS} | ${s.load1} |\n`)
process.stdout.write(`samples: ${join(outDir, 'soak.csv')}\n`)
