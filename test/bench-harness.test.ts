// The benchmark harness's own parts (no timings asserted: the figures live in BENCHMARKS.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type Server } from 'node:http'
import { request } from 'undici'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { startFakeUpstream, COMPLETION_BYTES } from '../bench/fake-upstream.mjs'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { parseWrk } from '../bench/lib/saturate.mjs'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { percentile, median } from '../bench/lib/stats.mjs'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { summarize, componentOf } from '../bench/profile-summary.mjs'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { FIRST_CONTENT, openLoop } from '../bench/lib/open-loop.mjs'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { cpuTimes, stealBetween } from '../bench/lib/proc.mjs'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { judgeFlat, leastSquaresSlope } from '../bench/lib/flatness.mjs'
// @ts-expect-error plain .mjs bench modules carry no type declarations
import { issue16Verdicts } from '../bench/lib/issue16.mjs'

test('the fake upstream answers a fixed 573-byte chat.completion and an SSE stream', async () => {
  const server: Server = await startFakeUpstream(0)
  try {
    const port = (server.address() as { port: number }).port
    const url = `http://127.0.0.1:${port}/v1/chat/completions`
    const res = await request(url, { method: 'POST', body: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: 'hi' }] }) })
    const text = await res.body.text()
    assert.equal(COMPLETION_BYTES, 573)
    assert.equal(Buffer.byteLength(text), 573)
    assert.equal(JSON.parse(text).object, 'chat.completion')

    const plain = await (await request(url, { method: 'POST', body: '{"model":"m","stream":true}' })).body.text()
    const frames = plain.split('\n\n').filter(Boolean)
    assert.equal(frames.at(-1), 'data: [DONE]')
    assert.ok(!plain.includes('"usage"'), 'no usage chunk unless asked for')
    const withUsage = await (await request(url, { method: 'POST', body: '{"model":"m","stream":true,"stream_options":{"include_usage":true}}' })).body.text()
    assert.ok(withUsage.includes('"usage":{"prompt_tokens":24'))
  } finally {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
})

test('the open-loop client sends on schedule and counts every request', async () => {
  const server: Server = await startFakeUpstream(0)
  try {
    const port = (server.address() as { port: number }).port
    const r = await openLoop({ url: `http://127.0.0.1:${port}/v1/chat/completions`, headers: { 'content-type': 'application/json' }, body: '{"model":"m","stream":true}', rate: 100, durationS: 0.3, stream: true })
    assert.equal(r.scheduled, 30)
    assert.equal(r.completed + r.errors + r.non2xx, 30)
    assert.ok(Number.isFinite(r.ttfbP50) && r.ttfbP50 <= r.p50)
    // The fake's first byte is a role-only chunk, its content comes a turn later: first content after first byte.
    assert.ok(Number.isFinite(r.ttfcP50) && r.ttfcP50 >= r.ttfbP50 && r.ttfcP50 <= r.p50, `${r.ttfbP50} ≤ ${r.ttfcP50} ≤ ${r.p50}`)
  } finally {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
})

test('first content is a delta with text, not a role-only chunk or an empty content', () => {
  assert.equal(FIRST_CONTENT.test('data: {"choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}'), false)
  assert.equal(FIRST_CONTENT.test('data: {"choices":[{"index":0,"delta":{"content":"Hello"}}]}'), true)
})

test('wrk output is parsed: requests, req/s, percentiles in ms, errors', () => {
  const out = `Running 3s test @ http://127.0.0.1:1/v1/chat/completions
  1 threads and 50 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.20ms    2.00ms  40.00ms   90.00%
    Req/Sec     4.90k   200.00     5.20k    70.00%
  Latency Distribution
     50%  950.00us
     75%   11.00ms
     90%   12.00ms
     99%    1.20s
  14700 requests in 3.00s, 9.80MB read
  Socket errors: connect 0, read 2, write 0, timeout 3
  Non-2xx or 3xx responses: 4
Requests/sec:   4899.50
Transfer/sec:      3.27MB
`
  assert.deepEqual(parseWrk(out), { requests: 14700, rps: 4899.5, p50: 0.95, p99: 1200, errors: 7 })
})

test('percentile and median', () => {
  const v = Array.from({ length: 100 }, (_, i) => i + 1)
  assert.equal(percentile(v, 50), 50)
  assert.equal(percentile(v, 99), 99)
  assert.ok(Number.isNaN(percentile([], 50)))
  assert.equal(median([3, 1, NaN, 2]), 2)
  assert.equal(median([4, 1, 2, 3]), 2.5)
})

test('profile summary: self time per function and component, idle left out', () => {
  const frame = (functionName: string, url: string) => ({ functionName, url, lineNumber: 0, columnNumber: 0, scriptId: '0' })
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)', ''), children: [2, 3, 4] },
      { id: 2, callFrame: frame('(idle)', '') },
      { id: 3, callFrame: frame('proxyRequest', 'file:///x/src/server/proxy.ts') },
      { id: 4, callFrame: frame('request', 'file:///x/node_modules/undici/lib/api/api-request.js') },
    ],
    startTime: 0, endTime: 0,
    samples: [2, 3, 4, 3],
    timeDeltas: [0, 500, 100, 200, 300],
  }
  const s = summarize(profile)
  assert.equal(s.idleUs, 500)
  assert.equal(s.busyUs, 600)
  assert.deepEqual(s.components, [['sluice src/server/proxy.ts', 400], ['undici', 200]])
  assert.equal(componentOf('node:internal/streams/writable', 'clearBuffer'), 'node core (internal/streams)')
  assert.equal(componentOf('file:///a/node_modules/@scope/pkg/x.js', 'f'), '@scope/pkg')
})

