import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { createReadStream, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import OpenAI, { AzureOpenAI, PermissionDeniedError, toFile } from 'openai'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { ledgerRow } from './helpers/ledger-row.ts'
import { parseProm, sumOf } from './helpers/prom.ts'
import { startTestGateway, TEST_KEY, TEST_KEY_B, type TestGateway } from './helpers/gateway.ts'

// Expected figures are written here from OpenAI's pricing page (platform.openai.com/docs/pricing), not read from src/:
// dall-e-3 standard 1024×1024 $0.040, hd 1792×1024 $0.120; dall-e-2 512×512 $0.018; whisper-1 $0.006/minute;
// tts-1 $15 per 1M characters; gpt-image-1 text input $5, image input $10, image output $40 per 1M tokens;
// gpt-4o-transcribe audio input $6, text output $10 per 1M tokens; moderations free.

/** A canonical 16 kHz 16-bit mono WAV of `seconds` of silence (44-byte header + PCM). */
function wav(seconds: number): Buffer {
  const data = Math.round(seconds * 32_000)
  const h = Buffer.alloc(44)
  h.write('RIFF', 0, 'latin1'); h.writeUInt32LE(36 + data, 4); h.write('WAVEfmt ', 8, 'latin1'); h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20); h.writeUInt16LE(1, 22); h.writeUInt32LE(16_000, 24); h.writeUInt32LE(32_000, 28); h.writeUInt16LE(2, 32); h.writeUInt16LE(16, 34)
  h.write('data', 36, 'latin1'); h.writeUInt32LE(data, 40)
  return Buffer.concat([h, Buffer.alloc(data, 7)])
}

/** The mock's documented speech output: 2,400 bytes of a 440 Hz tone (24 kHz, 16-bit) per input character. */
function expectedPcm(chars: number): Buffer {
  const out = Buffer.alloc(chars * 2400)
  for (let i = 0; i < out.length / 2; i++) out.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / 24_000) * 8000), i * 2)
  return out
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
const near = (actual: number | null, expected: number, what: string) => {
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-9, `${what}: cost ${actual}, expected ${expected}`)
}

