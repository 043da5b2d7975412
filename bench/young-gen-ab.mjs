// CPU µs/request and peak RSS of the gateway with the young generation bin/sluice.js sets (1 MiB semi-spaces)
// against V8's default (--max-semi-space-size=16), `auth` and `full` side by side, at a fixed rate that does
// not saturate (so a loaded machine slows neither variant more than the other), rounds interleaved.
// Usage: node bench/young-gen-ab.mjs [rate=200] [seconds per run=6] [rounds=5]
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFakeUpstream, startSluice } from './lib/targets.mjs'
import { openLoop } from './lib/open-loop.mjs'
import { cpuMicros, memory } from './lib/proc.mjs'
import { BENCH_HEADERS, benchBody } from './lib/request.mjs'

const HERE = fileURLToPath(new URL('.', import.meta.url))
const logDir = mkdtempSync(join(tmpdir(), 'sluice-young-gen-ab-'))
const headers = BENCH_HEADERS
const body = benchBody()
const [rate, seconds, rounds] = [Number(process.argv[2] ?? 200), Number(process.argv[3] ?? 6), Number(process.argv[4] ?? 5)]

const up = await startFakeUpstream({ logDir })
const variants = []
try {
  for (const cfg of ['auth', 'full']) {
    for (const [tag, nodeArgs] of [['1 MiB semi-space', []], ['16 MiB semi-space', ['--max-semi-space-size=16']]]) {
      variants.push(await startSluice({ name: `${cfg}, ${tag}`, configFile: join(HERE, 'configs', `${cfg}.yaml`), upstreamPort: up.port, cpu: null, logDir, headers, body, nodeArgs }))
    }
  }
  const run = (t, durationS) => openLoop({ url: t.url, headers: { ...headers, ...t.extraHeaders }, body, rate, durationS, connections: 50 })
  for (const t of variants) await run(t, 3) // JIT warm-up, unmeasured
  const perRequest = new Map(variants.map((t) => [t.name, []]))
  for (let r = 0; r < rounds; r++) {
    for (const t of variants) {
      const before = cpuMicros(t.pid)
      const o = await run(t, seconds)
      perRequest.get(t.name).push(Math.round((cpuMicros(t.pid) - before) / Math.max(1, o.completed)))
    }
  }
  console.log('| variant | CPU µs/req per round | median | VmHWM MiB |\n|---|---|---|---|')
  for (const t of variants) {
    const xs = perRequest.get(t.name)
    const sorted = [...xs].sort((a, b) => a - b)
    console.log(`| ${t.name} | ${xs.join(' ')} | ${sorted[Math.floor(sorted.length / 2)]} | ${memory(t.pid).peakMiB.toFixed(0)} |`)
  }
} finally {
  for (const t of variants) await t.stop()
  await up.stop()
}
