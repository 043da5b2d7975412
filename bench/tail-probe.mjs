#!/usr/bin/env node
// Where a gateway's tail at a fixed rate comes from: runs one config pinned like bench/run.mjs, saturates it
// for the warm-up, then drives it open-loop at --rate for --seconds while a preloaded probe inside the
// gateway reports its event-loop delay (p99, max) and every GC pause each second. Prints the client's
// p50/p99 beside what the gateway's own loop saw, second by second.
//   node bench/tail-probe.mjs --config bench/configs/auth.yaml --rate 1000 --seconds 10 [--phases 2] [--no-pin] [--allow-src] [--node-arg=--flag …]
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { openLoop } from './lib/open-loop.mjs'
import { BENCH_HEADERS, benchBody, ownConfig } from './lib/request.mjs'
import { saturate, wrkAvailable } from './lib/saturate.mjs'
import { sluiceRunsFrom, startFakeUpstream, startSluice } from './lib/targets.mjs'

const { values: o } = parseArgs({ options: { config: { type: 'string', default: 'bench/configs/auth.yaml' }, rate: { type: 'string', default: '1000' }, seconds: { type: 'string', default: '10' }, warmup: { type: 'string', default: '5' }, phases: { type: 'string', default: '1' }, 'no-pin': { type: 'boolean', default: false }, 'allow-src': { type: 'boolean', default: false }, 'node-arg': { type: 'string', multiple: true, default: [] } } })
// A stale build makes bin/sluice.js run the sources through tsx: another program (more heap, longer
// scavenges), whose tail says nothing about the build (a probe of 2026-12-03 measured exactly that by mistake).
if (sluiceRunsFrom() !== 'dist' && !o['allow-src']) {
  console.error('dist/ is missing or older than src/ (the gateway would run from its sources): npx tsc -p tsconfig.build.json first, or pass --allow-src')
  process.exit(2)
}
const tmp = mkdtempSync(join(tmpdir(), 'sluice-tail-'))
const probe = join(tmp, 'probe.cjs')
writeFileSync(probe, `const { monitorEventLoopDelay, PerformanceObserver } = require('node:perf_hooks')
const h = monitorEventLoopDelay({ resolution: 1 }); h.enable()
const gc = []
new PerformanceObserver((l) => { for (const e of l.getEntries()) gc.push([e.detail?.kind ?? e.kind, e.duration]) }).observe({ entryTypes: ['gc'] })
setInterval(() => {
  process.stderr.write('[probe] ' + JSON.stringify({ t: Date.now(), p99: h.percentile(99) / 1e6, max: h.max / 1e6, gc: gc.splice(0) }) + '\\n')
  h.reset()
}, 1000).unref()
`)
const HEADERS = BENCH_HEADERS
const BODY = benchBody()
const upstream = await startFakeUpstream({ logDir: tmp })
const gw = await startSluice({ name: 'probed', configFile: ownConfig(resolve(o.config), tmp, 'probed'), upstreamPort: upstream.port, cpu: o['no-pin'] ? null : 1, logDir: tmp, headers: HEADERS, body: BODY, nodeArgs: [...o['node-arg'], '--require', probe] })
try {
  await saturate({ tool: wrkAvailable() ? 'wrk' : 'autocannon', url: gw.url, headers: HEADERS, body: BODY, connections: 50, durationS: Number(o.warmup), tmpDir: tmp })
  for (let phase = 1; phase <= Number(o.phases); phase++) {
  console.log(`phase ${phase}`)
  const mark = Date.now()
  const seconds = []
  const r = await openLoop({ url: gw.url, headers: HEADERS, body: BODY, rate: Number(o.rate), durationS: Number(o.seconds), intervalS: 1, onInterval: (s) => seconds.push(s) })
  console.log(`client: achieved ${r.achievedRps.toFixed(0)} req/s, p50 ${r.p50.toFixed(2)} ms, p99 ${r.p99.toFixed(2)} ms, max ${r.max.toFixed(1)} ms, errors ${r.errors}, non-2xx ${r.non2xx}`)
  console.log('client per second (p50/p99 ms): ' + seconds.map((s) => `${s.p50.toFixed(1)}/${s.p99.toFixed(1)}`).join('  '))
  const lines = readFileSync(gw.logFile, 'utf8').split('\n').filter((l) => l.startsWith('[probe] ')).map((l) => JSON.parse(l.slice(8))).filter((x) => x.t >= mark)
  for (const x of lines) {
    const pauses = x.gc.map(([k, d]) => `${k}:${d.toFixed(1)}`).join(' ')
    console.log(`+${((x.t - mark) / 1000).toFixed(0).padStart(3)} s  loop delay p99 ${x.p99.toFixed(1).padStart(6)} ms  max ${x.max.toFixed(1).padStart(6)} ms  gc ${x.gc.length} (${pauses.slice(0, 160)})`)
  }
  }
} finally {
  await gw.stop()
  await upstream.stop()
}