describe('media endpoints through the official openai SDK', () => {
  let mock: MockServer
  let g: TestGateway
  let dir: string
  let client: OpenAI
  let n = 0
  const rid = (tag: string) => `media-${tag}-${++n}`

  before(async () => {
    mock = await startMockServer()
    dir = mkdtempSync(join(tmpdir(), 'sluice-media-'))
    g = await startTestGateway(`
admin: { host: 127.0.0.1, port: 0, token: adm-media-1 }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 50ms }
backends:
  - { id: m, type: openai-compatible, url: ${mock.url}/v1, auth: { apiKey: sk-backend }, models: { whisper: whisper-1 } }
  - { id: az, type: azure-openai, url: ${mock.url}, apiVersion: 2024-10-21, auth: { apiKey: az-key } }
pools:
  - { id: azure, members: [ { backend: az } ] }
models:
  - { name: dall-e-2, target: m }
  - { name: dall-e-3, target: m }
  - { name: gpt-image-1, target: m }
  - { name: whisper-1, target: m }
  - { name: whisper, target: m }
  - { name: gpt-4o-transcribe, target: m }
  - { name: tts-1, target: m }
  - { name: gpt-4o-mini-tts, target: m }
  - { name: omni-moderation-latest, target: m }
  - { name: rerank-small, target: m }
  - { name: my-whisper, target: azure }
  - { name: my-tts, target: azure }
products:
  - { id: everything, models: [dall-e-2, dall-e-3, gpt-image-1, whisper-1, whisper, gpt-4o-transcribe, tts-1, gpt-4o-mini-tts, omni-moderation-latest, rerank-small, my-whisper, my-tts] }
  - { id: speech-only, models: [tts-1] }
consumers:
  - { id: team-a, product: everything, keys: [ { value: ${TEST_KEY} } ] }
  - { id: team-b, product: speech-only, keys: [ { value: ${TEST_KEY_B} } ] }
`)
    client = new OpenAI({ apiKey: TEST_KEY, baseURL: `${g.url}/v1`, maxRetries: 0 })
  })
  after(async () => {
    await g.close()
    await mock.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('images.generate: url and b64_json answers, priced per image by size and quality', async () => {
    const a = rid('dalle3')
    const res = await client.images.generate({ model: 'dall-e-3', prompt: 'A lighthouse at dusk', size: '1792x1024', quality: 'hd', n: 2 }, { headers: { 'x-request-id': a } })
    assert.equal(res.data?.length, 2)
    assert.match(res.data![0]!.url!, /^http:\/\/127\.0\.0\.1:\d+\/mock\/images\/[0-9a-f]+\.png$/)
    assert.equal(res.data![0]!.revised_prompt, 'A lighthouse at dusk')
    const png = Buffer.from(await (await fetch(res.data![0]!.url!)).arrayBuffer())
    assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG')
    near((await ledgerRow(g.gw, a)).costUsd, 2 * 0.12, 'dall-e-3 hd 1792x1024 ×2')

    const b = rid('dalle2')
    const b64 = await client.images.generate({ model: 'dall-e-2', prompt: 'A small boat', size: '512x512', response_format: 'b64_json' }, { headers: { 'x-request-id': b } })
    const bytes = Buffer.from(b64.data![0]!.b64_json!, 'base64')
    assert.deepEqual([...bytes.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
    const row = await ledgerRow(g.gw, b)
    assert.equal(row.status, 200)
    assert.equal(row.model, 'dall-e-2')
    assert.equal(row.consumer, 'team-a')
    near(row.costUsd, 0.018, 'dall-e-2 512x512')
  })

  it('gpt-image-1: token usage priced as text input and image output; a streamed generation relays partial_images as SSE', async () => {
    const a = rid('gptimage')
    const res = await client.images.generate({ model: 'gpt-image-1', prompt: 'A red fox in snow', quality: 'medium', size: '1024x1024' }, { headers: { 'x-request-id': a } })
    const u = res.usage!
    // OpenAI's image-generation guide: a medium 1024×1024 image is 1056 output tokens.
    assert.equal(u.output_tokens, 1056)
    const row = await ledgerRow(g.gw, a)
    assert.deepEqual([row.promptTokens, row.completionTokens], [u.input_tokens, 1056])
    near(row.costUsd, (u.input_tokens * 5 + 1056 * 40) / 1e6, 'gpt-image-1 medium')

    const s = rid('gptimage-stream')
    const stream = await client.images.generate({ model: 'gpt-image-1', prompt: 'A red fox in snow', stream: true, partial_images: 2, quality: 'low' }, { headers: { 'x-request-id': s } })
    const types: string[] = []
    for await (const ev of stream) types.push(ev.type)
    assert.deepEqual(types, ['image_generation.partial_image', 'image_generation.partial_image', 'image_generation.completed'])
    const srow = await ledgerRow(g.gw, s)
    assert.equal(srow.stream, true)
    assert.equal(srow.completionTokens, 272) // low 1024×1024
    near(srow.costUsd, (srow.promptTokens * 5 + 272 * 40) / 1e6, 'gpt-image-1 low, streamed')
  })

  it('images.edit uploads a real file (fs.createReadStream) and the backend receives it byte for byte', async () => {
    const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.alloc(300_000, 3)])
    const path = join(dir, 'in.png')
    writeFileSync(path, png)
    const a = rid('edit')
    const res = await client.images.edit({ model: 'gpt-image-1', image: createReadStream(path), prompt: 'Add a hat' }, { headers: { 'x-request-id': a } })
    assert.equal(res.data?.length, 1)
    const got = mock.received.filter((r) => r.path === '/v1/images/edits').at(-1)!.body as { files: Record<string, { bytes: number; sha256: string }[]> }
    const part = (got.files.image ?? got.files['image[]'])![0]!
    assert.deepEqual([part.bytes, part.sha256], [png.length, sha(png)])
    const row = await ledgerRow(g.gw, a)
    const u = res.usage!
    assert.equal(u.input_tokens_details.image_tokens, 323)
    near(row.costUsd, ((u.input_tokens - 323) * 5 + 323 * 10 + u.output_tokens * 40) / 1e6, 'gpt-image-1 edit')
  })

  it('audio.transcriptions.create with a real multipart upload, the model first (streamed through) and the file first (spooled)', async () => {
    const audio = wav(2.5)
    const path = join(dir, 'speech.wav')
    writeFileSync(path, audio)
    const a = rid('whisper')
    const { data: t, response } = await client.audio.transcriptions.create({ model: 'whisper-1', file: createReadStream(path) }, { headers: { 'x-request-id': a } }).withResponse()
    assert.equal(typeof t.text, 'string')
    assert.equal(response.headers.get('x-sluice-upload'), 'streamed')
    // whisper-1 bills by the second: 2.5 s reported as 3 s → 3/60 × $0.006.
    near((await ledgerRow(g.gw, a)).costUsd, (3 / 60) * 0.006, 'whisper-1 3 s')

    // A file part before the model field and larger than the routing prefix (256 KiB) is spooled, then sent whole.
    const long = wav(30) // 960 KB
    const b = rid('whisper-spool')
    const { data: v, response: spooled } = await client.audio.transcriptions.create({ file: await toFile(long, 'long.wav'), model: 'whisper-1', response_format: 'verbose_json' }, { headers: { 'x-request-id': b } }).withResponse()
    assert.equal(v.duration, 30)
    assert.equal(spooled.headers.get('x-sluice-upload'), 'spooled')
    const got = mock.received.filter((r) => r.path === '/v1/audio/transcriptions').at(-1)!.body as { files: Record<string, { bytes: number; sha256: string }[]> }
    assert.deepEqual([got.files.file![0]!.bytes, got.files.file![0]!.sha256], [long.length, sha(long)])
    near((await ledgerRow(g.gw, b)).costUsd, 0.5 * 0.006, 'whisper-1 30 s')
  })

  it('a model known to the backend by another name gets that name in the form (the file untouched)', async () => {
    const audio = wav(1)
    const t = await client.audio.transcriptions.create({ model: 'whisper', file: await toFile(audio, 'one.wav') })
    assert.equal(typeof t.text, 'string')
    const got = mock.received.filter((r) => r.path === '/v1/audio/transcriptions').at(-1)!.body as { model: string; files: Record<string, { sha256: string }[]> }
    assert.equal(got.model, 'whisper-1')
    assert.equal(got.files.file![0]!.sha256, sha(audio))
  })

  it('gpt-4o-transcribe reports tokens: audio input and text output priced per token; text formats relayed as text', async () => {
    const a = rid('4o-transcribe')
    const t = await client.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(wav(4), 'four.wav') }, { headers: { 'x-request-id': a } })
    const usage = t.usage as { type: 'tokens'; input_tokens: number; output_tokens: number; input_token_details: { audio_tokens: number } }
    assert.equal(usage.input_token_details.audio_tokens, 40) // the mock's 10 audio tokens per second
    const row = await ledgerRow(g.gw, a)
    assert.deepEqual([row.promptTokens, row.completionTokens], [40, usage.output_tokens])
    near(row.costUsd, (40 * 6 + usage.output_tokens * 10) / 1e6, 'gpt-4o-transcribe')

    const srt = await client.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(wav(2), 'two.wav'), response_format: 'srt' })
    assert.match(srt as unknown as string, /^1\n00:00:00,000 --> 00:00:02,000\n/)
    // A translation's JSON answer carries no duration: the WAV header's 2 s price it (2/60 × $0.006).
    const tid = rid('translation')
    const tr = await client.audio.translations.create({ model: 'whisper-1', file: await toFile(wav(2), 'two.wav') }, { headers: { 'x-request-id': tid } })
    assert.equal(typeof tr.text, 'string')
    assert.equal((tr as { usage?: unknown }).usage, undefined)
    near((await ledgerRow(g.gw, tid)).costUsd, (2 / 60) * 0.006, 'whisper-1 translation, 2 s from the WAV header')
  })

  it('audio.speech.create streamed to a file: the bytes are the mock\'s, relayed while the backend is still sending', async () => {
    const input = 'Hello from the gateway, streamed as it comes. '.repeat(8) // 376 characters → 902,400 bytes in 188 chunks
    const a = rid('speech')
    const res = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input, response_format: 'pcm' }, { headers: { 'x-request-id': a } }).asResponse()
    assert.equal(res.headers.get('content-type'), 'audio/pcm')
    const reader = res.body!.getReader()
    const first = await reader.read()
    // The first bytes reached the client while the mock's answer was still open: relayed, not buffered.
    assert.equal(mock.stats.active, 1)
    const path = join(dir, 'speech.pcm')
    const out = createWriteStream(path)
    out.write(Buffer.from(first.value!))
    await pipeline(Readable.fromWeb(new ReadableStream({ async pull(c) { const r = await reader.read(); if (r.done) c.close(); else c.enqueue(r.value) } }) as never), out)
    const expected = expectedPcm([...input].length)
    const got = readFileSync(path)
    assert.equal(got.length, expected.length)
    assert.ok(got.equals(expected))
    near((await ledgerRow(g.gw, a)).costUsd, ([...input].length * 15) / 1e6, 'tts-1 characters')

    const wavRes = await client.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'Hi.', response_format: 'wav' })
    assert.equal(wavRes.headers.get('content-type'), 'audio/wav')
    const wavBytes = Buffer.from(await wavRes.arrayBuffer())
    assert.equal(wavBytes.length, 44 + 3 * 2400)
    assert.equal(wavBytes.toString('latin1', 0, 4), 'RIFF')
  })

  it('streamed transcripts and SSE speech: events relayed as SSE, their reported tokens in the ledger', async () => {
    const a = rid('transcribe-stream')
    const stream = await client.audio.transcriptions.create({ model: 'gpt-4o-transcribe', file: await toFile(wav(3), 's.wav'), stream: true }, { headers: { 'x-request-id': a } })
    const events: { type: string; usage?: { input_tokens: number; output_tokens: number } }[] = []
    for await (const ev of stream) events.push(ev as never)
    assert.equal(events.at(-1)!.type, 'transcript.text.done')
    assert.ok(events.slice(0, -1).every((e) => e.type === 'transcript.text.delta') && events.length > 1)
    const done = events.at(-1)!.usage!
    const row = await ledgerRow(g.gw, a)
    assert.deepEqual([row.stream, row.promptTokens, row.completionTokens], [true, 30, done.output_tokens])
    near(row.costUsd, (30 * 6 + done.output_tokens * 10) / 1e6, 'gpt-4o-transcribe streamed')

    const s = rid('speech-sse')
    const res = await fetch(`${g.url}/v1/audio/speech`, {
      method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json', 'x-request-id': s },
      body: JSON.stringify({ model: 'gpt-4o-mini-tts', voice: 'alloy', input: 'Short.', stream_format: 'sse' }),
    })
    assert.match(res.headers.get('content-type')!, /^text\/event-stream/)
    const text = await res.text()
    const frames = text.split('\n\n').filter(Boolean).map((f) => JSON.parse(f.split('\n').find((l) => l.startsWith('data: '))!.slice(6)) as { type: string; audio?: string; usage?: { input_tokens: number; output_tokens: number } })
    const audio = Buffer.concat(frames.filter((f) => f.type === 'speech.audio.delta').map((f) => Buffer.from(f.audio!, 'base64')))
    assert.ok(audio.equals(expectedPcm(6)))
    const usage = frames.at(-1)!.usage!
    const srow = await ledgerRow(g.gw, s)
    assert.deepEqual([srow.promptTokens, srow.completionTokens], [usage.input_tokens, usage.output_tokens])
    near(srow.costUsd, (usage.input_tokens * 0.6 + usage.output_tokens * 12) / 1e6, 'gpt-4o-mini-tts, reported tokens')
  })

  it('moderations.create: the real shape, free in the ledger', async () => {
    const a = rid('moderation')
    const res = await client.moderations.create({ model: 'omni-moderation-latest', input: ['a calm sentence', 'mock-violence here'] }, { headers: { 'x-request-id': a } })
    assert.equal(res.results.length, 2)
    assert.equal(res.results[0]!.flagged, false)
    assert.equal(res.results[1]!.flagged, true)
    assert.equal(res.results[1]!.categories.violence, true)
    assert.equal(typeof res.results[1]!.category_scores['violence/graphic'], 'number')
    assert.deepEqual(res.results[1]!.category_applied_input_types.violence, ['text'])
    const row = await ledgerRow(g.gw, a)
    assert.equal(row.status, 200)
    assert.equal(row.costUsd, 0)
  })

  it('metrics count media requests like any other (per model and status)', async () => {
    const text = await (await fetch(`${g.adminUrl}/metrics`, { headers: { authorization: 'Bearer adm-media-1' } })).text()
    const samples = parseProm(text)
    // The tests above made one dall-e-3 request, one moderation and two tts-1 speech requests, all answered 200.
    assert.equal(sumOf(samples, 'sluice_requests_total', { model: 'dall-e-3', status: '200' }), 1)
    assert.equal(sumOf(samples, 'sluice_requests_total', { model: 'omni-moderation-latest', status: '200' }), 1)
    assert.ok(sumOf(samples, 'sluice_requests_total', { model: 'tts-1', status: '200' }) >= 2)
  })

  it('rerank (the Jina/vLLM /v1/rerank shape) on a backend that has it', async () => {
    const res = await fetch(`${g.url}/v1/rerank`, {
      method: 'POST', headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'rerank-small', query: 'red fox', documents: ['a blue whale', 'the red fox runs', 'fox'], top_n: 2 }),
    })
    assert.equal(res.status, 200)
    const body = await res.json() as { results: { index: number; relevance_score: number }[]; usage: { total_tokens: number } }
    assert.deepEqual(body.results.map((r) => r.index), [2, 1])
    assert.ok(body.usage.total_tokens > 0)
  })

  it('a model outside the consumer\'s product is refused; one inside it is served', async () => {
    const b = new OpenAI({ apiKey: TEST_KEY_B, baseURL: `${g.url}/v1`, maxRetries: 0 })
    const refused = await b.audio.transcriptions.create({ model: 'whisper-1', file: await toFile(wav(1), 'x.wav') }).then(() => null, (e: unknown) => e)
    assert.ok(refused instanceof PermissionDeniedError, String(refused))
    assert.equal(refused.code, 'model_not_allowed')
    const refusedJson = await b.images.generate({ model: 'dall-e-3', prompt: 'x' }).then(() => null, (e: unknown) => e)
    assert.ok(refusedJson instanceof PermissionDeniedError)
    const ok = await b.audio.speech.create({ model: 'tts-1', voice: 'alloy', input: 'ok' })
    assert.equal(Buffer.from(await ok.arrayBuffer()).length, 2 * 2400)
  })

  it('Azure forms: /openai/deployments/{d}/… at the gateway (AzureOpenAI client), an Azure backend called with its deployment', async () => {
    const az = new AzureOpenAI({ apiKey: TEST_KEY, endpoint: g.url, apiVersion: '2024-10-21', deployment: 'my-whisper', maxRetries: 0 })
    const t = await az.audio.transcriptions.create({ model: 'my-whisper', file: await toFile(wav(1), 'az.wav') })
    assert.equal(typeof t.text, 'string')
    const got = mock.received.filter((r) => r.path.startsWith('/openai/deployments/')).at(-1)!
    assert.equal(got.path, '/openai/deployments/my-whisper/audio/transcriptions')
    const speech = new AzureOpenAI({ apiKey: TEST_KEY, endpoint: g.url, apiVersion: '2024-10-21', deployment: 'my-tts', maxRetries: 0 })
    const audio = await speech.audio.speech.create({ model: 'my-tts', voice: 'alloy', input: 'Azure', response_format: 'pcm' })
    assert.ok(Buffer.from(await audio.arrayBuffer()).equals(expectedPcm(5)))
    assert.equal(mock.received.at(-1)!.path, '/openai/deployments/my-tts/audio/speech')
    // The Azure v1 surface at the gateway: OpenAI's paths under /openai/v1.
    const v1 = new OpenAI({ apiKey: TEST_KEY, baseURL: `${g.url}/openai/v1`, maxRetries: 0 })
    const img = await v1.images.generate({ model: 'dall-e-2', prompt: 'v1 surface' })
    assert.equal(img.data?.length, 1)
  })
})
