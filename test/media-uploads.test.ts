import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import OpenAI, { BadRequestError, RateLimitError, toFile } from 'openai'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { ledgerRow } from './helpers/ledger-row.ts'
import { until } from './helpers/upstreams.ts'
import { startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'

const BOUNDARY = 'sluice-test-boundary-7f3a'
const MAX_UPLOAD = 2 * 1024 * 1024

/** A multipart body written by hand (as curl -F writes it): fields and files in the order given. */
function form(parts: ({ name: string; value: string } | { name: string; filename: string; data: Buffer })[], close = true): Buffer {
  const out: Buffer[] = []
  for (const p of parts) {
    if ('value' in p) out.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"\r\n\r\n${p.value}\r\n`))
    else out.push(Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"; filename="${p.filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`), p.data, Buffer.from('\r\n'))
  }
  if (close) out.push(Buffer.from(`--${BOUNDARY}--\r\n`))
  return Buffer.concat(out)
}

interface Answer { status: number; headers: http.IncomingHttpHeaders; body: string }

/** POSTs a body (or the first `sendBytes` of it, then stops) and reads the answer, if one comes. */
function post(url: string, path: string, body: Buffer, opts: { key?: string; id?: string; chunked?: boolean; declared?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { authorization: `Bearer ${opts.key ?? TEST_KEY}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` }
    if (opts.id) headers['x-request-id'] = opts.id
    if (!opts.chunked) headers['content-length'] = opts.declared ?? body.length
    const req = http.request(`${url}${path}`, { method: 'POST', headers }, (res) => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    // Written in 64 KiB pieces, as a client streams a file.
    let i = 0
    const pump = () => {
      while (i < body.length) {
        const piece = body.subarray(i, i + 65_536)
        i += piece.length
        if (!req.write(piece)) return void req.once('drain', pump)
      }
      req.end()
    }
    pump()
  })
}

const codeOf = (a: Answer) => (JSON.parse(a.body) as { error: { code: string; param: string | null } }).error

describe('media uploads: limits, cut bodies, missing parts, failover, rate and token limits', () => {
  let mock: MockServer
  let g: TestGateway
  let dir: string
  let spool: string

  before(async () => {
    mock = await startMockServer()
    dir = mkdtempSync(join(tmpdir(), 'sluice-media-up-'))
    spool = mkdtempSync(join(tmpdir(), 'sluice-media-spool-'))
    g = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
media: { maxUploadBytes: ${MAX_UPLOAD}, spoolDir: ${spool} }
backends:
  - { id: m, type: mock, url: ${mock.url}, auth: { apiKey: sk-mock } }
  - { id: dead, type: mock, url: 'http://127.0.0.1:9' }
  - { id: broken, type: mock, url: ${mock.url}, headers: { x-mock-status: '500' } }
  - { id: slow, type: mock, url: ${mock.url}, headers: { x-mock-latency-ms: '300' } }
pools:
  - { id: dead-first, strategy: priority, members: [ { backend: dead, priority: 1 }, { backend: m, priority: 2 } ] }
  - { id: broken-first, strategy: priority, members: [ { backend: broken, priority: 1 }, { backend: m, priority: 2 } ] }
  - { id: slow-first, strategy: priority, members: [ { backend: slow, priority: 1 }, { backend: m, priority: 2 } ] }
models:
  - { name: whisper-1, target: m }
  - { name: gpt-image-1, target: m }
  - { name: dall-e-2, target: m }
  - { name: tts-1, target: m }
  - { name: omni-moderation-latest, target: m }
  - { name: whisper-failover, target: dead-first }
  - { name: whisper-broken, target: broken-first }
  - { name: whisper-hedged, target: slow-first, hedge: { after: 50ms } }
products:
  - id: limited
    models: [whisper-1, gpt-image-1, dall-e-2, tts-1, omni-moderation-latest, whisper-failover, whisper-broken, whisper-hedged]
  - id: metered
    models: [whisper-1, tts-1, omni-moderation-latest, dall-e-2]
    policies:
      - rate-limit: { counterKey: consumer.id, requests: 3, per: 1m }
  - id: guarded
    models: [dall-e-2, tts-1]
    policies:
      - content-safety: { engines: [ { type: builtin, blocklist: ["Project Falcon"] } ] }
  - id: tokens
    models: [gpt-image-1, dall-e-2]
    policies:
      - token-limit: { counterKey: consumer.id, tokensPerMinute: 1200 }
consumers:
  - { id: team-a, product: limited, keys: [ { value: ${TEST_KEY} } ] }
  - { id: team-b, product: metered, keys: [ { value: ${TEST_KEY_B} } ] }
  - { id: team-c, product: tokens, keys: [ { value: sk-test-key-team-c } ] }
  - { id: team-d, product: guarded, keys: [ { value: sk-test-key-team-d } ] }
`)
  })
  after(async () => {
    await g.close()
    await mock.close()
    rmSync(dir, { recursive: true, force: true })
    rmSync(spool, { recursive: true, force: true })
  })

  const audio = (bytes: number) => Buffer.alloc(bytes, 9)

  it('a 2 GB upload declared is refused with 413 before a byte is read; a small one declared is served', async () => {
    const before = mock.stats.requests
    const answer = await new Promise<string>((resolve, reject) => {
      const s = net.connect(new URL(g.url).port as unknown as number, '127.0.0.1')
      let text = ''
      s.on('data', (c) => { text += c.toString('utf8') })
      s.on('close', () => resolve(text))
      s.on('error', reject)
      s.write(`POST /v1/audio/transcriptions HTTP/1.1\r\nhost: 127.0.0.1\r\nauthorization: Bearer ${TEST_KEY}\r\ncontent-type: multipart/form-data; boundary=${BOUNDARY}\r\ncontent-length: ${2 * 1024 ** 3}\r\n\r\n`)
    })
    assert.match(answer, /^HTTP\/1\.1 413 /)
    assert.match(answer, /"code":"request_too_large"/)
    assert.match(answer, /connection: close/i)
    assert.equal(mock.stats.requests, before, 'no backend was called')
    const ok = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'a.wav', data: audio(1000) }]))
    assert.equal(ok.status, 200, ok.body)
  })

  it('an upload that outgrows the limit while streaming (chunked, nothing declared) is cut: 413, the backend\'s request aborted', async () => {
    const aborted = mock.stats.aborted
    const big = form([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'big.wav', data: audio(MAX_UPLOAD + 100_000) }])
    const id = 'media-too-large-streamed'
    const res = await post(g.url, '/v1/audio/transcriptions', big, { chunked: true, id }).catch((e: Error) => ({ status: 0, headers: {}, body: e.message }))
    assert.equal(res.status, 413, res.body)
    assert.equal(codeOf(res).code, 'request_too_large')
    await until(() => mock.stats.aborted > aborted)
    const row = await ledgerRow(g.gw, id)
    assert.deepEqual([row.status, row.errorCode], [413, 'request_too_large'])
    // Under the limit, the same chunked upload is served.
    const fits = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'ok.wav', data: audio(MAX_UPLOAD - 100_000) }]), { chunked: true })
    assert.equal(fits.status, 200, fits.body)
  })

  it('a body cut midway: the backend\'s request is aborted, nothing is recorded as a success, the process serves on', async () => {
    const aborted = mock.stats.aborted
    const body = form([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'cut.wav', data: audio(1_000_000) }])
    const id = 'media-cut-midway'
    const req = http.request(`${g.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': body.length, 'x-request-id': id } })
    req.on('error', () => {})
    const active = mock.stats.active
    req.write(body.subarray(0, 400_000))
    // The upload was streaming through: the backend had its request open when the client went away.
    await until(() => mock.stats.active > active)
    req.destroy()
    await until(() => mock.stats.aborted > aborted)
    const row = await ledgerRow(g.gw, id)
    assert.notEqual(row.status, 200)
    assert.ok(row.errorCode === 'upload_incomplete' || row.errorCode === 'client_closed_request', String(row.errorCode))
    const after = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'a.wav', data: audio(2000) }]))
    assert.equal(after.status, 200)
  })

  it('a form that ends before its closing boundary is answered 400 upload_incomplete, and the backend never gets a whole body', async () => {
    const aborted = mock.stats.aborted
    const received = mock.received.length
    const truncated = form([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'a.wav', data: audio(300_000) }], false)
    const res = await post(g.url, '/v1/audio/transcriptions', truncated.subarray(0, truncated.length - 10))
    assert.equal(res.status, 400, res.body)
    assert.equal(codeOf(res).code, 'upload_incomplete')
    await until(() => mock.stats.aborted > aborted)
    assert.equal(mock.received.length, received, 'the mock parsed no request')
  })

  it('a form without its file part is refused 400 (param file; image for edits); with the part it is served', async () => {
    const missing = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'model', value: 'whisper-1' }, { name: 'language', value: 'en' }]))
    assert.equal(missing.status, 400)
    assert.deepEqual([codeOf(missing).code, codeOf(missing).param], ['invalid_request_error', 'file'])
    const noImage = await post(g.url, '/v1/images/edits', form([{ name: 'model', value: 'gpt-image-1' }, { name: 'prompt', value: 'a hat' }, { name: 'mask', filename: 'm.png', data: audio(100) }]))
    assert.equal(noImage.status, 400)
    assert.equal(codeOf(noImage).param, 'image')
    const withImage = await post(g.url, '/v1/images/edits', form([{ name: 'model', value: 'gpt-image-1' }, { name: 'prompt', value: 'a hat' }, { name: 'image[]', filename: 'i.png', data: audio(100) }]))
    assert.equal(withImage.status, 200, withImage.body)
    const noModel = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'file', filename: 'a.wav', data: audio(100) }]))
    assert.deepEqual([noModel.status, codeOf(noModel).param], [400, 'model'])
    // A form sent to a JSON endpoint, and JSON sent to an upload endpoint: 400, nothing sent on.
    const formToJson = await post(g.url, '/v1/images/generations', form([{ name: 'model', value: 'dall-e-2' }, { name: 'prompt', value: 'x' }]))
    assert.deepEqual([formToJson.status, codeOf(formToJson).code], [400, 'invalid_request_error'])
    const jsonToForm = await fetch(`${g.url}/v1/audio/transcriptions`, { method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'whisper-1' }) })
    assert.equal(jsonToForm.status, 400)
    assert.match(((await jsonToForm.json()) as { error: { message: string } }).error.message, /multipart\/form-data/)
  })

  it('failover: a streamed upload moves on while no byte went upstream; after a backend read it, it does not; a spooled one always can', async () => {
    const streamed = form([{ name: 'model', value: 'whisper-failover' }, { name: 'file', filename: 'a.wav', data: audio(50_000) }])
    const moved = await post(g.url, '/v1/audio/transcriptions', streamed)
    assert.equal(moved.status, 200, moved.body)
    assert.deepEqual([moved.headers['x-sluice-backend'], moved.headers['x-sluice-attempts'], moved.headers['x-sluice-upload']], ['m', '2', 'streamed'])

    const spent = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'model', value: 'whisper-broken' }, { name: 'file', filename: 'a.wav', data: audio(50_000) }]))
    assert.equal(spent.status, 502, spent.body)
    // The backend read the streamed body before it failed: no second member was tried.
    assert.deepEqual([spent.headers['x-sluice-backend'], spent.headers['x-sluice-attempts']], ['broken', '1'])

    // The file before the model, larger than the routing prefix: spooled whole, so a second member can be sent it.
    const spooled = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'file', filename: 'a.wav', data: audio(400_000) }, { name: 'model', value: 'whisper-broken' }]))
    assert.equal(spooled.status, 200, spooled.body)
    assert.deepEqual([spooled.headers['x-sluice-backend'], spooled.headers['x-sluice-attempts'], spooled.headers['x-sluice-upload']], ['m', '2', 'spooled'])
    // Spool files are removed when their request ends.
    await until(() => readdirSync(spool).length === 0)
  })

  it('a hedged model never feeds one streamed upload to two backends: the hedge waits for the first try', async () => {
    const file = Buffer.alloc(120_000, 5)
    const before = mock.received.length
    const res = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'model', value: 'whisper-hedged' }, { name: 'file', filename: 'h.wav', data: file }]))
    assert.equal(res.status, 200, res.body)
    assert.deepEqual([res.headers['x-sluice-backend'], res.headers['x-sluice-upload']], ['slow', 'streamed'])
    const got = mock.received.slice(before).filter((r) => r.path === '/v1/audio/transcriptions')
    assert.equal(got.length, 1)
    const part = (got[0]!.body as { files: { file: { bytes: number }[] } }).files.file[0]!
    assert.equal(part.bytes, file.length)
  })

  it('content safety checks an image prompt and a speech input like a chat prompt', async () => {
    const d = new OpenAI({ apiKey: 'sk-test-key-team-d', baseURL: `${g.url}/v1`, maxRetries: 0 })
    const image = await d.images.generate({ model: 'dall-e-2', prompt: 'A poster for Project Falcon' }).then(() => null, (e: unknown) => e)
    assert.ok(image instanceof BadRequestError, String(image))
    assert.equal(image.code, 'content_filter')
    const speech = await d.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'project falcon launches' }).then(() => null, (e: unknown) => e)
    assert.ok(speech instanceof BadRequestError, String(speech))
    const clean = await d.images.generate({ model: 'dall-e-2', prompt: 'A poster for a rocket' })
    assert.equal(clean.data?.length, 1)
  })

  it('request-rate limits count media requests: three admitted, the fourth refused', async () => {
    const b = new OpenAI({ apiKey: TEST_KEY_B, baseURL: `${g.url}/v1`, maxRetries: 0 })
    await b.moderations.create({ model: 'omni-moderation-latest', input: 'hello' })
    await b.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(audio(1000), 'a.wav') })
    await b.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'hi' }).then((r) => r.arrayBuffer())
    const refused = await b.images.generate({ model: 'dall-e-2', prompt: 'x' }).then(() => null, (e: unknown) => e)
    assert.ok(refused instanceof RateLimitError, String(refused))
    assert.equal(refused.code, 'rate_limit_exceeded')
    const upload = await post(g.url, '/v1/audio/transcriptions', form([{ name: 'model', value: 'whisper-1' }, { name: 'file', filename: 'a.wav', data: audio(1000) }]), { key: TEST_KEY_B })
    assert.equal(upload.status, 429)
  })

  it('token limits count the tokens an image model reports (gpt-image-1), not a per-image model\'s', async () => {
    const c = new OpenAI({ apiKey: 'sk-test-key-team-c', baseURL: `${g.url}/v1`, maxRetries: 0 })
    // dall-e-2 reports no tokens: its 256-token reservation is given back, the window stays empty.
    await c.images.generate({ model: 'dall-e-2', prompt: 'x' })
    await c.images.generate({ model: 'dall-e-2', prompt: 'x' })
    const img = await c.images.generate({ model: 'gpt-image-1', prompt: 'a red fox', quality: 'medium' })
    assert.ok(img.usage!.total_tokens > 1056)
    // Now the window holds the reported ~1,060 tokens: a further 256-token reservation does not fit in 1,200.
    const refused = await c.images.generate({ model: 'dall-e-2', prompt: 'x' }).then(() => null, (e: unknown) => e)
    assert.ok(refused instanceof RateLimitError, String(refused))
  })
})