const sseEvents = (text: string) => text.split('\n\n').filter(Boolean)

test('a streamed answer has 20 events by default, --events N of them otherwise, and the Anthropic twin the same pieces', async () => {
  for (const [opts, events] of [[{}, 20], [{ events: 15 }, 15]] as const) {
    const server: Server = await startFakeUpstream(0, '127.0.0.1', opts)
    try {
      const port = (server.address() as { port: number }).port
      const openai = await (await request(`http://127.0.0.1:${port}/v1/chat/completions`, { method: 'POST', body: '{"model":"m","stream":true}' })).body.text()
      const frames = sseEvents(openai)
      assert.equal(frames.length, events)
      assert.ok(frames[0].includes('"role":"assistant"'))
      assert.ok(frames[events - 2].includes('"finish_reason":"stop"'))
      assert.equal(frames[events - 1], 'data: [DONE]')
      const anthropic = await (await request(`http://127.0.0.1:${port}/v1/messages`, { method: 'POST', body: '{"model":"m","stream":true}' })).body.text()
      const deltas = sseEvents(anthropic).filter((f) => f.startsWith('event: content_block_delta'))
      assert.equal(deltas.length, events - 3) // the same content pieces as the OpenAI stream's content frames
      assert.ok(anthropic.includes(`"usage":{"output_tokens":${events - 3}}`))
    } finally {
      server.closeAllConnections()
      await new Promise((r) => server.close(r))
    }
  }
})

