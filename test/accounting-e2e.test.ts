import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI from 'openai'
import type { UsageRecord } from '../src/stores/ledger.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { parseProm, sumOf, type PromSample } from './helpers/prom.ts'
import { startRecordingBackend, type RecordingBackend } from './helpers/recorder.ts'

// Accounting of the operations and endings the chat tests do not cover: /v1/responses and /v1/completions
// (streamed and not), and streams cut mid-way by the client or by the backend. Each is checked in the three
// places that account for it: the ledger row, the token-limit counter and the Prometheus counters.
//
// Figures derived by hand (o200k_base, checked with gpt-tokenizer's encode), never by src/:
// 'Say hello.' = Say| hello|. = 3 tokens, 'user' = 1.
// - /v1/completions with prompt 'Say hello.': the text alone, 3 prompt tokens.
// - /v1/responses with input 'Say hello.': one user message, 3 framing + 1 + 3 + 3 priming = 10.
// - chat with that message: 10 as well.
// The mock writes exactly max_tokens / max_output_tokens (5 here) completion tokens, one token per stream delta.
const TEXT = 'Say hello.'
const OUT = 5
const RESPONSES_PROMPT = 10
const COMPLETIONS_PROMPT = 3
const CHAT_PROMPT = 10
// Prices set in the config for gpt-4o-mini: USD 1 per 1M input tokens, 4 per 1M output tokens.
const cost = (prompt: number, completion: number) => (prompt * 1 + completion * 4) / 1e6
const ADMIN = 'admin-token-accounting'
const KEYS = { responses: 'sk-acct-responses', completions: 'sk-acct-completions', clientCut: 'sk-acct-client-cut', backendCut: 'sk-acct-backend-cut' }

