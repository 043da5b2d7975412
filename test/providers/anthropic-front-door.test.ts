import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import Anthropic from '@anthropic-ai/sdk'
import { SLUICE_KEY, startLedgeredGateway } from '../helpers/providers.ts'
import type { TestGateway } from '../helpers/gateway.ts'
import type { UsageRecord } from '../../src/stores/ledger.ts'

/**
 * The `/v1/messages` front door: the gateway's own errors in Anthropic's shape, Anthropic's rate-limit headers,
 * the exact cache, omissions reported, count_tokens, and a malformed backend stream (a documented error, a
 * ledger row, a gateway that lives on).
 */
const OTHER_KEY = 'sk-sluice-front-door-other'

/** An "Anthropic" backend whose stream breaks: a malformed event after some text, or before any. */
function brokenAnthropic(): Promise<{ url: string; close(): void }> {
  const server = http.createServer((req, res) => {
    req.resume()
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const start = 'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_b","type":"message","role":"assistant","model":"m","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}\n\n'
      const text = 'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\nevent: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Half an answer"}}\n\n'
      const broken = 'event: content_block_delta\ndata: {"type":"content_block_delta",,,\n\n'
      res.end(req.url!.includes('early') ? start + broken : start + text + broken)
    })
  })
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ url: `http://127.0.0.1:${(server.address() as { port: number }).port}`, close: () => server.close() })))
}

let tg: TestGateway & { rows(): Promise<Map<string, UsageRecord>> }
let broken: { url: string; close(): void }
before(async () => {
  broken = await brokenAnthropic()
  tg = await startLedgeredGateway(`
backends:
  - { id: openai-mock, type: mock, headers: { x-mock-completion-tokens: '5' } }
  - { id: broken-late, type: anthropic, url: ${broken.url}/late, auth: { apiKey: k } }
  - { id: broken-early, type: anthropic, url: ${broken.url}/early, auth: { apiKey: k } }
models:
  - { name: claude-a, target: openai-mock }
  - { name: claude-limited, target: openai-mock }
  - { name: claude-cached, target: openai-mock }
  - { name: broken-late, target: broken-late }
  - { name: broken-early, target: broken-early }
products:
  - id: limited
    models: [claude-limited]
    policies:
      - token-limit: { counterKey: consumer.id, tokensPerMinute: 400 }
  - id: cached
    models: [claude-a, claude-cached, broken-late, broken-early]
    policies:
      - cache: { ttl: 1h }
consumers:
  - { id: main, product: cached, keys: [ { value: ${SLUICE_KEY} } ] }
  - { id: other, product: limited, keys: [ { value: ${OTHER_KEY} } ] }
`)
})
after(async () => {
  await tg?.close()
  broken?.close()
})

const post = (path: string, body: unknown, headers: Record<string, string> = { 'x-api-key': SLUICE_KEY }) =>
  fetch(tg.url + path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) })
const hello = (model = 'claude-a', extra: Record<string, unknown> = {}) => ({ model, max_tokens: 20, messages: [{ role: 'user', content: 'hello' }], ...extra })

describe('the gateway\'s own errors in Anthropic\'s shape', () => {
  it('a key in x-api-key or Authorization is accepted; none or a wrong one is a 401 authentication_error', async () => {
    assert.equal((await post('/v1/messages', hello())).status, 200)
    assert.equal((await post('/v1/messages', hello(), { authorization: `Bearer ${SLUICE_KEY}` })).status, 200)
    for (const headers of [{}, { 'x-api-key': 'sk-wrong' }] as Record<string, string>[]) {
      const r = await post('/v1/messages', hello(), headers)
      assert.equal(r.status, 401)
      assert.deepEqual(Object.keys(await r.json() as object), ['type', 'error'])
    }
    await assert.rejects(new Anthropic({ apiKey: 'sk-wrong', baseURL: tg.url, maxRetries: 0 }).messages.create(hello() as any), Anthropic.AuthenticationError)
  })

  it('bad JSON, a bad field, an unknown block, a missing model and a forbidden one', async () => {
    const cases: [unknown, number, string, RegExp][] = [
      ['{not json', 400, 'invalid_request_error', /JSON/],
      [{ model: 'claude-a', messages: [] }, 400, 'invalid_request_error', /max_tokens/],
      [hello('claude-a', { messages: [{ role: 'user', content: [{ type: 'document_v9', x: 1 }] }] }), 400, 'invalid_request_error', /messages\[0\]\.content\[0\]\.type/],
      [hello('nope'), 404, 'not_found_error', /nope/],
      [hello('claude-limited'), 403, 'permission_error', /claude-limited/],
    ]
    for (const [body, status, type, message] of cases) {
      const r = await post('/v1/messages', body)
      const j = (await r.json()) as { type: string; error: { type: string; message: string } }
      assert.equal(r.status, status, JSON.stringify(j))
      assert.equal(j.type, 'error')
      assert.equal(j.error.type, type)
      assert.match(j.error.message, message)
    }
    const unknown = await post('/v1/messages/nothing', hello())
    assert.equal(unknown.status, 404)
    assert.equal(((await unknown.json()) as any).error.type, 'not_found_error')
  })

  it('token limits answer with anthropic-ratelimit-* beside x-ratelimit-*, and refuse with 429 and retry-after', async () => {
    const ok = await post('/v1/messages', hello('claude-limited', { max_tokens: 100 }), { 'x-api-key': OTHER_KEY })
    assert.equal(ok.status, 200)
    const limit = ok.headers.get('x-ratelimit-limit-tokens')
    assert.equal(limit, '400')
    assert.equal(ok.headers.get('anthropic-ratelimit-tokens-limit'), '400')
    assert.equal(ok.headers.get('anthropic-ratelimit-tokens-remaining'), ok.headers.get('x-ratelimit-remaining-tokens'))
    const reset = Date.parse(ok.headers.get('anthropic-ratelimit-tokens-reset')!)
    assert.ok(reset > Date.now() - 1000 && reset <= Date.now() + 61_000, 'an RFC 3339 instant within the minute')
    const client = new Anthropic({ apiKey: OTHER_KEY, baseURL: tg.url, maxRetries: 0 })
    await assert.rejects(client.messages.create(hello('claude-limited', { max_tokens: 390 }) as any), (e: any) =>
      e?.status === 429 && Number(e.headers.get('retry-after')) >= 1 && e.error?.error?.type === 'rate_limit_error')
  })
})

