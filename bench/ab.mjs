#!/usr/bin/env node
// A/B of two builds of the gateway on one machine, for changes smaller than the drift between two runs of
// `npm run bench`: both gateways run at once (each pinned to the proxy CPU, only one under load at a time),
// saturation rounds alternate A B B A …, and the verdict is the median of the per-pair ratios B ÷ A, which
// cancels the machine's slow drift (CPU steal, thermal, neighbours) that moves single runs by ±50 % here.
// Usage: node bench/ab.mjs --a DIR --b DIR [--variant auth] [--stream] [--rounds 8] [--seconds 4]
//          [--a-node-args "--max-semi-space-size=8"] [--b-node-args …] [--a-env K=V …] [--b-env K=V …]
//   DIR: a checkout with its compiled build (npx tsc -p tsconfig.build.json); default --b is this checkout.
//   The node arguments and environment variables let one tree be compared with itself under other V8 flags
//   or process settings (--a DIR --b DIR; --b-env MALLOC_ARENA_MAX=2, repeatable).
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { startFakeUpstream, startSluice } from './lib/targets.mjs'
import { saturate, wrkAvailable } from './lib/saturate.mjs'
import { cpuMicros, memory } from './lib/proc.mjs'
import { BENCH_HEADERS, benchBody, ownConfig } from './lib/request.mjs'
import { median } from './lib/stats.mjs'

const HERE = dirname(fileURLToPath(import.meta.url))
const { values: o } = parseArgs({
  options: {
    a: { type: 'string' }, b: { type: 'string', default: resolve(HERE, '..') },
    'a-node-args': { type: 'string', default: '' }, 'b-node-args': { type: 'string', default: '' },
    'a-env': { type: 'string', multiple: true, default: [] }, 'b-env': { type: 'string', multiple: true, default: [] },
    variant: { type: 'string', default: 'auth' }, stream: { type: 'boolean', default: false },
    rounds: { type: 'string', default: '8' }, seconds: { type: 'string', default: '4' },
    connections: { type: 'string', default: '50' }, 'proxy-cpu': { type: 'string', default: '1' }, 'loadgen-cpu': { type: 'string', default: '0' },
  },
})
if (!o.a) { console.error('usage: node bench/ab.mjs --a DIR --b DIR [--variant NAME] [--stream] [--rounds N] [--seconds S]'); process.exit(2) }
execFileSync('taskset', ['-a', '-p', '-c', o['loadgen-cpu'], String(process.pid)], { stdio: 'ignore' })
const logDir = mkdtempSync(join(tmpdir(), 'sluice-ab-'))
const headers = BENCH_HEADERS
const body = benchBody({ stream: o.stream })
const tool = wrkAvailable() ? 'wrk' : 'autocannon'
const rounds = Number(o.rounds)
const seconds = Number(o.seconds)
const configFile = join(HERE, 'configs', `${o.variant}.yaml`)

// bin/sluice.js runs the sources through tsx when dist/ is older than any source file: a different program
// (its loader's heap alone changes the GC figures), so a stale build is refused rather than measured.
for (const dir of [o.a, o.b]) {
  const newest = (d) => readdirSync(d, { withFileTypes: true }).reduce((n, e) => Math.max(n, e.isDirectory() ? newest(join(d, e.name)) : statSync(join(d, e.name)).mtimeMs), 0)
  const built = join(resolve(dir), 'dist', 'src', 'cli.js')
  if (!existsSync(built) || statSync(built).mtimeMs < newest(join(resolve(dir), 'src'))) {
    console.error(`${resolve(dir)}: dist/ is missing or older than src/ (the gateway would run from its sources): npx tsc -p tsconfig.build.json there first`)
    process.exit(2)
  }
}

const up = await startFakeUpstream({ logDir })
const targets = []
try {
  for (const [name, dir, args, envList] of [['A', resolve(o.a), o['a-node-args'], o['a-env']], ['B', resolve(o.b), o['b-node-args'], o['b-env']]]) {
    const nodeArgs = args.split(' ').filter(Boolean)
    const env = Object.fromEntries(envList.map((kv) => {
      const eq = kv.indexOf('=')
      if (eq < 1) throw new Error(`--${name.toLowerCase()}-env wants NAME=VALUE, got "${kv}"`)
      return [kv.slice(0, eq), kv.slice(eq + 1)]
    }))
    targets.push(await startSluice({ name, root: dir, configFile: ownConfig(configFile, logDir, name), upstreamPort: up.port, cpu: Number(o['proxy-cpu']), logDir, headers, body, nodeArgs, env }))
  }
  const run = (t, s) => saturate({ tool, url: t.url, headers, body, connections: Number(o.connections), durationS: s, tmpDir: logDir })
  for (const t of targets) await run(t, 3) // JIT warm-up, unmeasured
  const per = { A: [], B: [] }
  for (let r = 0; r < rounds; r++) {
    for (const t of r % 2 === 0 ? targets : [...targets].reverse()) {
      const before = cpuMicros(t.pid)
      const x = await run(t, seconds)
      per[t.name].push((cpuMicros(t.pid) - before) / Math.max(1, x.requests))
    }
  }
  const ratios = per.B.map((b, i) => b / per.A[i])
  const args = (x) => { const given = [o[`${x}-node-args`], ...o[`${x}-env`]].filter(Boolean).join(' '); return given ? ` (${given})` : '' }
  console.log(`variant ${o.variant}${o.stream ? ', streamed' : ''}; ${rounds} rounds × ${seconds} s; ${tool}; A = ${resolve(o.a)}${args('a')}, B = ${resolve(o.b)}${args('b')}`)
  console.log(`peak RSS (VmHWM, start-up included) MiB: A ${memory(targets[0].pid).peakMiB.toFixed(0)}, B ${memory(targets[1].pid).peakMiB.toFixed(0)}`)
  console.log(`A CPU µs/req: ${per.A.map(Math.round).join(' ')}  median ${Math.round(median(per.A))}`)
  console.log(`B CPU µs/req: ${per.B.map(Math.round).join(' ')}  median ${Math.round(median(per.B))}`)
  console.log(`B ÷ A per round: ${ratios.map((x) => x.toFixed(2)).join(' ')}  median ${median(ratios).toFixed(3)}`)
} finally {
  for (const t of targets) await t.stop()
  await up.stop()
}
