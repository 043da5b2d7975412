import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

const KEY = 'sk-otlp-team-a'

interface Point {
  metric: string
  unit: string
  attributes: Record<string, string>
  count: number
  sum: number
}

/** A tiny OTLP/HTTP collector: keeps every metrics export it receives (JSON encoding). */
function collector(): Promise<{ url: string; points: Point[]; requests: Array<{ path: string; type: string; headers: http.IncomingHttpHeaders }>; close(): Promise<void> }> {
  const points: Point[] = []
  const requests: Array<{ path: string; type: string; headers: http.IncomingHttpHeaders }> = []
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      requests.push({ path: req.url ?? '', type: req.headers['content-type'] ?? '', headers: req.headers })
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
        resourceMetrics: Array<{ resource: { attributes: Attr[] }; scopeMetrics: Array<{ metrics: Array<{ name: string; unit: string; histogram?: { dataPoints: Array<{ attributes: Attr[]; count: number | string; sum: number }> } }> }> }>
      }
      for (const rm of body.resourceMetrics) {
        for (const sm of rm.scopeMetrics) {
          for (const m of sm.metrics) {
            for (const dp of m.histogram?.dataPoints ?? []) {
              points.push({ metric: m.name, unit: m.unit, attributes: attrs(dp.attributes), count: Number(dp.count), sum: dp.sum })
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    })
  })
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo
      resolve({ url: `http://127.0.0.1:${port}`, points, requests, close: () => new Promise((r) => server.close(() => r())) })
    })
  })
}

type Attr = { key: string; value: { stringValue?: string; intValue?: string | number } }
const attrs = (list: Attr[]) => Object.fromEntries(list.map((a) => [a.key, String(a.value.stringValue ?? a.value.intValue ?? '')]))

describe('OTLP export with the GenAI semantic conventions', () => {
  let c: Awaited<ReturnType<typeof collector>>
  let g: TestGateway
  const usage = { prompt: 0, completion: 0 }

  before(async () => {
    c = await collector()
    g = await startTestGateway(`
telemetry:
  otlp: { endpoint: '${c.url}', interval: 200ms, headers: { x-collector-key: k-123 }, serviceName: sluice-test }
backends:
  - { id: mock-a, type: mock }
models:
  - { name: gpt-4o-mini, target: mock-a }
products:
  - { id: standard }
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY} } ] }
`)
    for (const stream of [false, true, false]) {
      const res = await fetch(`${g.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'gpt-4o-mini', stream, max_tokens: 6, ...(stream ? { stream_options: { include_usage: true } } : {}), messages: [{ role: 'user', content: 'Say something' }] }),
      })
      const text = await res.text()
      const u = stream
        ? (JSON.parse(text.split('\n').filter((l) => l.startsWith('data: {') && l.includes('"usage":{')).at(-1)!.slice(6)) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage
        : (JSON.parse(text) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage
      usage.prompt += u.prompt_tokens
      usage.completion += u.completion_tokens
    }
    // Cumulative temporality: wait for an export that has seen all three requests.
    const deadline = Date.now() + 10_000
    while (Date.now() < deadline) {
      const d = c.points.filter((p) => p.metric === 'gen_ai.server.request.duration')
      if (d.some((p) => p.count === 3)) break
      await new Promise((r) => setTimeout(r, 50))
    }
    // A wait that runs out fails here rather than leaving the checks below to run on a partial export.
    assert.ok(c.points.some((p) => p.metric === 'gen_ai.server.request.duration' && p.count === 3), 'no export saw all three requests within 10 s')
  })
  after(async () => {
    await g?.close()
    await c?.close()
  })

  it('posts JSON to /v1/metrics with the configured headers', () => {
    assert.ok(c.requests.length > 0, 'the collector received exports')
    assert.equal(c.requests[0]!.path, '/v1/metrics')
    assert.match(c.requests[0]!.type, /application\/json/)
    assert.equal(c.requests[0]!.headers['x-collector-key'], 'k-123')
  })

  it('exports gen_ai.client.token.usage by token type with the request model and provider', () => {
    const latest = (type: string) => c.points.filter((p) => p.metric === 'gen_ai.client.token.usage' && p.attributes['gen_ai.token.type'] === type).at(-1)
    const input = latest('input')
    const output = latest('output')
    assert.ok(input && output, 'both token types arrived')
    assert.equal(input.unit, '{token}')
    assert.equal(input.count, 3)
    assert.equal(input.sum, usage.prompt)
    assert.equal(output.sum, usage.completion)
    assert.equal(input.attributes['gen_ai.request.model'], 'gpt-4o-mini')
    assert.equal(input.attributes['gen_ai.operation.name'], 'chat')
    assert.equal(input.attributes['gen_ai.provider.name'], 'sluice.mock')
    assert.equal(input.attributes['server.address'], '127.0.0.1')
  })

  it('exports gen_ai.server.request.duration and gen_ai.server.time_to_first_token in seconds', () => {
    const duration = c.points.filter((p) => p.metric === 'gen_ai.server.request.duration').at(-1)
    assert.ok(duration)
    assert.equal(duration.unit, 's')
    assert.equal(duration.count, 3)
    const ttft = c.points.filter((p) => p.metric === 'gen_ai.server.time_to_first_token').at(-1)
    assert.ok(ttft, 'time to first token arrived')
    assert.equal(ttft.unit, 's')
    assert.equal(ttft.count, 1) // the one stream
    assert.ok(ttft.sum > 0 && ttft.sum < duration.sum)
  })
})