describe('caches, omissions, count_tokens', () => {
  it('the exact cache serves /v1/messages again, JSON and stream, in Anthropic shape', async () => {
    const body = hello('claude-cached', { messages: [{ role: 'user', content: 'cache me' }] })
    const first = await post('/v1/messages', body)
    const a = (await first.json()) as Anthropic.Message
    const second = await post('/v1/messages', body)
    assert.equal(second.headers.get('x-sluice-cache'), 'hit')
    const b = (await second.json()) as Anthropic.Message
    assert.deepEqual(b.content, a.content)
    assert.deepEqual(b.usage, a.usage)
    const streamed = await new Anthropic({ apiKey: SLUICE_KEY, baseURL: tg.url, maxRetries: 0 }).messages.stream(body as any).finalMessage()
    assert.deepEqual(streamed.content, a.content)
  })

  it('fields dropped for an OpenAI backend are named in x-sluice-omitted', async () => {
    const r = await post('/v1/messages', hello('claude-a', { context_management: { edits: [] }, thinking: { type: 'enabled', budget_tokens: 1024 }, output_config: { effort: 'high' } }))
    assert.equal(r.status, 200)
    assert.deepEqual(r.headers.get('x-sluice-omitted')!.split(',').sort(), ['context_management', 'output_config.effort', 'thinking'])
    const plain = await post('/v1/messages', hello())
    assert.equal(plain.headers.get('x-sluice-omitted'), null)
  })

  it('count_tokens needs a key and counts the translated prompt', async () => {
    const client = new Anthropic({ apiKey: SLUICE_KEY, baseURL: tg.url, maxRetries: 0 })
    const small = await client.messages.countTokens({ model: 'claude-a', messages: [{ role: 'user', content: 'hello' }] })
    const big = await client.messages.countTokens({ model: 'claude-a', messages: [{ role: 'user', content: 'hello '.repeat(50) }] })
    assert.ok(small.input_tokens > 0)
    assert.equal(big.input_tokens - small.input_tokens, 50) // " hello" is one token, fifty more of them
    const anon = await post('/v1/messages/count_tokens', { model: 'claude-a', messages: [] }, {})
    assert.equal(anon.status, 401)
    assert.equal(((await anon.json()) as any).error.type, 'authentication_error')
  })
})

describe('a malformed backend event', () => {
  it('after content: an Anthropic error event ends the stream, the ledger has the row, the gateway lives', async () => {
    const r = await post('/v1/messages', { ...hello('broken-late'), stream: true, }, { 'x-api-key': SLUICE_KEY, 'x-request-id': 'fd-broken-late' })
    assert.equal(r.status, 200)
    const text = await r.text()
    assert.match(text, /"text":"Half an answer"/)
    assert.match(text, /event: error\ndata: \{"type":"error","error":\{"type":"api_error"/)
    assert.doesNotMatch(text, /message_stop/)
    const row = (await tg.rows()).get('fd-broken-late')!
    assert.equal(row.errorCode, 'bad_gateway')
    assert.equal(row.status, 502)
    assert.equal((await post('/v1/messages', hello())).status, 200) // still serving
  })

  it('before content: a 502 in Anthropic shape, with its ledger row', async () => {
    const r = await post('/v1/messages', { ...hello('broken-early'), stream: true }, { 'x-api-key': SLUICE_KEY, 'x-request-id': 'fd-broken-early' })
    assert.equal(r.status, 502)
    assert.equal(((await r.json()) as any).error.type, 'api_error')
    assert.equal((await tg.rows()).get('fd-broken-early')!.status, 502)
  })
})
