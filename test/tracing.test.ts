import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { startTraceCollector, waitUntil, type ExportedSpan, type TraceCollector } from './helpers/otlp-traces.ts'

const KEY = 'sk-tracing-team-a'
const PROMPT = 'confidential prompt words'
const ANSWER = 'confidential answer words'

// The fixed figures the canned backends report (independent of the gateway's code).
const JSON_USAGE = { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }
const STREAM_USAGE = { prompt_tokens: 13, completion_tokens: 5, total_tokens: 18 }
const STREAM_PAUSE_MS = 300

// The client's own span: what the request span must be a child of.
const CLIENT_TRACE = '4bf92f3577b34da6a3ce929d0e0e4736'
const CLIENT_SPAN = '00f067aa0ba902b7'

interface Canned {
  readonly url: string
  readonly seen: http.IncomingHttpHeaders[]
  close(): Promise<void>
}

/** A backend answering every chat request one fixed way: a JSON completion, a 503, or a stream with a pause in it. */
async function canned(mode: 'json' | 'fail' | 'stream' | 'slow' | 'flaky'): Promise<Canned> {
  const seen: http.IncomingHttpHeaders[] = []
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push(req.headers)
      if (mode === 'flaky' && seen.length % 2 === 1) {
        // Every other request: busy, come back in 20 ms (the gateway retries the only member).
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after-ms': '20' }).end(JSON.stringify({ error: { message: 'busy', type: 'api_error', param: null, code: null } }))
        return
      }
      if (mode === 'fail') {
        res.writeHead(503, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: 'overloaded', type: 'api_error', param: null, code: null } }))
        return
      }
      if (mode === 'slow') {
        // Answers only after the hedge has long won; the gateway cancels it first.
        const t = setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 5_000)
        res.on('close', () => clearTimeout(t))
        return
      }
      if (mode === 'json' || mode === 'flaky') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
          id: 'chatcmpl-fixed-1', object: 'chat.completion', created: 1, model: 'gpt-4o-mini-2024-07-18',
          choices: [{ index: 0, message: { role: 'assistant', content: ANSWER }, finish_reason: 'stop' }],
          usage: JSON_USAGE,
        }))
        return
      }
      const chunk = (o: Record<string, unknown>) => `data: ${JSON.stringify({ id: 'chatcmpl-stream-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini-2024-07-18', ...o })}\n\n`
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(chunk({ choices: [{ index: 0, delta: { role: 'assistant', content: 'confidential ' }, finish_reason: null }] }))
      setTimeout(() => {
        res.write(chunk({ choices: [{ index: 0, delta: { content: 'answer words' }, finish_reason: 'stop' }] }))
        res.write(chunk({ choices: [], usage: STREAM_USAGE }))
        res.end('data: [DONE]\n\n')
      }, STREAM_PAUSE_MS)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    seen,
    close: () => new Promise<void>((resolve) => { server.close(() => resolve()); server.closeAllConnections() }),
  }
}

async function chat(url: string, body: Record<string, unknown>, headers: Record<string, string> = {}) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ messages: [{ role: 'user', content: PROMPT }], max_tokens: 50, temperature: 0.3, ...body }),
  })
  return { status: res.status, headers: res.headers, text: await res.text() }
}

const traceparentOf = (h: http.IncomingHttpHeaders) => {
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(String(h.traceparent ?? ''))
  return m ? { traceId: m[1]!, spanId: m[2]!, flags: m[3]! } : null
}

const gatewayYaml = (collector: string, extra: { sample?: number; service?: string; backends: string }) => `
telemetry:
  otlp: { endpoint: '${collector}', serviceName: ${extra.service ?? 'sluice-traces'} }
  tracing: { sample: ${extra.sample ?? 1}, interval: 50ms }
${extra.backends}
consumers:
  - { id: team-a, keys: [ { value: ${KEY} } ] }
`

