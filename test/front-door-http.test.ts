import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { request } from 'undici'
import { authHeaders, startTestGateway, TEST_KEY, type TestGateway } from './helpers/gateway.ts'

const YAML = `
listen: { host: 127.0.0.1, port: 0, bodyLimit: 4KiB }
backends:
  - id: fast
    type: mock
  - id: slow
    type: mock
    ttft: 20ms
    tokensPerSecond: 20
    completionTokens: 40
  - id: refused
    type: openai-compatible
    url: http://127.0.0.1:1/v1
    auth: { apiKey: sk-provider-secret-that-must-not-leak }
  - id: hanging
    type: mock
    timeout: 300ms
    headers: { x-mock-hang: "1" }
  - id: idle
    type: mock
    idleTimeout: 300ms
    tokensPerSecond: 1
models:
  - { name: fast, target: fast }
  - { name: slow, target: slow }
  - { name: refused, target: refused }
  - { name: hanging, target: hanging }
  - { name: idle, target: idle }
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
`

let tg: TestGateway
before(async () => { tg = await startTestGateway(YAML) })
after(() => tg.close())

const chat = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello' }], ...extra })

async function post(path: string, body: string, headers: Record<string, string> = authHeaders()) {
  const res = await request(`${tg.url}${path}`, { method: 'POST', headers, body })
  const text = await res.body.text()
  return { status: res.statusCode, headers: res.headers, text, json: (() => { try { return JSON.parse(text) } catch { return null } })() }
}

function assertError(r: { status: number; json: any; text: string }, status: number, code: string) {
  assert.equal(r.status, status, r.text)
  assert.equal(r.json?.error?.code, code, r.text)
  assert.equal(typeof r.json.error.message, 'string')
  assert.ok('type' in r.json.error && 'param' in r.json.error)
  assert.doesNotMatch(r.text, /sk-provider-secret|sk-test-key|\bat .*\.ts:\d+/, 'no key or stack trace in an error')
}

test('malformed JSON, wrong shapes and empty bodies → 400 invalid_request_error', async () => {
  assertError(await post('/v1/chat/completions', '{"model": "fast", "messages": ['), 400, 'invalid_request_error')
  assertError(await post('/v1/chat/completions', '[1,2,3]'), 400, 'invalid_request_error')
  assertError(await post('/v1/chat/completions', JSON.stringify({ model: 'fast' })), 400, 'invalid_request_error')
  assertError(await post('/v1/chat/completions', ''), 400, 'invalid_request_error')
  assertError(await post('/v1/chat/completions', chat('fast', { max_tokens: -3 })), 400, 'invalid_request_error')
})

test('a body over the limit → 413 request_too_large', async () => {
  const big = chat('fast', { padding: 'x'.repeat(8 * 1024) })
  assertError(await post('/v1/chat/completions', big), 413, 'request_too_large')
})

test('unknown model → 404 model_not_found; missing or unknown key → 401 invalid_api_key', async () => {
  assertError(await post('/v1/chat/completions', chat('gpt-9')), 404, 'model_not_found')
  assertError(await post('/v1/chat/completions', chat('fast'), { 'content-type': 'application/json' }), 401, 'invalid_api_key')
  assertError(await post('/v1/chat/completions', chat('fast'), { 'x-api-key': 'nope-nope-nope' }), 401, 'invalid_api_key')
})

test('keys are accepted in all four contract headers', async () => {
  const variants: Array<Record<string, string>> = [{ authorization: `Bearer ${TEST_KEY}` }, { 'api-key': TEST_KEY }, { 'x-api-key': TEST_KEY }, { 'ocp-apim-subscription-key': TEST_KEY }]
  for (const h of variants) {
    const r = await post('/v1/chat/completions', chat('fast'), { ...h, 'content-type': 'application/json' })
    assert.equal(r.status, 200, `${Object.keys(h)[0]}: ${r.text}`)
  }
})

test('upstream refused → 502 bad_gateway without leaking the provider key', async () => {
  assertError(await post('/v1/chat/completions', chat('refused')), 502, 'bad_gateway')
})

test('upstream timeouts → 504 gateway_timeout (first byte, and idle stream)', async () => {
  assertError(await post('/v1/chat/completions', chat('hanging')), 504, 'gateway_timeout')
  // Idle timeout on a stream after its first content: headers are sent, so the stream ends with an error event.
  // (Before the first content nothing is sent yet: the router fails over, or answers 504; see test/failover.test.ts.)
  const r = await post('/v1/chat/completions', chat('idle', { stream: true }))
  assert.equal(r.status, 200)
  assert.match(r.text, /"code":"gateway_timeout"/)
  assert.match(r.text, /data: \[DONE\]/)
})

test('x-request-id: echoed when sent, generated otherwise, on errors too', async () => {
  const mine = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: { ...authHeaders(), 'x-request-id': 'req-abc-123' }, body: chat('fast') })
  await mine.body.text()
  assert.equal(mine.headers['x-request-id'], 'req-abc-123')
  const err = await post('/v1/chat/completions', chat('gpt-9'))
  assert.match(String(err.headers['x-request-id']), /^[0-9a-f-]{36}$/)
  const nf = await request(`${tg.url}/nowhere`)
  assert.equal(nf.statusCode, 404)
  assert.ok(nf.headers['x-request-id'])
  await nf.body.text()
})

test('a stream is relayed chunk by chunk: the first chunk arrives while the backend is still generating', async () => {
  const mock = tg.gw.mocks.server('slow')!
  const res = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('slow', { stream: true }) })
  assert.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
  let first = true
  let text = ''
  for await (const chunk of res.body) {
    text += chunk.toString()
    if (first && text.includes('"content":"')) {
      first = false
      assert.equal(mock.stats.active, 1, 'the backend has not finished: nothing was buffered')
      assert.ok(mock.stats.completionTokensSent < 40)
    }
  }
  assert.equal(first, false)
  assert.match(text, /data: \[DONE\]\n\n$/)
})

test('the client going away mid-stream aborts the upstream request', async () => {
  const mock = tg.gw.mocks.server('slow')!
  const abortedBefore = mock.stats.aborted
  const controller = new AbortController()
  const res = await request(`${tg.url}/v1/chat/completions`, { method: 'POST', headers: authHeaders(), body: chat('slow', { stream: true }), signal: controller.signal })
  for await (const chunk of res.body) {
    if (chunk.toString().includes('"content":"')) break
  }
  controller.abort()
  for (let i = 0; i < 100 && mock.stats.aborted === abortedBefore; i++) await new Promise((r) => setTimeout(r, 20))
  assert.equal(mock.stats.aborted, abortedBefore + 1, 'the mock saw its request cancelled')
  assert.ok(mock.stats.completionTokensSent < 80)
  // A failing wait, not a sleep: the gateway lets go of the request once the upstream cancel has gone through.
  for (let i = 0; i < 250 && tg.gw.inflight.count !== 0; i++) await new Promise((r) => setTimeout(r, 20))
  assert.equal(tg.gw.inflight.count, 0, 'the gateway let go of the request')
})

test('health and readiness', async () => {
  const h = await request(`${tg.url}/healthz`)
  assert.equal(h.statusCode, 200)
  assert.deepEqual(await h.body.json(), { status: 'ok' })
  const r = await request(`${tg.url}/readyz`)
  assert.equal(r.statusCode, 200)
  assert.equal(((await r.body.json()) as { status: string }).status, 'ready')
})

test('unknown endpoints and methods get OpenAI-shaped 404s', async () => {
  const r = await post('/v1/fine_tuning/jobs', '{}')
  assertError(r, 404, 'not_found')
})
