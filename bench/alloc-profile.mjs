#!/usr/bin/env node
// Where a gateway's garbage comes from: one config pinned like bench/run.mjs, saturated with 50 connections;
// after a warm-up, V8's sampling heap profiler counts every allocation (those collected by scavenges and
// major GCs included) for --seconds, and the bytes are printed per request by the allocating function.
// Allocation per request sets how often the young generation is collected, and so governed's tail at a
// fixed rate (BENCHMARKS.md, "Where governed's p99 at 1,000 req/s comes from").
//   node bench/alloc-profile.mjs --config bench/configs/governed.yaml [--seconds 5] [--top 30]
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { BENCH_HEADERS, benchBody, ownConfig } from './lib/request.mjs'
import { saturate, wrkAvailable } from './lib/saturate.mjs'
import { sluiceRunsFrom, startFakeUpstream, startSluice } from './lib/targets.mjs'

const { values: o } = parseArgs({ options: { config: { type: 'string', default: 'bench/configs/governed.yaml' }, seconds: { type: 'string', default: '5' }, warmup: { type: 'string', default: '3' }, top: { type: 'string', default: '30' } } })
if (sluiceRunsFrom() !== 'dist') { console.error('dist/ is missing or older than src/: npx tsc -p tsconfig.build.json first'); process.exit(2) }
const tmp = mkdtempSync(join(tmpdir(), 'sluice-alloc-'))
const out = join(tmp, 'allocations.json')
// Preloaded into the gateway: the first SIGUSR2 starts sampling, the second writes the profile.
const probe = join(tmp, 'probe.cjs')
writeFileSync(probe, `const inspector = require('node:inspector'); const fs = require('node:fs')
const s = new inspector.Session(); s.connect(); let on = false
process.on('SIGUSR2', () => {
  if (!on) { on = true; s.post('HeapProfiler.startSampling', { samplingInterval: 4096, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true }); return }
  s.post('HeapProfiler.stopSampling', (err, r) => { if (!err) fs.writeFileSync(${JSON.stringify(out)}, JSON.stringify(r.profile)); on = false })
})
`)
const HEADERS = BENCH_HEADERS
const BODY = benchBody()
const upstream = await startFakeUpstream({ logDir: tmp })
const gw = await startSluice({ name: 'alloc', configFile: ownConfig(resolve(o.config), tmp, 'alloc'), upstreamPort: upstream.port, cpu: 1, logDir: tmp, headers: HEADERS, body: BODY, nodeArgs: ['--require', probe] })
let requests
try {
  const load = (s) => saturate({ tool: wrkAvailable() ? 'wrk' : 'autocannon', url: gw.url, headers: HEADERS, body: BODY, connections: 50, durationS: s, tmpDir: tmp })
  await load(Number(o.warmup))
  process.kill(gw.pid, 'SIGUSR2')
  requests = (await load(Number(o.seconds))).requests
  process.kill(gw.pid, 'SIGUSR2')
  const end = Date.now() + 10_000
  while (!existsSync(out)) {
    if (Date.now() > end) throw new Error('the gateway wrote no allocation profile within 10 s')
    await new Promise((r) => setTimeout(r, 50))
  }
} finally {
  await gw.stop()
  await upstream.stop()
}
const profile = JSON.parse(readFileSync(out, 'utf8'))
const byFunction = new Map()
let total = 0
const walk = (node) => {
  const f = node.callFrame
  const where = `${f.functionName || '(anonymous)'}  ${f.url.replace(/^(?:file:\/\/)?.*?\/(dist|node_modules)\//, '$1/')}${f.url ? `:${f.lineNumber + 1}` : ''}`
  byFunction.set(where, (byFunction.get(where) ?? 0) + node.selfSize)
  total += node.selfSize
  for (const c of node.children) walk(c)
}
walk(profile.head)
console.log(`${o.config}: ${requests} requests, ${Math.round(total / requests)} bytes allocated per request`)
for (const [where, bytes] of [...byFunction].sort((a, b) => b[1] - a[1]).slice(0, Number(o.top))) console.log(String(Math.round(bytes / requests)).padStart(8), ' ', where)