test('the open-loop client reports each interval and breaks non-2xx answers down by status', async () => {
  let n = 0
  // Every third request is refused with 429 and every fifth of the rest with 503: 60 requests → 20 × 429, 8 × 503.
  const server = createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      n++
      const status = n % 3 === 0 ? 429 : n % 5 === 0 ? 503 : 200
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(status === 429 ? '{"error":{"message":"busy","type":"rate_limit_error","code":"too_many_concurrent_requests"}}' : status === 503 ? 'upstream down' : '{}')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  try {
    const port = (server.address() as { port: number }).port
    const intervals: { completed: number, non2xx: number, statuses: Record<string, number> }[] = []
    const r = await openLoop({ url: `http://127.0.0.1:${port}/`, headers: {}, body: '{}', rate: 100, durationS: 0.6, intervalS: 0.2, onInterval: (s: typeof intervals[0]) => intervals.push(s) })
    assert.equal(r.scheduled, 60)
    assert.deepEqual(r.statuses, { '429 too_many_concurrent_requests': 20, 503: 8 }) // the code when the body has one
    assert.equal(r.non2xx, 28)
    assert.equal(r.completed, 32)
    assert.ok(intervals.length >= 2, `${intervals.length} intervals`)
    assert.equal(intervals.reduce((a, s) => a + s.completed, 0), 32)
    assert.equal(intervals.reduce((a, s) => a + (s.statuses['429 too_many_concurrent_requests'] ?? 0), 0), 20)
  } finally {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
})

test('CPU steal is read per line of /proc/stat as a share of the time that passed', () => {
  // user nice system idle iowait irq softirq steal guest guest_nice
  const before = cpuTimes('cpu  100 0 50 800 10 0 0 40 0 0\ncpu0 50 0 25 400 5 0 0 20 0 0\nintr 1 2 3\n')
  const after = cpuTimes('cpu  400 0 150 1200 10 0 0 240 7 0\ncpu0 250 0 75 500 5 0 0 170 0 0\n')
  const s = stealBetween(before, after)
  // cpu: Δ = 300 + 100 + 400 + 200 = 1000 ticks, 200 of them steal, 400 busy (guest is inside user already).
  assert.deepEqual(s.cpu, { steal: 0.2, busy: 0.4 })
  // cpu0: Δ = 200 + 50 + 100 + 150 = 500, steal 150 → 0.3, busy 250 → 0.5.
  assert.deepEqual(s.cpu0, { steal: 0.3, busy: 0.5 })
})

test('the soak\'s flatness rule: a saw-tooth is flat, a slow leak and a step are not, a short soak is not judged', () => {
  assert.equal(leastSquaresSlope([{ t: 0, y: 1 }, { t: 10, y: 3 }, { t: 20, y: 5 }]), 0.2)
  const series = (f: (t: number) => number) => Array.from({ length: 60 }, (_, i) => ({ t: (i + 1) * 10, rssMiB: f((i + 1) * 10) }))
  const saw = judgeFlat(series((t) => 200 + ((t / 10) % 3) * 20), 600) // 200, 220, 240 repeating
  assert.equal(saw.flat, true, saw.verdict)
  // +2 MiB a minute from 200: the last minute is within 10 % (≈ 8 %) of the second, but the trend is ≈ +16 MiB over the window (> 5 % of ≈ 203).
  const leak = judgeFlat(series((t) => 200 + (2 * t) / 60), 600)
  assert.equal(leak.flat, false)
  assert.match(leak.verdict, /trend/)
  const step = judgeFlat(series((t) => (t > 540 ? 260 : 200)), 600)
  assert.equal(step.flat, false)
  assert.match(step.verdict, /last minute/)
  assert.equal(judgeFlat(series(() => 200).slice(0, 6), 60).flat, null)
})

test('issue 16 verdicts: per-round ratios, their median against the limit, and what was not measured', () => {
  const targets = [
    { name: 'direct', kind: 'direct' }, { name: 'node:http pipe proxy', kind: 'pipe' },
    { name: 'sluice auth', kind: 'sluice' }, { name: 'sluice governed', kind: 'sluice' },
  ]
  const rounds = (...cpu: number[]) => cpu.map((c, i) => ({ round: i + 1, cpuUsPerReq: c }))
  const results = {
    'node:http pipe proxy': { sat: rounds(100, 120, 100), rate1000: [{ round: 1, p99: 3 }] },
    direct: { ttfb: [{ round: 1, ttfbP50: 1.0, ttfcP50: 1.7 }] },
    'sluice auth': { sat: rounds(110, 150, 130), rate1000: [{ round: 1, p99: 4.5 }], ttfb: [{ round: 1, ttfbP50: 2.0, ttfcP50: 2.1 }] },
    'sluice governed': { sat: rounds(200, 150, 140), rate1000: [{ round: 1, p99: 4, non2xx: 3, errors: 0 }] },
  }
  const memory = { 'sluice auth': { idleMiB: 79, peakMiB: 151 }, 'sluice governed': { idleMiB: 90, peakMiB: 300, satPeakMiB: 149 } }
  const rows = issue16Verdicts({ targets, results, memory, rates: [1000] })
  const row = (id: string) => rows.find((r: { id: string }) => r.id === id)
  // auth ÷ pipe per round: 1.1, 1.25, 1.3 → median 1.25 > 1.2
  assert.equal(row('auth-cpu-x-pipe').value, 1.25)
  assert.deepEqual([row('auth-cpu-x-pipe').min, row('auth-cpu-x-pipe').max], [1.1, 1.3])
  assert.equal(row('auth-cpu-x-pipe').verdict, 'MISSED')
  // governed ÷ pipe per round: 2.0, 1.25, 1.4 → median 1.4 ≤ 1.5 (the ratio of medians, 150 / 100, would say 1.5)
  assert.equal(row('governed-cpu-x-pipe').value, 1.4)
  assert.equal(row('governed-cpu-x-pipe').verdict, 'met')
  assert.equal(row('auth-p99').value, 1.5)
  // 4 − 3 = 1 ms would pass, but p99 is over 2xx answers only: 3 shed or failed requests make it a miss.
  assert.equal(row('governed-p99').value, 1)
  assert.match(row('governed-p99').verdict, /^MISSED: 3 request/)
  assert.equal(row('auth-p99').verdict, 'met')
  assert.equal(row('auth-idle').verdict, 'met')
  assert.equal(row('auth-peak').verdict, 'MISSED') // no saturation-only peak: the whole run's 151 MiB is judged
  assert.equal(row('governed-peak').value, 149) // the saturation runs' own peak, not the open-loop runs' 300
  assert.equal(row('governed-peak').verdict, 'met')
  assert.equal(row('auth-stream-x-pipe').verdict, 'not measured')
  // Judged on first content (2.1 − 1.7 = 0.4 ms, met), not on first byte (2.0 − 1.0 = 1 ms, context only).
  assert.ok(Math.abs(row('auth-ttfc').value - 0.4) < 1e-9)
  assert.equal(row('auth-ttfc').verdict, 'met')
  assert.equal(row('auth-ttfb').verdict, 'context')
  assert.equal(row('translated-cpu-x-auth').verdict, 'not measured')
  assert.equal(row('governed-cpu-x-json'), undefined) // no JSON-parsing proxy in this run
})
