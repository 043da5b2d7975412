// The benchmark harness's own parts (no timings asserted: the figures live in BENCHMARKS.md).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { Server } from 'node:http'
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
import { openLoop } from '../bench/lib/open-loop.mjs'

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
  } finally {
    server.closeAllConnections()
    await new Promise((r) => server.close(r))
  }
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