describe('traces over OTLP with the GenAI conventions', () => {
  let col: TraceCollector
  let ok: Canned
  let bad: Canned
  let streamer: Canned
  let slow: Canned
  let flaky: Canned
  let g: TestGateway

  before(async () => {
    col = await startTraceCollector()
    ok = await canned('json')
    bad = await canned('fail')
    streamer = await canned('stream')
    slow = await canned('slow')
    flaky = await canned('flaky')
    g = await startTestGateway(gatewayYaml(col.url, { backends: `
backends:
  - { id: good, type: openai-compatible, url: "${ok.url}", models: { gpt-4o-mini: gpt-4o-mini-upstream } }
  - { id: broken, type: openai-compatible, url: "${bad.url}" }
  - { id: streamy, type: openai-compatible, url: "${streamer.url}" }
  - { id: flaky, type: openai-compatible, url: "${flaky.url}" }
  - { id: mocky, type: mock }
  - { id: sluggish, type: openai-compatible, url: "${slow.url}", models: { hedged: gpt-4o-mini-upstream } }
pools:
  - { id: hedge-pool, strategy: priority, members: [ { backend: sluggish, priority: 1 }, { backend: good, priority: 2 } ] }
  - { id: failing-first, strategy: priority, members: [ { backend: broken, priority: 1 }, { backend: good, priority: 2 } ] }
models:
  - { name: gpt-4o-mini, target: good }
  - { name: fallible, target: failing-first }
  - { name: streamed, target: streamy }
  - { name: doomed, target: broken, maxAttempts: 1 }
  - { name: resp-model, target: mocky }
  - { name: dall-e-2, target: mocky }
  - { name: hedged, target: hedge-pool, hedge: { after: 50ms } }
  - { name: retried, target: flaky, retry: { attempts: 1, maxWait: 1s } }
` }))
  })
  after(async () => {
    await g?.close()
    await Promise.all([col?.close(), ok?.close(), bad?.close(), streamer?.close(), slow?.close(), flaky?.close()])
  })

  const spansOf = (traceId: string) => col.spans.filter((s) => s.traceId === traceId)

  it('exports one trace per request: a SERVER span that is the child of the client’s span, and a CLIENT span per try', async () => {
    const before = ok.seen.length
    const r = await chat(g.url, { model: 'gpt-4o-mini' }, { traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'vendor=abc' })
    assert.equal(r.status, 200, r.text)
    await waitUntil(() => spansOf(CLIENT_TRACE).length >= 2, 'the request’s two spans')
    const spans = spansOf(CLIENT_TRACE)
    assert.equal(spans.length, 2, 'one request span and one attempt span, nothing else')
    const server = spans.find((s) => s.kind === 2)!
    const client = spans.find((s) => s.kind === 3)!
    assert.ok(server && client, 'a SERVER and a CLIENT span')
    assert.equal(server.parentSpanId, CLIENT_SPAN, 'the request span is a child of the client’s span')
    assert.equal(server.name, 'POST /v1/chat/completions')
    assert.equal(client.parentSpanId, server.spanId, 'the attempt span is a child of the request span')
    assert.equal(server.service, 'sluice-traces')
    assert.equal(col.posts[0]!.path, '/v1/traces')
    assert.match(col.posts[0]!.contentType, /application\/json/)

    // The attempt span: GenAI inference conventions, with the backend's own figures.
    assert.equal(client.name, 'chat gpt-4o-mini-upstream')
    const a = client.attributes
    assert.equal(a['gen_ai.operation.name'], 'chat')
    assert.equal(a['gen_ai.provider.name'], 'openai')
    assert.equal(a['gen_ai.request.model'], 'gpt-4o-mini-upstream')
    assert.equal(a['gen_ai.request.max_tokens'], 50)
    assert.equal(a['gen_ai.request.temperature'], 0.3)
    assert.equal(a['gen_ai.response.model'], 'gpt-4o-mini-2024-07-18')
    assert.equal(a['gen_ai.response.id'], 'chatcmpl-fixed-1')
    assert.deepEqual(a['gen_ai.response.finish_reasons'], ['stop'])
    assert.equal(a['gen_ai.usage.input_tokens'], JSON_USAGE.prompt_tokens)
    assert.equal(a['gen_ai.usage.output_tokens'], JSON_USAGE.completion_tokens)
    assert.equal(a['server.address'], '127.0.0.1')
    assert.equal(a['http.response.status_code'], 200)
    assert.equal(a['sluice.backend.id'], 'good')
    assert.equal(client.status, 0)

    // The request span: the public model, the consumer, the outcome.
    const s = server.attributes
    assert.equal(s['gen_ai.request.model'], 'gpt-4o-mini')
    assert.equal(s['gen_ai.usage.input_tokens'], JSON_USAGE.prompt_tokens)
    assert.equal(s['gen_ai.usage.output_tokens'], JSON_USAGE.completion_tokens)
    assert.equal(s['http.response.status_code'], 200)
    assert.equal(s['sluice.consumer.id'], 'team-a')
    assert.ok(server.startNs <= client.startNs && client.endNs <= server.endNs, 'the attempt lies within the request')

    // The backend got the attempt span as its parent, in the client's trace, with the client's tracestate.
    assert.equal(ok.seen.length, before + 1)
    const tp = traceparentOf(ok.seen.at(-1)!)
    assert.ok(tp, 'the backend received a traceparent')
    assert.equal(tp.traceId, CLIENT_TRACE)
    assert.equal(tp.spanId, client.spanId)
    assert.equal(tp.flags, '01')
    assert.equal(ok.seen.at(-1)!.tracestate, 'vendor=abc')

    // No prompt or completion text, nor the key, anywhere in the exported spans.
    const everything = JSON.stringify(spans.map((x) => x.attributes))
    for (const secret of [PROMPT, ANSWER, KEY]) assert.ok(!everything.includes(secret), `spans must not carry "${secret}"`)
  })

  it('a failover shows two attempt spans: the failed one with error.type, then the one that answered', async () => {
    const r = await chat(g.url, { model: 'fallible' })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.headers.get('x-sluice-backend'), 'good')
    const tp = traceparentOf(ok.seen.at(-1)!)!
    await waitUntil(() => spansOf(tp.traceId).length >= 3, 'the failover trace’s three spans')
    const spans = spansOf(tp.traceId)
    assert.equal(spans.length, 3)
    const server = spans.find((s) => s.kind === 2)!
    const tries = spans.filter((s) => s.kind === 3).sort((x, y) => Number(x.attributes['sluice.attempt']) - Number(y.attributes['sluice.attempt']))
    assert.equal(tries.length, 2)
    const [first, second] = tries as [ExportedSpan, ExportedSpan]
    assert.equal(server.parentSpanId, '', 'no client traceparent: the request span is a root')
    for (const t of tries) assert.equal(t.parentSpanId, server.spanId)
    assert.equal(first.attributes['sluice.backend.id'], 'broken')
    assert.equal(first.attributes['error.type'], '503')
    assert.equal(first.attributes['http.response.status_code'], 503)
    assert.equal(first.status, 2, 'the failed try is in error')
    assert.equal(second.attributes['sluice.backend.id'], 'good')
    assert.equal(second.status, 0)
    assert.equal(second.attributes['error.type'], undefined)
    assert.equal(second.attributes['gen_ai.usage.output_tokens'], JSON_USAGE.completion_tokens)
    assert.equal(server.status, 0, 'the request itself succeeded')
    assert.equal(server.attributes['sluice.attempts'], 2)
    // Each try told its backend its own span.
    assert.equal(traceparentOf(bad.seen.at(-1)!)!.spanId, first.spanId)
    assert.equal(tp.spanId, second.spanId)
  })

  it('a request no backend can answer is an ERROR span with error.type, as is its try', async () => {
    const trace = '9'.repeat(32)
    const r = await chat(g.url, { model: 'doomed' }, { traceparent: `00-${trace}-${'8'.repeat(16)}-01` })
    assert.equal(r.status, 502, r.text)
    await waitUntil(() => spansOf(trace).length >= 2, 'the failed request’s spans')
    const server = spansOf(trace).find((s) => s.kind === 2)!
    const attempt = spansOf(trace).find((s) => s.kind === 3)!
    assert.equal(server.status, 2)
    assert.equal(server.attributes['error.type'], 'bad_gateway')
    assert.equal(server.attributes['http.response.status_code'], 502)
    assert.equal(attempt.status, 2)
    assert.equal(attempt.attributes['error.type'], '503')
  })

  it('a hedge gets a span of its own: the slow try is cancelled (not an error), the hedge answered', async () => {
    const trace = '7'.repeat(32)
    const r = await chat(g.url, { model: 'hedged' }, { traceparent: `00-${trace}-${'6'.repeat(16)}-01` })
    assert.equal(r.status, 200, r.text)
    assert.equal(r.headers.get('x-sluice-backend'), 'good')
    await waitUntil(() => spansOf(trace).filter((s) => s.kind === 3).length >= 2 && spansOf(trace).some((s) => s.kind === 2), 'the hedged request’s spans')
    const tries = spansOf(trace).filter((s) => s.kind === 3)
    assert.equal(tries.length, 2)
    const slow = tries.find((t) => t.attributes['sluice.backend.id'] === 'sluggish')!
    const fast = tries.find((t) => t.attributes['sluice.backend.id'] === 'good')!
    assert.equal(slow.attributes['sluice.attempt.outcome'], 'cancelled')
    assert.equal(slow.status, 0, 'a cancelled try is not an error')
    assert.equal(fast.attributes['sluice.attempt.outcome'], 'answered')
    assert.equal(fast.attributes['gen_ai.usage.input_tokens'], JSON_USAGE.prompt_tokens)
    assert.equal(slow.attributes['gen_ai.usage.input_tokens'], undefined, 'the answer’s usage is the answering try’s')
  })

  it('a retry of the same member gets a span of its own', async () => {
    const trace = '3'.repeat(32)
    const r = await chat(g.url, { model: 'retried' }, { traceparent: `00-${trace}-${'2'.repeat(16)}-01` })
    assert.equal(r.status, 200, r.text)
    assert.equal(flaky.seen.length, 2, 'refused once, then answered')
    await waitUntil(() => spansOf(trace).filter((s) => s.kind === 3).length >= 2 && spansOf(trace).some((s) => s.kind === 2), 'the retried request’s spans')
    const tries = spansOf(trace).filter((s) => s.kind === 3).sort((x, y) => Number(x.attributes['sluice.attempt']) - Number(y.attributes['sluice.attempt']))
    assert.equal(tries.length, 2)
    assert.deepEqual(tries.map((t) => t.attributes['sluice.backend.id']), ['flaky', 'flaky'])
    assert.equal(tries[0]!.attributes['error.type'], '503')
    assert.equal(tries[1]!.attributes['sluice.attempt.outcome'], 'answered')
    assert.deepEqual(flaky.seen.map((h) => traceparentOf(h)!.spanId), tries.map((t) => t.spanId), 'each try sent its own span id')
  })

  it('a malformed traceparent starts a new trace; the request is served as usual', async () => {
    const before = col.spans.length
    const r = await chat(g.url, { model: 'gpt-4o-mini' }, { traceparent: 'zz-not-a-trace-parent', tracestate: 'x'.repeat(600) })
    assert.equal(r.status, 200, r.text)
    const tp = traceparentOf(ok.seen.at(-1)!)!
    assert.ok(tp, 'the backend still gets a valid traceparent')
    await waitUntil(() => spansOf(tp.traceId).length >= 2, 'the new trace’s spans')
    assert.equal(spansOf(tp.traceId).find((s) => s.kind === 2)!.parentSpanId, '')
    assert.ok(col.spans.length > before)
  })

  it('the official openai SDK’s traceparent links its streamed call to the trace the backend sees', async () => {
    const { default: OpenAI } = await import('openai')
    const client = new OpenAI({ apiKey: KEY, baseURL: `${g.url}/v1`, maxRetries: 0 })
    const trace = '5'.repeat(32)
    const before = streamer.seen.length
    const stream = await client.chat.completions.create(
      { model: 'streamed', stream: true, messages: [{ role: 'user', content: PROMPT }] },
      { headers: { traceparent: `00-${trace}-${'4'.repeat(16)}-01` } },
    )
    let text = ''
    for await (const chunk of stream) text += chunk.choices[0]?.delta?.content ?? ''
    assert.equal(text, 'confidential answer words')
    assert.equal(streamer.seen.length, before + 1)
    const tp = traceparentOf(streamer.seen.at(-1)!)!
    assert.equal(tp.traceId, trace)
    await waitUntil(() => spansOf(trace).length >= 2, 'the SDK call’s spans')
    const server = spansOf(trace).find((s) => s.kind === 2)!
    const attempt = spansOf(trace).find((s) => s.kind === 3)!
    assert.equal(server.parentSpanId, '4'.repeat(16))
    assert.equal(attempt.spanId, tp.spanId)
    assert.equal(attempt.attributes['gen_ai.usage.output_tokens'], STREAM_USAGE.completion_tokens, 'the usage the gateway asked for upstream')
  })

  it('a streamed Responses API call (openai SDK, the built-in mock) carries the usage and final status the mock reported', async () => {
    const { default: OpenAI } = await import('openai')
    const client = new OpenAI({ apiKey: KEY, baseURL: `${g.url}/v1`, maxRetries: 0 })
    const trace = '0123456789abcdef'.repeat(2)
    const stream = await client.responses.create(
      { model: 'resp-model', input: 'Say something', stream: true },
      { headers: { traceparent: `00-${trace}-${'0123456789abcdef'}-01` } },
    )
    let completed: { id: string; status?: string; usage?: { input_tokens: number; output_tokens: number } | null } | null = null
    for await (const ev of stream) if (ev.type === 'response.completed') completed = ev.response
    assert.ok(completed?.usage, 'the mock reported usage in response.completed')
    await waitUntil(() => spansOf(trace).length >= 2, 'the Responses call’s spans')
    const attempt = spansOf(trace).find((s) => s.kind === 3)!
    assert.equal(attempt.name, 'chat resp-model')
    assert.equal(attempt.attributes['gen_ai.provider.name'], 'sluice.mock')
    assert.equal(attempt.attributes['gen_ai.usage.input_tokens'], completed.usage.input_tokens)
    assert.equal(attempt.attributes['gen_ai.usage.output_tokens'], completed.usage.output_tokens)
    // A Responses call is a hub (chat) request inside the kernel, whatever the backend: its finish reason is the hub's.
    assert.deepEqual(attempt.attributes['gen_ai.response.finish_reasons'], [completed.status === 'completed' ? 'stop' : 'length'])
    assert.equal(attempt.attributes['gen_ai.response.id'], completed.id)
  })

  it('an image generation (media route, openai SDK) is traced like chat: a request span under the client’s, and its try', async () => {
    const { default: OpenAI } = await import('openai')
    const client = new OpenAI({ apiKey: KEY, baseURL: `${g.url}/v1`, maxRetries: 0 })
    const trace = 'fedcba9876543210'.repeat(2)
    const parent = 'a1b2c3d4e5f60718'
    const img = await client.images.generate({ model: 'dall-e-2', prompt: 'a lighthouse at dawn', size: '256x256', n: 1 }, { headers: { traceparent: `00-${trace}-${parent}-01` } })
    assert.equal(img.data?.length, 1)
    await waitUntil(() => spansOf(trace).length >= 2, 'the image call’s spans')
    const spans = spansOf(trace)
    assert.equal(spans.length, 2, 'one request span and one attempt span')
    const server = spans.find((s) => s.kind === 2)!
    const attempt = spans.find((s) => s.kind === 3)!
    assert.equal(server.parentSpanId, parent)
    assert.equal(server.name, 'POST /v1/images/generations')
    assert.equal(attempt.parentSpanId, server.spanId)
    assert.equal(attempt.attributes['sluice.backend.id'], 'mocky')
    assert.equal(attempt.attributes['gen_ai.operation.name'], 'images.generations')
    assert.equal(attempt.attributes['http.response.status_code'], 200)
  })

  it('a streamed request’s span ends after the last chunk, with the usage the stream reported', async () => {
    const trace = 'c'.repeat(32)
    const r = await chat(g.url, { model: 'streamed', stream: true, stream_options: { include_usage: true } }, { traceparent: `00-${trace}-${'d'.repeat(16)}-01` })
    assert.equal(r.status, 200)
    assert.match(r.text, /\[DONE\]/)
    await waitUntil(() => spansOf(trace).length >= 2, 'the stream’s spans')
    const server = spansOf(trace).find((s) => s.kind === 2)!
    const attempt = spansOf(trace).find((s) => s.kind === 3)!
    const ms = (s: ExportedSpan) => Number(s.endNs - s.startNs) / 1e6
    // The backend paused STREAM_PAUSE_MS between its first and last chunks: spans that ended at the
    // response headers (or the first chunk) would be shorter than the pause.
    assert.ok(ms(attempt) >= STREAM_PAUSE_MS - 5, `attempt span lasted ${ms(attempt)} ms`)
    assert.ok(ms(server) >= STREAM_PAUSE_MS - 5, `request span lasted ${ms(server)} ms`)
    assert.ok(server.endNs >= attempt.endNs, 'the request span ends after the attempt’s last chunk')
    assert.equal(attempt.attributes['gen_ai.usage.input_tokens'], STREAM_USAGE.prompt_tokens)
    assert.equal(attempt.attributes['gen_ai.usage.output_tokens'], STREAM_USAGE.completion_tokens)
    assert.equal(attempt.attributes['gen_ai.response.id'], 'chatcmpl-stream-1')
    assert.deepEqual(attempt.attributes['gen_ai.response.finish_reasons'], ['stop'])
    assert.equal(server.attributes['gen_ai.usage.output_tokens'], STREAM_USAGE.completion_tokens)
  })
})

