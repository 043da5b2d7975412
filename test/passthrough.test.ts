import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import http from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { EventStreamCodec } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { ledgerRow } from './helpers/ledger-row.ts'

const KEY_A = 'sk-passthrough-team-a'
const KEY_C = 'sk-passthrough-team-c'
// The AWS documentation's example keys (the mock's known test credentials), never real ones.
const AWS = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' }
const MODEL_ID = 'anthropic.claude-3-haiku-20240307-v1:0'
const INVOKE = `/native/bedrock/model/${encodeURIComponent(MODEL_ID)}/invoke`

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

/** A request with the path exactly as written (fetch and the SDKs would resolve `..` before sending). */
function raw(base: string, method: string, path: string, headers: Record<string, string>, body?: Buffer | string): Promise<Answer> {
  const u = new URL(base)
  return new Promise((resolve, reject) => {
    const req = http.request({ host: u.hostname, port: u.port, method, path, headers: { ...headers, ...(body !== undefined ? { 'content-length': String(Buffer.byteLength(body)) } : {}) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

const json = (a: Answer) => JSON.parse(a.body.toString('utf8')) as Record<string, any>

describe('passthrough routes (native provider APIs under a prefix)', () => {
  let mock: MockServer
  let gw: TestGateway
  const dir = mkdtempSync(join(tmpdir(), 'sluice-passthrough-'))

  before(async () => {
    mock = await startMockServer()
    gw = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - id: bed
    type: bedrock
    url: ${mock.url}
    region: us-east-1
    auth: { awsSigV4: { accessKeyId: ${AWS.accessKeyId}, secretAccessKey: ${AWS.secretAccessKey} } }
    models: { claude-haiku: ${MODEL_ID} }
    circuitBreaker: { failures: 2, window: 30s, statusCodes: ["500-599"], tripDuration: 60s }
  - { id: gem, type: gemini, url: ${mock.url}, auth: { apiKey: gem-backend-key } }
  - { id: oai, type: openai, url: ${mock.url}/v1, auth: { apiKey: sk-backend-openai } }
models:
  - { name: claude-haiku, target: bed }
pricing:
  models:
    claude-haiku: { input: 0.25, output: 1.25 }
passthrough:
  - { prefix: /native/bedrock, backend: bed, maxRequestBytes: 64KiB }
  - { prefix: /native/gemini, backend: gem }
  - { prefix: /native/openai, backend: oai }
  - { prefix: /native/tiny, backend: oai, maxRequestBytes: 1KiB, maxResponseBytes: 200 }
products:
  - { id: standard }
  - id: limited
    policies:
      - rate-limit: { requests: 2, per: 60s }
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY_A} } ] }
  - { id: team-c, product: limited, keys: [ { value: ${KEY_C} } ] }
`)
  })
  after(async () => {
    await gw.close()
    await mock.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('forwards Bedrock InvokeModel SigV4-signed, the body byte for byte, and records its usage', async () => {
    // Odd spacing and key order: a gateway that re-serialised the JSON would change these bytes.
    const body = Buffer.from('{ "messages" : [ {"role":"user","content":"Hello there"} ],\n  "max_tokens":7, "anthropic_version":"bedrock-2023-05-31" }')
    const res = await raw(gw.url, 'POST', INVOKE, { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json', 'x-request-id': 'pt-invoke-1' }, body)
    assert.equal(res.status, 200, res.body.toString())
    // The mock verified the SigV4 signature over the exact bytes it received, and names their hash.
    assert.equal(res.headers['x-mock-body-sha256'], createHash('sha256').update(body).digest('hex'))
    assert.equal(res.headers['x-mock-body-bytes'], String(body.length))
    assert.equal(res.headers['x-sluice-backend'], 'bed')
    const answer = json(res)
    assert.equal(answer.type, 'message')
    assert.equal(answer.usage.output_tokens, 7)
    const row = await ledgerRow(gw.gw, 'pt-invoke-1')
    assert.equal(row.consumer, 'team-a')
    assert.equal(row.model, 'claude-haiku')
    assert.equal(row.backend, 'bed')
    assert.equal(row.status, 200)
    assert.equal(row.promptTokens, answer.usage.input_tokens)
    assert.equal(row.completionTokens, 7)
    assert.ok(Math.abs(row.costUsd! - (answer.usage.input_tokens * 0.25 + 7 * 1.25) / 1e6) < 1e-12)

    // Contrast: the same request sent to the mock without the gateway's signature is refused there.
    const direct = await raw(mock.url, 'POST', `/model/${encodeURIComponent(MODEL_ID)}/invoke`, { 'content-type': 'application/json' }, body)
    assert.equal(direct.status, 403)
  })

  it('refuses a request without a Sluice key (401) and with an unknown one, before forwarding', async () => {
    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 3, messages: [{ role: 'user', content: 'hi' }] })
    const before = mock.stats.requests
    const none = await raw(gw.url, 'POST', INVOKE, { 'content-type': 'application/json' }, body)
    assert.equal(none.status, 401)
    assert.equal(json(none).error.code, 'invalid_api_key')
    const wrong = await raw(gw.url, 'POST', INVOKE, { 'x-api-key': 'sk-not-a-key-of-anyone', 'content-type': 'application/json' }, body)
    assert.equal(wrong.status, 401)
    assert.equal(mock.stats.requests, before, 'nothing reached the backend')
    const ok = await raw(gw.url, 'POST', INVOKE, { 'x-api-key': KEY_A, 'content-type': 'application/json' }, body)
    assert.equal(ok.status, 200)
  })

  it('relays a Bedrock event stream as it comes and reads its usage from the invocation metrics', async () => {
    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 6, messages: [{ role: 'user', content: 'Stream please' }] })
    const res = await raw(gw.url, 'POST', `/native/bedrock/model/${encodeURIComponent(MODEL_ID)}/invoke-with-response-stream`, { 'api-key': KEY_A, 'content-type': 'application/json', 'x-request-id': 'pt-stream-1' }, body)
    assert.equal(res.status, 200)
    assert.equal(res.headers['content-type'], 'application/vnd.amazon.eventstream')
    // Decoded here with @smithy/eventstream-codec, not the gateway's parser.
    const codec = new EventStreamCodec(toUtf8, fromUtf8)
    const events: Record<string, any>[] = []
    for (let off = 0; off < res.body.length;) {
      const len = res.body.readUInt32BE(off)
      const m = codec.decode(res.body.subarray(off, off + len))
      events.push(JSON.parse(Buffer.from((JSON.parse(toUtf8(m.body)) as { bytes: string }).bytes, 'base64').toString('utf8')))
      off += len
    }
    assert.equal(events[0]!.type, 'message_start')
    const metrics = events.at(-1)!['amazon-bedrock-invocationMetrics']
    assert.equal(metrics.outputTokenCount, 6)
    assert.equal(events.filter((e) => e.type === 'content_block_delta').length, 6)
    const row = await ledgerRow(gw.gw, 'pt-stream-1')
    assert.equal(row.promptTokens, metrics.inputTokenCount)
    assert.equal(row.completionTokens, 6)
  })

  it('forwards Gemini native paths with the backend key (the client\'s own key is stripped) and reads usageMetadata', async () => {
    const body = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'Hello Gemini' }] }], generationConfig: { maxOutputTokens: 4 } })
    // A client key starting with "invalid" is refused by the mock: it must never get there.
    const res = await raw(gw.url, 'POST', '/native/gemini/v1beta/models/gemini-2.0-flash:generateContent', { 'x-api-key': KEY_A, 'x-goog-api-key': 'invalid-client-key', 'content-type': 'application/json', 'x-request-id': 'pt-gem-1' }, body)
    assert.equal(res.status, 200, res.body.toString())
    const answer = json(res)
    const row = await ledgerRow(gw.gw, 'pt-gem-1')
    assert.equal(row.backend, 'gem')
    assert.equal(row.model, 'passthrough:/native/gemini') // a model this gateway does not know is not recorded by name
    assert.equal(row.promptTokens, answer.usageMetadata.promptTokenCount)
    assert.equal(row.completionTokens, answer.usageMetadata.candidatesTokenCount)
    assert.equal(row.completionTokens, 4)
  })

  it('relays an OpenAI SSE stream and reads the usage of its last chunk', async () => {
    const body = JSON.stringify({ model: 'gpt-4o-mini', stream: true, stream_options: { include_usage: true }, max_tokens: 5, messages: [{ role: 'user', content: 'Say hello' }] })
    const res = await raw(gw.url, 'POST', '/native/openai/chat/completions', { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json', 'x-request-id': 'pt-sse-1' }, body)
    assert.equal(res.status, 200)
    const text = res.body.toString('utf8')
    assert.ok(text.endsWith('data: [DONE]\n\n'))
    const row = await ledgerRow(gw.gw, 'pt-sse-1')
    // By hand (o200k_base): 'Say hello' = 2 tokens, 'user' = 1, 3 per message + 3 priming = 9; 5 generated.
    assert.equal(row.promptTokens, 9)
    assert.equal(row.completionTokens, 5)
  })

  it('refuses `..` and encoded traversal with 400 and never forwards it', async () => {
    const before = mock.stats.requests
    for (const path of ['/native/bedrock/../v1/models', '/native/bedrock/model/..', '/native/bedrock/model/%2e%2e/invoke', '/native/bedrock/model/%2E%2e%2Finvoke', '/native/bedrock/model%2f..%2finvoke', '/native/bedrock/./model/x/invoke', '/native/bedrock/model/a%5cb/invoke']) {
      const res = await raw(gw.url, 'POST', path, { 'x-api-key': KEY_A, 'content-type': 'application/json' }, '{}')
      assert.equal(res.status, 400, path)
      assert.equal(json(res).error.code, 'invalid_request_error', path)
    }
    assert.equal(mock.stats.requests, before, 'no traversal reached the backend')
    const ok = await raw(gw.url, 'POST', INVOKE, { 'x-api-key': KEY_A, 'content-type': 'application/json' }, JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 2, messages: [{ role: 'user', content: 'ok' }] }))
    assert.equal(ok.status, 200)
  })

  it('applies the product\'s request-rate limit', async () => {
    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] })
    const h = { 'x-api-key': KEY_C, 'content-type': 'application/json' }
    assert.equal((await raw(gw.url, 'POST', INVOKE, h, body)).status, 200)
    assert.equal((await raw(gw.url, 'POST', INVOKE, h, body)).status, 200)
    const third = await raw(gw.url, 'POST', INVOKE, h, body)
    assert.equal(third.status, 429)
    assert.equal(json(third).error.code, 'rate_limit_exceeded')
    assert.ok(Number(third.headers['retry-after']) > 0)
  })

  it('refuses a body over the route\'s limit with 413 (declared), and passes one under it', async () => {
    const small = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 2, messages: [{ role: 'user', content: 'x'.repeat(60_000) }] })
    assert.equal((await raw(gw.url, 'POST', INVOKE, { 'x-api-key': KEY_A, 'content-type': 'application/json' }, small)).status, 200)
    const big = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 2, messages: [{ role: 'user', content: 'x'.repeat(70_000) }] })
    const res = await raw(gw.url, 'POST', INVOKE, { 'x-api-key': KEY_A, 'content-type': 'application/json' }, big)
    assert.equal(res.status, 413)
    assert.equal(json(res).error.code, 'request_too_large')
  })

  it('cuts a streamed (chunked) body at the limit with 413, and refuses an answer declared over its limit with 502', async () => {
    const u = new URL(gw.url)
    const before = mock.stats.requests
    const cut = await new Promise<Answer>((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, method: 'POST', path: '/native/tiny/chat/completions', headers: { 'x-api-key': KEY_A, 'content-type': 'application/json' } }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      })
      req.on('error', reject)
      // No content-length: Node sends it chunked, 512 bytes at a time, 5 KiB in all.
      for (let i = 0; i < 10; i++) req.write(Buffer.alloc(512, 0x20))
      req.end()
    })
    assert.equal(cut.status, 413)
    assert.equal(json(cut).error.code, 'request_too_large')
    assert.ok(mock.stats.requests - before <= 1) // the upstream call, if it started, was aborted before its end
    // Under the request limit, but the mock's answer (a chat completion, several hundred bytes) is over 200.
    const big = await raw(gw.url, 'POST', '/native/tiny/chat/completions', { 'x-api-key': KEY_A, 'content-type': 'application/json' }, JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }))
    assert.equal(big.status, 502)
    assert.equal(json(big).error.code, 'bad_gateway')
    // Contrast: the same call on the route without the small limits is relayed.
    const ok = await raw(gw.url, 'POST', '/native/openai/chat/completions', { 'x-api-key': KEY_A, 'content-type': 'application/json' }, JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }))
    assert.equal(ok.status, 200)
  })

  it('opens the backend\'s circuit after its failures and answers 503 without calling it', async () => {
    const body = JSON.stringify({ anthropic_version: 'bedrock-2023-05-31', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] })
    const h = { 'x-api-key': KEY_A, 'content-type': 'application/json', 'x-mock-status': '500' }
    assert.equal((await raw(gw.url, 'POST', INVOKE, h, body)).status, 500) // the backend's own answer, relayed
    assert.equal((await raw(gw.url, 'POST', INVOKE, h, body)).status, 500)
    const before = mock.stats.requests
    const open = await raw(gw.url, 'POST', INVOKE, { 'x-api-key': KEY_A, 'content-type': 'application/json' }, body)
    assert.equal(open.status, 503)
    assert.equal(json(open).error.code, 'no_healthy_backend')
    assert.ok(Number(open.headers['retry-after']) > 0)
    assert.equal(mock.stats.requests, before)
  })

  it('records no secret in what it answers or stores', async () => {
    await gw.gw.ledger!.flush(5_000)
    const rows: UsageRecord[] = await gw.gw.ledger!.store.records({})
    const all = JSON.stringify(rows)
    for (const secret of [AWS.secretAccessKey, 'gem-backend-key', 'sk-backend-openai', KEY_A, KEY_C]) assert.ok(!all.includes(secret))
  })
})
