// Latency of the local USE-Lite embedder as the semantic cache uses it: one short prompt per call, through
// the worker thread (queue, postMessage both ways), sequential, then 8 concurrent callers (batched).
//
//   node --import tsx bench/local-embed.ts [--calls 200]
import { parseArgs } from 'node:util'
import { acquireLocalEmbedder } from '../src/cache/local-embedder.ts'

const { values: args } = parseArgs({ options: { calls: { type: 'string', default: '200' } } })
const CALLS = Number(args.calls)
const prompts = Array.from({ length: CALLS }, (_, i) => `What is the best way to ${['cook', 'store', 'ship', 'test'][i % 4]} item number ${i} for a customer in ${['Paris', 'Berlin', 'Madrid'][i % 3]}?`)
const pct = (s: number[], p: number) => s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!

const e = acquireLocalEmbedder({ timeoutMs: 60_000 })
const t0 = performance.now()
await e.embed(['load the model'])
const load = performance.now() - t0
const seq: number[] = []
for (const p of prompts) { const t = performance.now(); await e.embed([p]); seq.push(performance.now() - t) }
seq.sort((a, b) => a - b)
const conc: number[] = []
const started = performance.now()
await Promise.all(Array.from({ length: 8 }, async (_, w) => {
  for (let i = w; i < prompts.length; i += 8) { const t = performance.now(); await e.embed([prompts[i]!]); conc.push(performance.now() - t) }
}))
const wall = performance.now() - started
conc.sort((a, b) => a - b)
console.log(`local USE-Lite embedder (worker thread), ${CALLS} short prompts (node ${process.version})`)
console.log(`first call (worker start + model load): ${load.toFixed(0)} ms; process RSS after: ${(process.memoryUsage().rss / 1e6).toFixed(0)} MB`)
console.log(`sequential, one caller:   p50 ${pct(seq, 50).toFixed(1)} ms, p99 ${pct(seq, 99).toFixed(1)} ms`)
console.log(`8 concurrent callers:     p50 ${pct(conc, 50).toFixed(1)} ms, p99 ${pct(conc, 99).toFixed(1)} ms, ${(CALLS / (wall / 1000)).toFixed(0)} prompts/s`)
await e.close()