describe('trace sampling', () => {
  it('sample 0 exports nothing while sample 1 exports every request; a sampled client parent is honoured either way', async () => {
    const colOn = await startTraceCollector()
    const colOff = await startTraceCollector()
    const up = await canned('json')
    const backends = `
backends:
  - { id: good, type: openai-compatible, url: "${up.url}" }
models:
  - { name: gpt-4o-mini, target: good }
`
    // Two gateways in one process, each with its own tracer provider, collector and service name.
    const on = await startTestGateway(gatewayYaml(colOn.url, { sample: 1, service: 'gw-on', backends }))
    const off = await startTestGateway(gatewayYaml(colOff.url, { sample: 0, service: 'gw-off', backends }))
    try {
      for (let i = 0; i < 3; i++) {
        assert.equal((await chat(on.url, { model: 'gpt-4o-mini' })).status, 200)
        assert.equal((await chat(off.url, { model: 'gpt-4o-mini' })).status, 200)
      }
      // The unsampled requests still propagate their trace context, marked not sampled.
      const flags = up.seen.map((h) => traceparentOf(h)!.flags)
      assert.deepEqual(flags, ['01', '00', '01', '00', '01', '00'])
      // A client's sampled traceparent is recorded even at sample 0 (parent-based).
      const parentTrace = 'e'.repeat(32)
      assert.equal((await chat(off.url, { model: 'gpt-4o-mini' }, { traceparent: `00-${parentTrace}-${'f'.repeat(16)}-01` })).status, 200)
      // And a client's unsampled one is not recorded at sample 1.
      const unsampledTrace = '1'.repeat(32)
      assert.equal((await chat(on.url, { model: 'gpt-4o-mini' }, { traceparent: `00-${unsampledTrace}-${'2'.repeat(16)}-00` })).status, 200)
      // Closing a gateway flushes its span batch: whatever it would ever export has arrived after close().
      await on.close()
      await off.close()
      assert.equal(colOn.spans.filter((s) => s.kind === 2).length, 3, 'sample 1: one request span per unparented request')
      assert.equal(colOn.spans.filter((s) => s.kind === 3).length, 3)
      assert.ok(colOn.spans.every((s) => s.service === 'gw-on'), 'no span of the other gateway')
      assert.ok(!colOn.spans.some((s) => s.traceId === unsampledTrace), 'an unsampled parent is honoured')
      assert.deepEqual(colOff.spans.map((s) => s.traceId), [parentTrace, parentTrace], 'sample 0: only the sampled client’s trace')
      assert.ok(colOff.spans.every((s) => s.service === 'gw-off'))
    } finally {
      await on.close().catch(() => {})
      await off.close().catch(() => {})
      await Promise.all([colOn.close(), colOff.close(), up.close()])
    }
  })
})

