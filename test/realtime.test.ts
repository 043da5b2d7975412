import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { encode } from 'gpt-tokenizer/encoding/o200k_base'
import WebSocket from 'ws'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import type { MockRealtimeSessionInfo } from '../src/mock/realtime.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { ledgerRow } from './helpers/ledger-row.ts'
import { parseProm, sumOf } from './helpers/prom.ts'
import { nextEmitted, openRealtime } from './helpers/realtime.ts'
import { until } from './helpers/upstreams.ts'

const KEY = 'sk-realtime-team-a'
const METERED_KEY = 'sk-realtime-metered'
const ADMIN = 'adm-realtime-secret'
const tokens = (s: string) => encode(s).length

/**
 * The mock's synthetic audio from its documented figures (src/mock/realtime.ts header): 100 ms chunks of
 * 24 kHz mono pcm16, a 440 Hz sine of amplitude 8000 counted from sample 0 of each response.
 */
function expectedChunk(k: number): string {
  const n = 2400
  const buf = Buffer.alloc(n * 2)
  for (let j = 0; j < n; j++) buf.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * (k * n + j)) / 24000)), j * 2)
  return buf.toString('base64')
}

describe('Realtime over WebSocket through the gateway (openai SDK client, mock backend)', () => {
  let g: TestGateway
  let azureMock: MockServer
  let dir: string
  const rtMock = () => g.gw.mocks.server('rt-a')!.realtime
  const metrics = async () => parseProm(await (await fetch(`${g.adminUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text())

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-realtime-'))
    azureMock = await startMockServer({ port: 0 })
    g = await startTestGateway(`
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN} }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
realtime: { idleTimeout: 1m, maxDuration: 10m, maxMessageBytes: 1MiB }
backends:
  - { id: rt-a, type: mock, auth: { apiKey: sk-backend-openai-secret } }
  - id: rt-azure
    type: azure-openai
    url: ${azureMock.url}
    apiVersion: 2025-04-01-preview
    auth: { apiKey: azure-backend-secret }
    models: { gpt-realtime-az: my-realtime-deployment }
models:
  - { name: gpt-realtime, target: rt-a }
  - { name: gpt-realtime-az, target: rt-azure }
products:
  - id: metered
    models: [gpt-realtime]
    policies:
      - token-limit: { counterKey: consumer.id, tokenQuota: 50, tokenQuotaPeriod: daily, defaultCompletionTokens: 16 }
consumers:
  - { id: team-a, keys: [ { value: ${KEY} } ] }
  - { id: metered-a, product: metered, keys: [ { value: ${METERED_KEY} } ] }
`)
  })
  after(async () => {
    await g.close()
    await azureMock.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('relays a text response, and the same events as the mock sends directly', async () => {
    const run = async (baseURL: string, key: string) => {
      const c = await openRealtime(baseURL, key, 'gpt-realtime')
      await c.next('session.created')
      c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } })
      await c.next('session.updated')
      c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] } })
      c.send({ type: 'response.create' })
      const done = await c.next('response.done')
      c.close()
      await c.closed()
      return { c, done }
    }
    const direct = await run(`${g.gw.mocks.urlOf('rt-a')}/v1`, 'sk-backend-openai-secret')
    const via = await run(`${g.url}/v1`, KEY)
    const deltas = via.c.events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta as string)
    assert.equal(deltas.length, 16) // the mock's default length
    assert.equal(deltas.join(''), via.c.events.find((e) => e.type === 'response.output_text.done')!.text)
    assert.deepEqual(via.c.events.map((e) => e.type), direct.c.events.map((e) => e.type))
    assert.equal(deltas.join(''), direct.c.events.find((e) => e.type === 'response.output_text.done')!.text)
    const usage = via.done.response.usage
    assert.equal(usage.input_tokens, tokens('Hello there'))
    assert.equal(usage.output_tokens, 16)
  })

  it('passes OpenAI-Beta up: a beta client gets the beta event names, and its usage is governed the same', async () => {
    const c = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime', { headers: { 'openai-beta': 'realtime=v1', 'x-request-id': 'rt-beta-1' } })
    await c.next('session.created')
    c.send({ type: 'session.update', session: { modalities: ['text'], max_response_output_tokens: 5 } })
    await c.next('session.updated')
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] } })
    await c.next('conversation.item.created')
    c.send({ type: 'response.create' })
    const done = await c.next('response.done')
    c.close()
    await c.closed()
    assert.equal(c.events.filter((e) => e.type === 'response.text.delta').length, 5)
    assert.ok(!c.events.some((e) => e.type === 'response.output_text.delta'))
    assert.equal(done.response.usage.output_tokens, 5)
    assert.equal((await ledgerRow(g.gw, 'rt-beta-1.r1')).completionTokens, 5)
  })

  it('relays audio deltas in order, bills text and audio tokens at their prices, and counts them in metrics', async () => {
    const seen = nextEmitted<MockRealtimeSessionInfo>(rtMock().events, 'open', 15000)
    const c = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime', { headers: { 'x-request-id': 'rt-audio-1' } })
    const opened = await seen
    // The backend got the gateway's key, never the client's.
    assert.equal(opened.headers.authorization, 'Bearer sk-backend-openai-secret')
    assert.equal(opened.path, '/v1/realtime')
    await c.next('session.created')
    const story = 'Tell me a story about a river.'
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: story }] } })
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(9600).toString('base64') }) // 200 ms of pcm16 at 24 kHz
    c.send({ type: 'input_audio_buffer.commit' })
    c.send({ type: 'response.create' })
    const done1 = await c.next('response.done')
    const audio = c.events.filter((e) => e.type === 'response.output_audio.delta').map((e) => e.delta as string)
    assert.equal(audio.length, 16)
    audio.forEach((d, k) => assert.equal(d, expectedChunk(k), `audio chunk ${k}`))
    const transcript = c.events.filter((e) => e.type === 'response.output_audio_transcript.delta').map((e) => e.delta as string).join('')
    assert.equal(transcript, c.events.find((e) => e.type === 'response.output_audio_transcript.done')!.transcript)

    // Turn 2: the earlier prompt is served from the prompt cache (the mock reports the previous input as cached).
    const from = c.events.length
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Go on.' }] } })
    c.send({ type: 'response.create' })
    const done2 = await c.next('response.done', from)
    c.close()
    await c.closed()

    const textIn1 = tokens(story)
    assert.deepEqual(done1.response.usage.input_token_details, { text_tokens: textIn1, audio_tokens: 2, image_tokens: 0, cached_tokens: 0, cached_tokens_details: { text_tokens: 0, audio_tokens: 0, image_tokens: 0 } })
    assert.deepEqual(done1.response.usage.output_token_details, { text_tokens: 16, audio_tokens: 32 })
    const row1 = await ledgerRow(g.gw, 'rt-audio-1.r1')
    assert.equal(row1.model, 'gpt-realtime')
    assert.equal(row1.backend, 'rt-a')
    assert.equal(row1.promptTokens, textIn1 + 2)
    assert.equal(row1.completionTokens, 48)
    assert.equal(row1.cachedTokens, 0)
    assert.equal(row1.status, 200)
    // gpt-realtime per 1M tokens: text in $4, audio in $32, text out $16, audio out $64 (developers.openai.com model page).
    assert.ok(Math.abs(row1.costUsd! - (textIn1 * 4 + 2 * 32 + 16 * 16 + 32 * 64) / 1e6) < 1e-12, `cost ${row1.costUsd}`)

    const textIn2 = textIn1 + 16 + tokens('Go on.') // the assistant's transcript is conversation text too
    const audioIn2 = 2 + 32 // and its audio
    const row2 = await ledgerRow(g.gw, 'rt-audio-1.r2')
    assert.equal(done2.response.usage.input_tokens, textIn2 + audioIn2)
    assert.equal(row2.promptTokens, textIn2 + audioIn2)
    assert.equal(row2.cachedTokens, textIn1 + 2)
    // Cached text and cached audio are both $0.40 per 1M.
    const expected2 = ((textIn2 - textIn1) * 4 + textIn1 * 0.4 + (audioIn2 - 2) * 32 + 2 * 0.4 + 16 * 16 + 32 * 64) / 1e6
    assert.ok(Math.abs(row2.costUsd! - expected2) < 1e-12, `cost ${row2.costUsd} vs ${expected2}`)

    const m = await metrics()
    assert.ok(sumOf(m, 'sluice_tokens_total', { consumer: 'team-a', model: 'gpt-realtime', type: 'completion' }) >= 96)
    assert.ok(sumOf(m, 'sluice_realtime_sessions_total', { model: 'gpt-realtime', reason: 'client_closed' }) >= 1)
  })

  it('settles each response on its usage: a response within the quota is admitted, one over it ends the session with the error event', async () => {
    // Quota 50 tokens a day. Response 1 reserves about 7 + 16 and settles at its usage, 2 + 16 = 18.
    const a = await openRealtime(`${g.url}/v1`, METERED_KEY, 'gpt-realtime', { headers: { 'x-request-id': 'rt-quota-1' } })
    await a.next('session.created')
    a.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } })
    a.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] } })
    a.send({ type: 'response.create', event_id: 'evt_ok', response: { max_output_tokens: 16 } })
    const done = await a.next('response.done')
    assert.equal(done.response.usage.total_tokens, 18)
    a.close()
    await a.closed()
    assert.equal((await ledgerRow(g.gw, 'rt-quota-1.r1')).promptTokens + 16, 18)

    // Response 2 asks for up to 40 tokens: 18 used + about 7 + 40 is past 50 (it would fit had response 1 not been settled).
    const opened = nextEmitted<MockRealtimeSessionInfo>(rtMock().events, 'open', 15000)
    const b = await openRealtime(`${g.url}/v1`, METERED_KEY, 'gpt-realtime', { headers: { 'x-request-id': 'rt-quota-2' } })
    const upstream = await opened
    const upstreamTypes: string[] = []
    const onEvent = (e: { session: string; type: string }) => { if (e.session === upstream.id) upstreamTypes.push(e.type) }
    rtMock().events.on('client-event', onEvent)
    await b.next('session.created')
    b.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hello there' }] } })
    b.send({ type: 'response.create', event_id: 'evt_over', response: { max_output_tokens: 40 } })
    const err = await b.next('error')
    const closed = await b.closed()
    rtMock().events.off('client-event', onEvent)
    assert.equal(err.error.code, 'quota_exceeded')
    assert.equal(err.error.type, 'insufficient_quota')
    assert.equal(err.error.event_id, 'evt_over')
    assert.equal(typeof err.event_id, 'string')
    assert.equal(closed.code, 1008)
    assert.ok(!b.events.some((e) => e.type === 'response.created'))
    assert.deepEqual(upstreamTypes, ['conversation.item.create']) // the refused response.create never reached the backend
    const refused = await ledgerRow(g.gw, 'rt-quota-2.r1')
    assert.equal(refused.status, 403)
    assert.equal(refused.errorCode, 'quota_exceeded')
  })

  it('governs a response the server starts itself (voice activity): reserved at response.created, one ledger row', async () => {
    const c = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime', { headers: { 'x-request-id': 'rt-vad-1' } })
    await c.next('session.created')
    c.send({ type: 'session.update', session: { type: 'realtime', audio: { input: { turn_detection: { type: 'server_vad' } } } } })
    await c.next('session.updated')
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(48000).toString('base64') }) // 1 s: 10 tokens
    c.send({ type: 'input_audio_buffer.commit' })
    const done = await c.next('response.done')
    c.close()
    await c.closed()
    assert.equal(done.response.usage.input_token_details.audio_tokens, 10)
    const row = await ledgerRow(g.gw, 'rt-vad-1.r1')
    assert.equal(row.promptTokens, 10)
    assert.equal(row.completionTokens, 48)
    assert.equal(row.status, 200)
  })

  it('closes the upstream socket within 1 s of the client leaving, and relays the upstream closing', async () => {
    const opened = nextEmitted<MockRealtimeSessionInfo>(rtMock().events, 'open', 15000)
    const c = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime')
    const info = await opened
    await c.next('session.created')
    const upstreamClosed = nextEmitted<{ session: string; at: number }>(rtMock().events, 'close', 1000, (e) => e.session === info.id)
    const leftAt = Date.now()
    c.rt.socket.terminate() // the client vanishes without a closing handshake
    const ev = await upstreamClosed
    assert.ok(ev.at - leftAt < 1000)

    // The backend ends a session: the client gets its close code and reason.
    const d = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime')
    await d.next('session.created')
    rtMock().closeAll(1001, 'Your session hit the maximum duration of 60 minutes.')
    assert.deepEqual(await d.closed(), { code: 1001, reason: 'Your session hit the maximum duration of 60 minutes.' })
  })

  it('serves the Azure path with the deployment, relayed to an Azure backend with its api-key', async () => {
    const opened = nextEmitted<MockRealtimeSessionInfo>(azureMock.realtime.events, 'open', 15000)
    const c = await openRealtime(g.url, KEY, 'gpt-realtime-az', { azure: { apiVersion: '2025-04-01-preview' } })
    const info = await opened
    assert.equal(info.path, '/openai/realtime')
    assert.equal(info.model, 'my-realtime-deployment')
    assert.equal(info.headers['api-key'], 'azure-backend-secret')
    await c.next('session.created')
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } })
    c.send({ type: 'conversation.item.create', item: { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'Hi' }] } })
    c.send({ type: 'response.create' })
    const done = await c.next('response.done')
    assert.equal(done.response.usage.output_tokens, 16)
    c.close()
    await c.closed()
  })

  it('authenticates the handshake: a bad key is 401 before the upgrade; the browser subprotocol key opens', async () => {
    let upgraded: Record<string, string | string[] | undefined> = {}
    const attempt = (opts: { headers?: Record<string, string>; protocols?: string[]; model?: string }) => new Promise<{ status: number; body: string } | { open: WebSocket }>((resolve, reject) => {
      const ws = new WebSocket(`${g.url.replace('http', 'ws')}/v1/realtime?model=${opts.model ?? 'gpt-realtime'}`, opts.protocols ?? [], { headers: opts.headers })
      ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (c) => { body += c })
        res.on('end', () => resolve({ status: res.statusCode!, body }))
      })
      ws.once('upgrade', (res) => { upgraded = res.headers })
      ws.once('open', () => resolve({ open: ws }))
      ws.once('error', (e) => { if (!(e.message ?? '').includes('Unexpected server response')) reject(e) })
    })
    const bad = await attempt({ headers: { authorization: 'Bearer sk-not-a-real-key' } })
    assert.ok('status' in bad)
    assert.equal(bad.status, 401)
    assert.equal(JSON.parse(bad.body).error.code, 'invalid_api_key')
    const badProtocol = await attempt({ protocols: ['realtime', 'openai-insecure-api-key.sk-wrong-key-123'] })
    assert.ok('status' in badProtocol && badProtocol.status === 401)
    const none = await attempt({})
    assert.ok('status' in none && none.status === 401)

    const plain = await fetch(`${g.url}/v1/realtime?model=gpt-realtime`, { headers: { authorization: `Bearer ${KEY}` } })
    assert.equal(plain.status, 426)
    assert.equal(((await plain.json()) as { error: { code: string } }).error.code, 'upgrade_required')

    const good = await attempt({ protocols: ['realtime', `openai-insecure-api-key.${KEY}`] })
    assert.ok('open' in good)
    assert.equal(good.open.protocol, 'realtime') // the key protocol is never echoed
    assert.equal(upgraded['x-sluice-backend'], 'rt-a')
    assert.equal(typeof upgraded['x-request-id'], 'string')
    good.open.close()
    const header = await attempt({ headers: { authorization: `Bearer ${KEY}` } })
    assert.ok('open' in header)
    header.open.close()
    const unknownModel = await attempt({ headers: { authorization: `Bearer ${KEY}` }, model: 'no-such-model' })
    assert.ok('status' in unknownModel && unknownModel.status === 404)
    assert.equal(JSON.parse(unknownModel.body).error.code, 'model_not_found')
    const notAllowed = await attempt({ headers: { authorization: `Bearer ${METERED_KEY}` }, model: 'gpt-realtime-az' })
    assert.ok('status' in notAllowed && notAllowed.status === 403)
    assert.equal(JSON.parse(notAllowed.body).error.code, 'model_not_allowed')
  })

  it('answers bad input with documented error events or a close, and keeps serving', async () => {
    const opened = nextEmitted<MockRealtimeSessionInfo>(rtMock().events, 'open', 15000)
    const c = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime')
    const info = await opened
    const upstreamTypes: string[] = []
    const onEvent = (e: { session: string; type: string }) => { if (e.session === info.id) upstreamTypes.push(e.type) }
    rtMock().events.on('client-event', onEvent)
    await c.next('session.created')
    c.rt.socket.send('{"type": "response.create"') // cut JSON
    const e1 = await c.next('error')
    assert.equal(e1.error.code, 'invalid_json')
    assert.equal(e1.error.type, 'invalid_request_error')
    let from = c.events.length
    c.rt.socket.send(Buffer.from([1, 2, 3, 4]), { binary: true })
    const e2 = await c.next('error', from)
    assert.equal(e2.error.code, 'invalid_event')
    from = c.events.length
    c.rt.socket.send('[1,2,3]')
    assert.equal((await c.next('error', from)).error.code, 'invalid_event')
    // The session is still good: a response completes, and the backend saw only the valid events.
    from = c.events.length
    c.send({ type: 'session.update', session: { type: 'realtime', output_modalities: ['text'] } })
    c.send({ type: 'response.create' })
    await c.next('response.done', from)
    assert.deepEqual(upstreamTypes, ['session.update', 'response.create'])

    // A large append (5 s of 24 kHz pcm16, 320 KB of base64: scanned, not parsed) is relayed and counted: 50 tokens.
    from = c.events.length
    c.send({ type: 'input_audio_buffer.append', audio: Buffer.alloc(240_000).toString('base64') })
    c.send({ type: 'input_audio_buffer.commit' })
    c.send({ type: 'response.create' })
    const bigDone = await c.next('response.done', from)
    assert.equal(bigDone.response.usage.input_token_details.audio_tokens, 50)
    assert.ok(upstreamTypes.includes('input_audio_buffer.append'))
    upstreamTypes.length = 0

    // A 10 MB audio append is over realtime.maxMessageBytes (1 MiB here): the session is closed with 1009.
    const upstreamClosed = nextEmitted<{ session: string }>(rtMock().events, 'close', 10000, (e) => e.session === info.id)
    c.rt.socket.send(JSON.stringify({ type: 'input_audio_buffer.append', audio: 'A'.repeat(10 * 1024 * 1024) }))
    assert.equal((await c.closed()).code, 1009)
    await upstreamClosed
    rtMock().events.off('client-event', onEvent)
    assert.ok(!upstreamTypes.includes('input_audio_buffer.append')) // the 10 MB one never reached the backend

    // Nothing leaked and the gateway serves on.
    const next = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime')
    await next.next('session.created')
    next.close()
    await next.closed()
    // Both ends of every session are gone (each wait fails when it times out).
    await until(async () => sumOf(await metrics(), 'sluice_realtime_sessions_active') === 0)
    await until(() => rtMock().stats.active === 0)
    assert.ok(sumOf(await metrics(), 'sluice_realtime_sessions_total', { reason: 'message_too_large' }) >= 1)
  })
})


describe('Realtime session bounds: idle timeout, maximum duration, sessions per consumer', () => {
  let g: TestGateway
  before(async () => {
    g = await startTestGateway(`
realtime: { idleTimeout: 250ms, maxDuration: 800ms }
backends:
  - { id: rt-a, type: mock }
models:
  - { name: gpt-realtime, target: rt-a }
consumers:
  - { id: solo, maxInflight: 1, keys: [ { value: ${KEY} } ] }
`)
  })
  after(() => g.close())

  it('closes an idle session (session_idle_timeout, 1001) and one past its maximum duration (session_expired, 1001)', async () => {
    const idle = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime')
    await idle.next('session.created')
    const e = await idle.next('error', 0, 5000)
    assert.equal(e.error.code, 'session_idle_timeout')
    assert.equal((await idle.closed()).code, 1001)

    // A busy session is never idle (an event every round trip), so it ends at maxDuration instead.
    const busy = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime')
    await busy.next('session.created')
    let updates = 0
    busy.rt.on('session.updated', () => { updates++; busy.send({ type: 'session.update', session: { type: 'realtime' } }) })
    busy.send({ type: 'session.update', session: { type: 'realtime' } })
    const expired = await busy.next('error', 0, 5000)
    assert.equal(expired.error.code, 'session_expired')
    assert.match(expired.error.message, /maximum duration/)
    const closed = await busy.closed()
    assert.equal(closed.code, 1001)
    assert.ok(updates > 1)
  })

  it('holds one in-flight slot per session: a second session over maxInflight is 429, admitted once the first ends', async () => {
    const first = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime')
    await first.next('session.created')
    await assert.rejects(openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime'), (err: { status?: number }) => err.status === 429)
    first.close()
    await first.closed()
    // The slot comes back when the gateway has ended the session (the wait fails if it never does).
    let second: Awaited<ReturnType<typeof openRealtime>> | null = null
    await until(async () => {
      second = await openRealtime(`${g.url}/v1`, KEY, 'gpt-realtime').catch(() => null)
      return second !== null
    })
    await second!.next('session.created')
    second!.close()
    await second!.closed()
  })
})
