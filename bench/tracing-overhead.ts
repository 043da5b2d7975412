// CPU per request of request tracing, in process (no HTTP): what the kernel's hooks cost for one request with
// one upstream try — tracing off, on at sample 0 (spans made, not recorded; traceparent still injected),
// on at sample 1 (two spans recorded and queued for the batch exporter; the export itself runs on its timer,
// to a loopback collector that answers 200), and debug timings alone.
//   node --import tsx bench/tracing-overhead.ts [--iterations N]
import http from 'node:http'
import { EventEmitter } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { ServerResponse } from 'node:http'
import { parseArgs } from 'node:util'
import { loadConfigText } from '../src/config/load.ts'
import { buildSnapshot } from '../src/config/snapshot.ts'
import { createRequestContext } from '../src/core/context.ts'
import type { Outcome, UpstreamResult } from '../src/core/pipeline.ts'
import { builtinPolicies } from '../src/policies/registry.ts'
import { backendDescriber } from '../src/telemetry/gateway-telemetry.ts'
import { createTracing } from '../src/telemetry/tracing-config.ts'
import { traceOf, type RequestTracing } from '../src/telemetry/tracing.ts'

const { values } = parseArgs({ options: { iterations: { type: 'string', default: '20000' } } })
const N = Number(values.iterations)

const collector = http.createServer((req, res) => { req.resume(); req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}')) })
await new Promise<void>((r) => collector.listen(0, '127.0.0.1', r))
const port = (collector.address() as AddressInfo).port

function config(tracing: string) {
  const res = loadConfigText(`
${tracing}
backends: [ { id: a, type: openai-compatible, url: 'http://127.0.0.1:9/v1' } ]
models: [ { name: gpt-4o-mini, target: a } ]
products: [ { id: dbg, debug: { timings: true } } ]
consumers: [ { id: c, product: dbg, keys: [ { value: sk-bench-0123456789 } ] } ]
`, { registry: builtinPolicies(), env: {} })
  if (!res.ok) throw new Error(JSON.stringify(res.problems))
  return res.config
}

const describe = backendDescriber((b) => b.url!)
const json: UpstreamResult = { kind: 'json', status: 200, headers: {}, body: { id: 'x', model: 'gpt-4o-mini', choices: [{ finish_reason: 'stop' }], usage: { prompt_tokens: 24, completion_tokens: 12 } }, text: null }
const outcome: Outcome = { status: 200, usage: { promptTokens: 24, completionTokens: 12, totalTokens: 36, cachedTokens: 0, reasoningTokens: 0 }, error: null, aborted: false, endedAt: 0, completionText: null, servedBy: null }

/** One request through every hook the kernel calls, in the kernel's order. */
async function request(tracing: RequestTracing, snapshot: ReturnType<typeof buildSnapshot>, headers: Record<string, string>): Promise<void> {
  const ctx = createRequestContext({
    id: 'r', startedAt: 0, operation: 'chat.completions', info: { method: 'POST', path: '/v1/chat/completions', ip: '127.0.0.1', headers },
    signal: new AbortController().signal, model: 'gpt-4o-mini', body: { model: 'gpt-4o-mini', max_tokens: 64, temperature: 0.2, messages: [] }, stream: false, clientWantsStreamUsage: false,
  })
  ctx.principal = { consumerId: 'c', productId: 'dbg', metadata: {} }
  const res = new EventEmitter() as unknown as ServerResponse
  const now = performance.now()
  tracing.begin(ctx, snapshot, { arrivedAt: now, admittedAt: now }, '/v1/chat/completions', res)
  traceOf(ctx)?.inbound()
  const backend = snapshot.backends.get('a')!
  const model = snapshot.models.get('gpt-4o-mini')!
  const send = async (t: { inject(h: Record<string, string>): Record<string, string>; responded(s: number): void } | null) => {
    const h = { authorization: 'Bearer x' }
    if (t) t.inject(h)
    t?.responded(200)
    return { result: json, text: '' }
  }
  const trace = traceOf(ctx)
  await (trace ? trace.attempt({ model, backend }, (t) => send(t)) : send(null))
  ctx.backendId = 'a'
  ctx.attempts = 1
  trace?.responseHeaders({})
  trace?.settle(outcome)
  ;(res as unknown as EventEmitter).emit('close')
}

const cases: Array<[string, string, Record<string, string>]> = [
  ['tracing off', '', {}],
  ['debug timings only (tracing off)', '', { 'x-sluice-debug': 'timings' }],
  ['tracing on, sample 0', `telemetry: { otlp: { endpoint: 'http://127.0.0.1:${port}', interval: 1h }, tracing: { sample: 0, parentBased: false, interval: 200ms, maxQueue: 100000 } }`, {}],
  ['tracing on, sample 1', `telemetry: { otlp: { endpoint: 'http://127.0.0.1:${port}', interval: 1h }, tracing: { sample: 1, interval: 200ms, maxQueue: 100000 } }`, {}],
]
for (const [name, yaml, headers] of cases) {
  const cfg = config(yaml)
  const snapshot = buildSnapshot(cfg)
  const tracing = await createTracing(cfg, describe)
  for (let i = 0; i < 2000; i++) { await request(tracing, snapshot, headers); if (i % 500 === 499) await tracing.flush() } // warm-up (JIT)
  // Chunks of 500 requests, each followed by the export of what it queued: the path's CPU and the export's
  // CPU are summed apart (in the gateway the export runs on the batch timer, off every request's path).
  let pathUs = 0
  let exportUs = 0
  const t0 = performance.now()
  for (let done = 0; done < N; done += 500) {
    const c0 = process.cpuUsage()
    for (let i = 0; i < 500; i++) await request(tracing, snapshot, headers)
    const c1 = process.cpuUsage(c0)
    pathUs += c1.user + c1.system
    const e0 = process.cpuUsage()
    await tracing.flush()
    const e1 = process.cpuUsage(e0)
    exportUs += e1.user + e1.system
  }
  const wall = performance.now() - t0
  await tracing.shutdown()
  console.log(`${name.padEnd(34)} ${(pathUs / N).toFixed(2).padStart(7)} µs CPU/request on the path, +${(exportUs / N).toFixed(2).padStart(6)} µs for its export; wall ${(wall * 1000 / N).toFixed(2)} µs`)
}
collector.close()