describe('accounting of responses, completions and cut streams (ledger, limits, metrics)', () => {
  let tg: TestGateway
  let cutBackend: RecordingBackend
  const dir = mkdtempSync(join(tmpdir(), 'sluice-accounting-'))
  let n = 0
  const rid = () => `acct-${++n}`

  before(async () => {
    cutBackend = await startRecordingBackend()
    // Every request to this backend is cut by the backend itself after 5 tokens (the mock resets the connection).
    cutBackend.inject = { 'x-mock-reset-after-tokens': '5' }
    tg = await startTestGateway(`
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN} }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
pricing:
  models:
    gpt-4o-mini: { input: 1, output: 4 }
backends:
  - { id: fast, type: mock }
  - { id: slow, type: mock, tokensPerSecond: 40 }
  - { id: cutter, type: openai-compatible, url: ${cutBackend.url}/v1 }
models:
  - { name: gpt-4o-mini, target: fast }
  - { name: gpt-4o, target: slow }
  - { name: gpt-4.1-mini, target: cutter }
consumers:
  - { id: c-responses, keys: [ { value: ${KEYS.responses} } ] }
  - { id: c-completions, keys: [ { value: ${KEYS.completions} } ] }
  - { id: c-client-cut, keys: [ { value: ${KEYS.clientCut} } ] }
  - { id: c-backend-cut, keys: [ { value: ${KEYS.backendCut} } ] }
policies:
  - token-limit: { counterKey: consumer.id, tokensPerMinute: 1000000 }
`)
  })
  after(async () => {
    await tg?.close()
    await cutBackend?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  const sdk = (key: string) => new OpenAI({ apiKey: key, baseURL: `${tg.url}/v1`, maxRetries: 0 })
  const admin = (path: string) => fetch(`${tg.adminUrl}${path}`, { headers: { authorization: `Bearer ${ADMIN}` } })
  const rows = async (ids: string[]): Promise<UsageRecord[]> => {
    assert.equal(await tg.gw.ledger!.flush(10_000), true)
    const got = await tg.gw.ledger!.store.records({ requestIds: ids })
    assert.equal(got.length, ids.length, `one ledger row per request (${ids.join(', ')})`)
    return ids.map((id) => got.find((r) => r.requestId === id)!)
  }
  const used = async (consumer: string): Promise<number> => {
    const res = await admin(`/admin/limits?key=${consumer}`)
    assert.equal(res.status, 200)
    return ((await res.json()) as { limits: Array<{ windows: Array<{ used: number }> }> }).limits[0]!.windows[0]!.used
  }
  /** Polls until the counter reads `want`; a wait that runs out fails. */
  const usedBecomes = async (consumer: string, want: number) => {
    let last = -1
    for (let i = 0; i < 250; i++) {
      last = await used(consumer)
      if (last === want) return
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.fail(`${consumer}: the token counter never read ${want}; last ${last}`)
  }
  /** Scrapes until `consumer` has `requests` finished requests counted; a wait that runs out fails. */
  const metricsFor = async (consumer: string, requests: number): Promise<PromSample[]> => {
    let samples: PromSample[] = []
    for (let i = 0; i < 250; i++) {
      const res = await admin('/metrics')
      assert.equal(res.status, 200)
      samples = parseProm(await res.text())
      if (sumOf(samples, 'sluice_requests_total', { consumer }) === requests) return samples
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.fail(`${consumer}: /metrics never counted ${requests} requests; it counts ${sumOf(samples, 'sluice_requests_total', { consumer })}`)
  }

  it('/v1/responses, streamed and not', async () => {
    const client = sdk(KEYS.responses)
    const [a, b] = [rid(), rid()]
    const res = await client.responses.create({ model: 'gpt-4o-mini', input: TEXT, max_output_tokens: OUT }, { headers: { 'x-request-id': a } })
    assert.deepEqual([res.usage!.input_tokens, res.usage!.output_tokens], [RESPONSES_PROMPT, OUT])
    const stream = await client.responses.create({ model: 'gpt-4o-mini', input: TEXT, max_output_tokens: OUT, stream: true }, { headers: { 'x-request-id': b } })
    let text = ''
    for await (const ev of stream) if (ev.type === 'response.output_text.delta') text += ev.delta
    assert.ok(text.length > 0)

    const [ra, rb] = await rows([a, b])
    for (const [r, streamed] of [[ra!, false], [rb!, true]] as const) {
      assert.deepEqual([r.consumer, r.model, r.backend, r.status, r.stream, r.errorCode], ['c-responses', 'gpt-4o-mini', 'fast', 200, streamed, null])
      assert.deepEqual([r.promptTokens, r.completionTokens], [RESPONSES_PROMPT, OUT], `${r.requestId} tokens`)
      assert.ok(Math.abs(r.costUsd! - cost(RESPONSES_PROMPT, OUT)) < 1e-12, `${r.requestId} cost ${r.costUsd}`)
    }
    // Reserved prompt estimate + max_output_tokens each, settled to the 15 used: 30 in the window.
    await usedBecomes('c-responses', 2 * (RESPONSES_PROMPT + OUT))
    const m = await metricsFor('c-responses', 2)
    assert.equal(sumOf(m, 'sluice_tokens_total', { consumer: 'c-responses', type: 'prompt' }), 2 * RESPONSES_PROMPT)
    assert.equal(sumOf(m, 'sluice_tokens_total', { consumer: 'c-responses', type: 'completion' }), 2 * OUT)
    assert.equal(sumOf(m, 'sluice_requests_total', { consumer: 'c-responses', status: '200', model: 'gpt-4o-mini', backend: 'fast' }), 2)

    // The limit reads max_output_tokens: asking for the whole minute (the request ceiling, 1M) plus a prompt is refused, charged nothing,
    // and still leaves its ledger row and its metrics (the contrast: the two requests above were admitted).
    const c = rid()
    const refused = await client.responses.create({ model: 'gpt-4o-mini', input: TEXT, max_output_tokens: 1_000_000 }, { headers: { 'x-request-id': c } }).then(() => null, (e: unknown) => e)
    assert.ok(refused instanceof OpenAI.RateLimitError, `got ${String(refused)}`)
    assert.equal(refused.code, 'rate_limit_exceeded')
    const [rc] = await rows([c])
    assert.deepEqual([rc!.status, rc!.errorCode, rc!.backend, rc!.promptTokens, rc!.completionTokens], [429, 'rate_limit_exceeded', null, 0, 0])
    assert.equal(await used('c-responses'), 2 * (RESPONSES_PROMPT + OUT), 'a refusal reserves nothing')
    const m2 = await metricsFor('c-responses', 3)
    assert.equal(sumOf(m2, 'sluice_requests_total', { consumer: 'c-responses', status: '429' }), 1)
    assert.equal(sumOf(m2, 'sluice_limit_rejections_total', { policy: 'token-limit', reason: 'rate' }), 1)
    assert.equal(sumOf(m2, 'sluice_tokens_total', { consumer: 'c-responses', type: 'prompt' }), 2 * RESPONSES_PROMPT, 'no tokens for the refusal')
  })

  it('/v1/completions, streamed (without the client asking for usage) and not', async () => {
    const client = sdk(KEYS.completions)
    const [a, b] = [rid(), rid()]
    const res = await client.completions.create({ model: 'gpt-4o-mini', prompt: TEXT, max_tokens: OUT }, { headers: { 'x-request-id': a } })
    assert.deepEqual([res.usage!.prompt_tokens, res.usage!.completion_tokens], [COMPLETIONS_PROMPT, OUT])
    const stream = await client.completions.create({ model: 'gpt-4o-mini', prompt: TEXT, max_tokens: OUT, stream: true }, { headers: { 'x-request-id': b } })
    let text = ''
    let sawUsage = false
    for await (const c of stream) { text += c.choices[0]?.text ?? ''; if (c.usage) sawUsage = true }
    assert.ok(text.length > 0)
    assert.equal(sawUsage, false, 'the usage the gateway asked for is kept out of the client stream')

    const [ra, rb] = await rows([a, b])
    for (const [r, streamed] of [[ra!, false], [rb!, true]] as const) {
      assert.deepEqual([r.consumer, r.model, r.backend, r.status, r.stream, r.errorCode], ['c-completions', 'gpt-4o-mini', 'fast', 200, streamed, null])
      assert.deepEqual([r.promptTokens, r.completionTokens], [COMPLETIONS_PROMPT, OUT], `${r.requestId} tokens`)
      assert.ok(Math.abs(r.costUsd! - cost(COMPLETIONS_PROMPT, OUT)) < 1e-12, `${r.requestId} cost ${r.costUsd}`)
    }
    await usedBecomes('c-completions', 2 * (COMPLETIONS_PROMPT + OUT))
    const m = await metricsFor('c-completions', 2)
    assert.equal(sumOf(m, 'sluice_tokens_total', { consumer: 'c-completions', type: 'prompt' }), 2 * COMPLETIONS_PROMPT)
    assert.equal(sumOf(m, 'sluice_tokens_total', { consumer: 'c-completions', type: 'completion' }), 2 * OUT)
  })

  it('a stream the client cuts mid-way is charged the prompt and what was generated, everywhere alike', async () => {
    const id = rid()
    const mock = tg.gw.mocks.server('slow')!
    const sentBefore = mock.stats.completionTokensSent
    const abortedBefore = mock.stats.aborted
    const ctrl = new AbortController()
    const res = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST', signal: ctrl.signal,
      headers: { authorization: `Bearer ${KEYS.clientCut}`, 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: TEXT }], max_tokens: 400, stream: true }),
    })
    assert.equal(res.status, 200)
    const reader = res.body!.getReader()
    const dec = new TextDecoder()
    let seen = 0
    while (seen < 4) {
      const { value, done } = await reader.read()
      assert.ok(!done, 'the stream ended before the cut')
      seen += (dec.decode(value).match(/"content":"[^"]/g) ?? []).length
    }
    ctrl.abort()
    // The gateway cancels the backend: wait for the mock to see it (failing if it never does).
    for (let i = 0; i < 250 && mock.stats.aborted === abortedBefore; i++) await new Promise((r) => setTimeout(r, 20))
    assert.equal(mock.stats.aborted, abortedBefore + 1, 'the backend stream was cancelled')
    const generated = mock.stats.completionTokensSent - sentBefore
    assert.ok(generated < 400, `generation stopped early (${generated})`)

    const [r] = await rows([id])
    assert.deepEqual([r!.consumer, r!.backend, r!.stream, r!.errorCode], ['c-client-cut', 'slow', true, 'client_closed_request'])
    assert.equal(r!.promptTokens, CHAT_PROMPT)
    assert.ok(r!.completionTokens >= seen && r!.completionTokens <= generated, `charged ${r!.completionTokens} completion tokens; the client saw ${seen}, the backend generated ${generated}`)
    // The limit settled to the same figure (not the reservation of 10 + 400), and the metrics count it too.
    await usedBecomes('c-client-cut', CHAT_PROMPT + r!.completionTokens)
    const m = await metricsFor('c-client-cut', 1)
    assert.equal(sumOf(m, 'sluice_tokens_total', { consumer: 'c-client-cut', type: 'prompt' }), CHAT_PROMPT)
    assert.equal(sumOf(m, 'sluice_tokens_total', { consumer: 'c-client-cut', type: 'completion' }), r!.completionTokens)
  })

  it('a stream the backend cuts mid-way is charged what it generated, and the client is told', async () => {
    const id = rid()
    const before = cutBackend.requests.length
    const res = await fetch(`${tg.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEYS.backendCut}`, 'content-type': 'application/json', 'x-request-id': id },
      body: JSON.stringify({ model: 'gpt-4.1-mini', messages: [{ role: 'user', content: TEXT }], max_tokens: 400, stream: true }),
    })
    assert.equal(res.status, 200, 'content had reached the client: the status was already sent')
    const text = await res.text().catch(() => '')
    assert.equal(cutBackend.requests.length, before + 1)
    const deltas = (text.match(/"content":"[^"]/g) ?? []).length
    assert.ok(deltas >= 1 && deltas <= 5, `the client saw ${deltas} of the 5 tokens sent`)
    // The end of the stream says what happened: an OpenAI-shaped error event (the SDKs throw on it) before any [DONE].
    const errAt = text.indexOf('data: {"error":')
    assert.ok(errAt > 0, 'the stream carries an SSE error event')
    assert.match(text.slice(errAt), /^data: \{"error":\{[^\n]*"code":"bad_gateway"/)
    const doneAt = text.indexOf('data: [DONE]')
    assert.ok(doneAt === -1 || doneAt > errAt, 'no [DONE] before the error')

    const [r] = await rows([id])
    assert.deepEqual([r!.consumer, r!.backend, r!.stream], ['c-backend-cut', 'cutter', true])
    assert.ok(r!.errorCode !== null, 'the row records the failure')
    assert.equal(r!.promptTokens, CHAT_PROMPT)
    // The backend sent 5 one-token deltas before resetting; the gateway counts what reached it (at least what it
    // relayed to the client, at most the 5).
    assert.ok(r!.completionTokens >= deltas && r!.completionTokens <= 5, `charged ${r!.completionTokens} completion tokens; client saw ${deltas}`)
    await usedBecomes('c-backend-cut', CHAT_PROMPT + r!.completionTokens)
    const m = await metricsFor('c-backend-cut', 1)
    assert.equal(sumOf(m, 'sluice_tokens_total', { consumer: 'c-backend-cut', type: 'completion' }), r!.completionTokens)
    assert.equal(sumOf(m, 'sluice_requests_total', { consumer: 'c-backend-cut', status: '200' }), 0, 'a cut stream is not counted as a success')
  })
})