describe('debug timings header', () => {
  let up: Canned
  let streamer: Canned
  let g: TestGateway
  const DEBUG_KEY = 'sk-debug-allowed-1'
  const PLAIN_KEY = 'sk-debug-refused-1'

  before(async () => {
    up = await canned('json')
    streamer = await canned('stream')
    // Tracing off: the timings need none of it.
    g = await startTestGateway(`
backends:
  - { id: good, type: openai-compatible, url: "${up.url}" }
  - { id: streamy, type: openai-compatible, url: "${streamer.url}" }
models:
  - { name: gpt-4o-mini, target: good }
  - { name: streamed, target: streamy }
products:
  - { id: debugging, debug: { timings: true } }
  - { id: plain }
consumers:
  - { id: dev, product: debugging, keys: [ { value: ${DEBUG_KEY} } ] }
  - { id: other, product: plain, keys: [ { value: ${PLAIN_KEY} } ] }
`)
  })
  after(async () => {
    await g?.close()
    await Promise.all([up?.close(), streamer?.close()])
  })

  const ask = (key: string, headers: Record<string, string>, body: Record<string, unknown> = {}) => fetch(`${g.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: PROMPT }], ...body }),
  })

  /** `name;desc="…";dur=1.23` entries of a Server-Timing value. */
  const entries = (v: string) => v.split(/,\s*/).map((e) => {
    const [name, ...params] = e.split(';')
    const p = Object.fromEntries(params.map((x) => { const [k, val] = x.split('='); return [k!, val!] }))
    return { name: name!, desc: p.desc?.replace(/^"|"$/g, ''), dur: p.dur === undefined ? null : Number(p.dur) }
  })

  it('a permitted consumer gets its request’s stage timings; without permission, or without asking, none', async () => {
    const permitted = await ask(DEBUG_KEY, { 'x-sluice-debug': 'timings' })
    assert.equal(permitted.status, 200)
    await permitted.text()
    const value = permitted.headers.get('server-timing')
    assert.ok(value, 'the permitted consumer got Server-Timing')
    const e = entries(value)
    const names = e.map((x) => x.name)
    for (const stage of ['auth', 'body', 'inbound', 'routing', 'upstream-1', 'upstream-1-content', 'outbound', 'total']) assert.ok(names.includes(stage), `stage ${stage} in ${value}`)
    assert.equal(e.find((x) => x.name === 'upstream-1')!.desc, 'good 200')
    for (const x of e) assert.ok(x.dur !== null && x.dur >= 0, `${x.name} has a duration`)
    const total = e.find((x) => x.name === 'total')!.dur!
    const upstream = e.find((x) => x.name === 'upstream-1-content')!.dur!
    assert.ok(upstream <= total, 'an upstream try lies within the total')
    // Nothing but stage names, durations, the backend id and its status.
    for (const secret of ['127.0.0.1', 'http', DEBUG_KEY, PROMPT]) assert.ok(!value.includes(secret), `no "${secret}" in ${value}`)

    const refused = await ask(PLAIN_KEY, { 'x-sluice-debug': 'timings' })
    assert.equal(refused.status, 200, 'the header is ignored, not refused')
    await refused.text()
    assert.equal(refused.headers.get('server-timing'), null, 'a consumer whose product does not allow it gets no timings')

    const unasked = await ask(DEBUG_KEY, {})
    await unasked.text()
    assert.equal(unasked.headers.get('server-timing'), null, 'no timings unless asked for')
  })

  it('a permitted stream gets the stages up to its first content in the header and the relay in a trailer', async () => {
    const res = await new Promise<http.IncomingMessage & { body: string }>((resolve, reject) => {
      const req = http.request(`${g.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${DEBUG_KEY}`, 'content-type': 'application/json', 'x-sluice-debug': 'timings' },
      }, (r) => {
        let body = ''
        r.setEncoding('utf8')
        r.on('data', (c: string) => { body += c })
        r.on('end', () => resolve(Object.assign(r, { body })))
      })
      req.on('error', reject)
      req.end(JSON.stringify({ model: 'streamed', stream: true, messages: [{ role: 'user', content: PROMPT }] }))
    })
    assert.equal(res.statusCode, 200)
    assert.match(res.body, /\[DONE\]/)
    const head = entries(String(res.headers['server-timing']))
    assert.ok(head.some((x) => x.name === 'upstream-1-content'))
    const trailer = entries(String(res.trailers['server-timing'] ?? ''))
    const relay = trailer.find((x) => x.name === 'relay')
    assert.ok(relay, `a relay stage in the trailer: ${JSON.stringify(res.trailers)}`)
    // The backend paused between its first content (when the headers went out) and its last chunk: a relay
    // figure taken at the headers would be ~0. It falls short of the whole pause by however late the headers
    // left after the first content, so only half the pause is required.
    assert.ok(relay.dur! >= STREAM_PAUSE_MS / 2, `relay took ${relay.dur} ms`)
    assert.ok(trailer.find((x) => x.name === 'total')!.dur! >= relay.dur!)
  })

  it('an unpermitted stream gets neither header nor trailer', async () => {
    const res = await ask(PLAIN_KEY, { 'x-sluice-debug': 'timings' }, { model: 'streamed', stream: true })
    assert.equal(res.status, 200)
    await res.text()
    assert.equal(res.headers.get('server-timing'), null)
    assert.equal(res.headers.get('trailer'), null)
  })
})

describe('tracing configuration', () => {
  it('refuses tracing without an OTLP endpoint, and accepts it with one', async () => {
    const { loadConfigText } = await import('../src/config/load.ts')
    const { builtinPolicies } = await import('../src/policies/registry.ts')
    const base = 'backends: [ { id: m, type: mock } ]\nmodels: [ { name: x, target: m } ]\n'
    const refused = loadConfigText(`${base}telemetry: { tracing: { sample: 0.5 } }`, { registry: builtinPolicies(), env: {} })
    assert.equal(refused.ok, false)
    assert.ok(!refused.ok && refused.problems.some((p) => /tracing needs telemetry\.otlp/.test(p.message)), JSON.stringify(!refused.ok && refused.problems))
    const accepted = loadConfigText(`${base}telemetry: { otlp: { endpoint: 'http://127.0.0.1:4318' }, tracing: { sample: 0.5 } }`, { registry: builtinPolicies(), env: {} })
    assert.ok(accepted.ok)
    assert.equal(accepted.ok && accepted.config.telemetry.tracing?.sample, 0.5)
    assert.equal(accepted.ok && accepted.config.telemetry.tracing?.parentBased, true)
    const badRatio = loadConfigText(`${base}telemetry: { otlp: { endpoint: 'http://127.0.0.1:4318' }, tracing: { sample: 1.5 } }`, { registry: builtinPolicies(), env: {} })
    assert.equal(badRatio.ok, false)
  })

  it('sends traces to /v1/traces beside the metrics endpoint, or where tracing.endpoint says', async () => {
    const { tracesUrl } = await import('../src/telemetry/tracing-spans.ts')
    assert.equal(tracesUrl('http://c:4318', undefined), 'http://c:4318/v1/traces')
    assert.equal(tracesUrl('http://c:4318/v1/metrics', undefined), 'http://c:4318/v1/traces')
    assert.equal(tracesUrl('http://c:4318/otlp', undefined), 'http://c:4318/otlp/v1/traces')
    assert.equal(tracesUrl('http://c:4318', 'http://t:9/x'), 'http://t:9/x')
  })
})
