#!/usr/bin/env node
// What a config costs in memory: for each config given, one gateway pinned like bench/run.mjs, its RSS 2.5 s
// after the ready probe, then its peak (VmHWM) over --seconds at saturation with 50 connections (the issue 16
// report's scenario), one config at a time against the same fake upstream.
//   node bench/peak-rss.mjs [--seconds 10] CONFIG...   e.g. bench/configs/auth.yaml bench/configs/governed.yaml
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { memory } from './lib/proc.mjs'
import { BENCH_HEADERS, benchBody, ownConfig } from './lib/request.mjs'
import { saturate, wrkAvailable } from './lib/saturate.mjs'
import { sluiceRunsFrom, startFakeUpstream, startSluice } from './lib/targets.mjs'

const { values: o, positionals: configs } = parseArgs({ allowPositionals: true, options: { seconds: { type: 'string', default: '10' } } })
if (!configs.length) { console.error('usage: node bench/peak-rss.mjs [--seconds 10] CONFIG...'); process.exit(2) }
// A stale build would make bin/sluice.js run the sources through tsx: another program, with the loader's memory.
if (sluiceRunsFrom() !== 'dist') { console.error('dist/ is missing or older than src/: npx tsc -p tsconfig.build.json first'); process.exit(2) }
const tmp = mkdtempSync(join(tmpdir(), 'sluice-peak-'))
const HEADERS = BENCH_HEADERS
const BODY = benchBody()
const upstream = await startFakeUpstream({ logDir: tmp })
try {
  for (const [i, cfg] of configs.entries()) {
    const gw = await startSluice({ name: 'peak', configFile: ownConfig(resolve(cfg), tmp, `run${i}`), upstreamPort: upstream.port, cpu: 1, logDir: tmp, headers: HEADERS, body: BODY })
    try {
      await new Promise((r) => setTimeout(r, 2500))
      const idle = memory(gw.pid).rssMiB
      const r = await saturate({ tool: wrkAvailable() ? 'wrk' : 'autocannon', url: gw.url, headers: HEADERS, body: BODY, connections: 50, durationS: Number(o.seconds), tmpDir: tmp })
      console.log(`${cfg}: idle ${idle.toFixed(0)} MiB, peak ${memory(gw.pid).peakMiB.toFixed(0)} MiB at ${Math.round(r.rps)} req/s`)
    } finally {
      await gw.stop()
    }
  }
} finally {
  await upstream.stop()
}
