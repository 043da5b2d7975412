// CPU per routing decision, in process (no HTTP): what a router model adds before the upstream call (the
// candidates' capabilities checked, this request's cost estimated at each candidate's price, the cheapest
// picked), a split's sticky choice, and the scored pool strategies' member scores.
//   node --import tsx bench/router-decision.ts [--iterations N]
import { parseArgs } from 'node:util'
import { performance } from 'node:perf_hooks'
import { loadConfigText } from '../src/config/load.ts'
import { buildSnapshot } from '../src/config/snapshot.ts'
import { createRequestContext } from '../src/core/context.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { PriceTable } from '../src/pricing/table.ts'
import { chooseCandidate, expectedCost, splitChoice } from '../src/upstream/virtual-models.ts'

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '50000' } } })
const N = Number(values.iterations)

const res = loadConfigText(`
backends: [ { id: a, type: mock }, { id: b, type: mock }, { id: c, type: mock } ]
models:
  - { name: gpt-4o-mini, target: a, capabilities: { contextWindow: 128000, tools: true, images: true, jsonSchema: true } }
  - { name: gpt-4o, target: b, capabilities: { contextWindow: 128000, tools: true, images: true, jsonSchema: true } }
  - { name: claude-sonnet-4-5, target: c, capabilities: { contextWindow: 200000, tools: true, images: true, jsonSchema: true, reasoning: true } }
  - { name: auto, router: { candidates: [gpt-4o-mini, gpt-4o, claude-sonnet-4-5] } }
  - { name: canary, split: [ { model: gpt-4o, percent: 90 }, { model: gpt-4o-mini, percent: 10 } ] }
`, { registry: builtinPolicies(), env: {} })
if (!res.ok) throw new Error(JSON.stringify(res.problems))
const snapshot = buildSnapshot(res.config)
const prices = new PriceTable()
// A typical chat request: a system prompt, two turns, ~300 tokens of text, one tool.
const body = {
  model: 'auto',
  max_tokens: 512,
  tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }],
  messages: [
    { role: 'system', content: 'You are a helpful assistant for an online shop. '.repeat(8) },
    { role: 'user', content: 'Where is my order 12345? It was due last week and the tracking page shows nothing. '.repeat(3) },
    { role: 'assistant', content: 'Let me look that up for you.' },
    { role: 'user', content: 'Thanks, please hurry.' },
  ],
}
const ctxOf = () => createRequestContext({ id: 'r', startedAt: 0, operation: 'chat.completions', info: { method: 'POST', path: '/v1/chat/completions', ip: '127.0.0.1', headers: {} }, signal: new AbortController().signal, model: 'auto', body, stream: false, clientWantsStreamUsage: false })

function measure(label: string, fn: () => void): void {
  for (let i = 0; i < 2000; i++) fn() // warm the JIT
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < N; i++) fn()
  const wall = (performance.now() - t0) * 1000 / N
  const cpu = process.cpuUsage(cpu0)
  console.log(`${label.padEnd(40)} ${((cpu.user + cpu.system) / N).toFixed(2)} µs CPU, ${wall.toFixed(2)} µs wall per decision`)
}

measure('baseline: the request context alone', () => { ctxOf() })
const router = snapshot.models.get('auto')!
measure('router model (3 candidates, cheapest)', () => {
  chooseCandidate(ctxOf(), router, snapshot, (m, need) => expectedCost(prices, [m.name], need), () => null)
})
const split = snapshot.models.get('canary')!
let n = 0
measure('split (sticky hash of the consumer)', () => {
  const ctx = ctxOf()
  ctx.principal = { consumerId: `consumer-${n++ % 1000}`, productId: null, metadata: {} }
  splitChoice(ctx, split, snapshot)
})
