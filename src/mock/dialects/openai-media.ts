/**
 * The mock's OpenAI media endpoints, in the shapes of OpenAI's API reference (platform.openai.com/docs/api-reference:
 * Images, Audio; the openai-node SDK's types in resources/images.ts and resources/audio/*.ts), under `/v1/`,
 * `/openai/v1/` and Azure's `/openai/deployments/{deployment}/`:
 *
 * - `images/generations` (JSON) and `images/edits` (multipart: an `image` or `image[]` file part and a
 *   `prompt` are required): `data[]` of `b64_json` (a tiny valid PNG) or `url` (served by the mock at
 *   `/mock/images/{id}.png`); the GPT image models report `usage` (text/image input tokens, output tokens by
 *   quality and size, the figures of OpenAI's image-generation guide) and stream with `stream: true`:
 *   `partial_images` × `image_generation.partial_image` (edits: `image_edit.*`), then `…completed` with usage.
 * - `audio/transcriptions` and `audio/translations` (multipart: a `file` part is required): `json`, `text`,
 *   `srt`, `vtt`, `verbose_json` (with `duration` and segments). The duration is the WAV header's, else
 *   the file's bytes at 16 kHz 16-bit mono. whisper-1 reports `usage: {type: duration, seconds}`; the
 *   gpt-4o transcribe models `usage: {type: tokens, …}` (audio tokens: 10 per second) and stream with `stream: true`.
 * - `audio/speech` (JSON): PCM, 24 kHz 16-bit mono, 2,400 bytes (50 ms) of a 440 Hz tone per input
 *   character (`wav` adds the 44-byte header), sent in 4,800-byte chunks a few ms apart, with the
 *   format's content type; `stream_format: sse` sends `speech.audio.delta` events and `speech.audio.done` with usage.
 * - `rerank` (JSON, the Jina/vLLM shape, also Cohere's v1 request): results by word overlap, `usage.total_tokens`.
 *
 * Moderations are served by ../content-safety.ts. Like the mock's chat routes, no key is required; the
 * shared fault injection (`x-mock-status`, `x-mock-retry-after`, `x-mock-hang`, latency) applies.
 */
import busboy from 'busboy'
import { createHash } from 'node:crypto'
import { deflateSync } from 'node:zlib'
import { after, elapsed, header, rid, sendJson, type Ctx } from '../engine.ts'
import { errorBody } from '../errors.ts'
import { countTextTokens } from '../text.ts'
import type { MockDialect } from './index.ts'

type Json = Record<string, unknown>
type Kind = 'images/generations' | 'images/edits' | 'audio/transcriptions' | 'audio/translations' | 'audio/speech' | 'rerank'

const KINDS = new Set<string>(['images/generations', 'images/edits', 'audio/transcriptions', 'audio/translations', 'audio/speech', 'rerank'])
const PATH_RE = /^(?:\/v1|\/openai\/v1|\/openai\/deployments\/([^/]+))\/(images\/generations|images\/edits|audio\/transcriptions|audio\/translations|audio\/speech|rerank)$/

/** Speech: 24 kHz, 16-bit mono; 50 ms of audio per input character. */
export const SPEECH_SAMPLE_RATE = 24_000
export const SPEECH_BYTES_PER_CHAR = 2_400
const SPEECH_CHUNK = 4_800
/** Transcription's fallback rate for a file that is not WAV: 16 kHz, 16-bit mono. */
const FALLBACK_BYTES_PER_SECOND = 32_000
/** gpt-image output tokens by quality and size (OpenAI's image-generation guide, "Cost and latency"). */
const IMAGE_OUTPUT_TOKENS: Record<string, Record<string, number>> = {
  low: { '1024x1024': 272, '1024x1536': 408, '1536x1024': 400 },
  medium: { '1024x1024': 1056, '1024x1536': 1584, '1536x1024': 1568 },
  high: { '1024x1024': 4160, '1024x1536': 6240, '1536x1024': 6208 },
}
/** Image input tokens the mock reports per uploaded image (edits). */
export const IMAGE_INPUT_TOKENS_PER_IMAGE = 323
const WORDS = 'the quick brown fox jumps over the lazy dog while a gentle rain falls on the quiet town'.split(' ')

/** A 1×1 transparent PNG, built once (signature, IHDR, IDAT, IEND with their CRCs). */
export const TINY_PNG: Buffer = (() => {
  const crcTable = Array.from({ length: 256 }, (_, n) => {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
    return c >>> 0
  })
  const crc = (b: Buffer) => {
    let c = 0xffffffff
    for (const x of b) c = crcTable[(c ^ x) & 0xff]! ^ (c >>> 8)
    return (c ^ 0xffffffff) >>> 0
  }
  const chunk = (type: string, data: Buffer) => {
    const len = Buffer.alloc(4)
    len.writeUInt32BE(data.length)
    const td = Buffer.concat([Buffer.from(type, 'latin1'), data])
    const c = Buffer.alloc(4)
    c.writeUInt32BE(crc(td))
    return Buffer.concat([len, td, c])
  }
  const ihdr = Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0])
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.from([0, 0, 0, 0, 0]))), chunk('IEND', Buffer.alloc(0))])
})()

/** The speech audio for an input: PCM samples of a 440 Hz tone, `SPEECH_BYTES_PER_CHAR` bytes per character. */
export function speechPcm(input: string): Buffer {
  const bytes = [...input].length * SPEECH_BYTES_PER_CHAR
  const out = Buffer.alloc(bytes)
  for (let i = 0; i < bytes / 2; i++) out.writeInt16LE(Math.round(Math.sin((2 * Math.PI * 440 * i) / SPEECH_SAMPLE_RATE) * 8000), i * 2)
  return out
}

export function wavHeader(dataBytes: number, sampleRate = SPEECH_SAMPLE_RATE): Buffer {
  const h = Buffer.alloc(44)
  h.write('RIFF', 0, 'latin1')
  h.writeUInt32LE(36 + dataBytes, 4)
  h.write('WAVEfmt ', 8, 'latin1')
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20)
  h.writeUInt16LE(1, 22)
  h.writeUInt32LE(sampleRate, 24)
  h.writeUInt32LE(sampleRate * 2, 28)
  h.writeUInt16LE(2, 32)
  h.writeUInt16LE(16, 34)
  h.write('data', 36, 'latin1')
  h.writeUInt32LE(dataBytes, 40)
  return h
}

/** Seconds of audio in a file: a canonical WAV header's data size over its byte rate, else the fallback rate. */
export function audioSeconds(file: Buffer): number {
  if (file.length >= 44 && file.toString('latin1', 0, 4) === 'RIFF' && file.toString('latin1', 8, 12) === 'WAVE') {
    const byteRate = file.readUInt32LE(28)
    if (byteRate > 0) return Math.round((Math.min(file.readUInt32LE(40), file.length - 44) / byteRate) * 100) / 100
  }
  return Math.round((file.length / FALLBACK_BYTES_PER_SECOND) * 100) / 100
}

const SPEECH_TYPES: Record<string, string> = { mp3: 'audio/mpeg', opus: 'audio/opus', aac: 'audio/aac', flac: 'audio/flac', wav: 'audio/wav', pcm: 'audio/pcm' }

class Refused extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null) {
    super(message)
  }
}

interface Form { fields: Record<string, string>; files: Map<string, { filename: string; mimeType: string; data: Buffer }[]> }

function parseForm(ctx: Ctx, raw: Buffer): Promise<Form> {
  return new Promise((resolve, reject) => {
    let bb: busboy.Busboy
    try {
      bb = busboy({ headers: ctx.req.headers })
    } catch {
      return reject(new Refused(400, 'Invalid multipart body: missing boundary (mock).'))
    }
    const form: Form = { fields: {}, files: new Map() }
    bb.on('field', (name, value) => { form.fields[name] = value })
    bb.on('file', (name, stream, info) => {
      const parts: Buffer[] = []
      stream.on('data', (c: Buffer) => parts.push(c))
      stream.on('error', () => {})
      stream.on('end', () => {
        const list = form.files.get(name) ?? []
        list.push({ filename: info.filename ?? '', mimeType: info.mimeType, data: Buffer.concat(parts) })
        form.files.set(name, list)
      })
    })
    bb.on('error', () => reject(new Refused(400, 'The multipart body is malformed (mock).')))
    bb.on('close', () => resolve(form))
    bb.end(raw)
  })
}

function refuse(ctx: Ctx, e: Refused): void {
  sendJson(ctx, e.status, errorBody(e.status, e.message, { param: e.param }))
}

function origin(ctx: Ctx): string {
  return `http://${header(ctx.req, 'host') ?? '127.0.0.1'}`
}

function isGptImage(model: string): boolean {
  return /gpt-image/.test(model)
}

function imageAnswer(ctx: Ctx, kind: Kind, body: Json, inputImages: number): void {
  const model = String(body.model ?? (kind === 'images/edits' ? 'dall-e-2' : 'dall-e-2'))
  if (typeof body.prompt !== 'string' || body.prompt === '') throw new Refused(400, "'prompt' is a required property (mock)", 'prompt')
  const n = body.n === undefined ? 1 : Number(body.n)
  if (!Number.isInteger(n) || n < 1 || n > 10) throw new Refused(400, `Invalid 'n': must be between 1 and 10 (mock).`, 'n')
  const gpt = isGptImage(model)
  const size = typeof body.size === 'string' && body.size !== 'auto' ? body.size : '1024x1024'
  const quality: string = gpt ? (typeof body.quality === 'string' && body.quality !== 'auto' ? body.quality : 'medium') : typeof body.quality === 'string' ? body.quality : 'standard'
  const format = gpt ? 'b64_json' : body.response_format === 'b64_json' ? 'b64_json' : 'url'
  const created = Math.floor(Date.now() / 1000)
  const item = () => format === 'b64_json' ? { b64_json: TINY_PNG.toString('base64') } : { url: `${origin(ctx)}/mock/images/${rid(8)}.png` }
  const textTokens = countTextTokens(body.prompt)
  const imageTokens = inputImages * IMAGE_INPUT_TOKENS_PER_IMAGE
  const outEach = IMAGE_OUTPUT_TOKENS[quality]?.[size] ?? IMAGE_OUTPUT_TOKENS.medium!['1024x1024']!
  const usage = (images: number) => ({
    total_tokens: textTokens + imageTokens + outEach * images, input_tokens: textTokens + imageTokens, output_tokens: outEach * images,
    input_tokens_details: { text_tokens: textTokens, image_tokens: imageTokens },
  })
  const stream = body.stream === true || body.stream === 'true'
  if (stream) {
    if (!gpt) throw new Refused(400, 'Streaming is only supported for the GPT image models (mock).', 'stream')
    const partials = Math.max(0, Math.min(3, Number(body.partial_images ?? 0) || 0))
    const prefix = kind === 'images/edits' ? 'image_edit' : 'image_generation'
    const meta = { created_at: created, size, quality, background: 'opaque', output_format: 'png' }
    const events: string[] = []
    for (let img = 0; img < n; img++) {
      for (let i = 0; i < partials; i++) events.push(sse(`${prefix}.partial_image`, { type: `${prefix}.partial_image`, b64_json: TINY_PNG.toString('base64'), ...meta, partial_image_index: i }))
      events.push(sse(`${prefix}.completed`, { type: `${prefix}.completed`, b64_json: TINY_PNG.toString('base64'), ...meta, usage: usage(1) }))
    }
    return streamOut(ctx, 'text/event-stream', events.map((e) => Buffer.from(e)))
  }
  const data = Array.from({ length: n }, () => (model === 'dall-e-3' ? { ...item(), revised_prompt: body.prompt } : item()))
  const answer: Json = { created, data }
  if (gpt) Object.assign(answer, { background: 'opaque', output_format: 'png', quality, size, usage: usage(n) })
  sendJson(ctx, 200, answer)
}

function sse(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`
}

/** Sends the pieces a few ms apart (the client sees a stream over time), ending after the last. */
function streamOut(ctx: Ctx, contentType: string, pieces: Buffer[], gapMs = 3): void {
  ctx.res.writeHead(200, { 'content-type': contentType, 'x-request-id': ctx.requestId, 'openai-processing-ms': String(Math.round(elapsed(ctx))) })
  let i = 0
  const next = () => {
    if (ctx.closed) return
    if (i >= pieces.length) { ctx.res.end(); return }
    ctx.res.write(pieces[i++])
    after(ctx, gapMs, next)
  }
  next()
}

function transcript(seconds: number): string {
  const words = Math.max(1, Math.round(seconds * 2))
  const out: string[] = []
  for (let i = 0; i < words; i++) out.push(WORDS[i % WORDS.length]!)
  const t = out.join(' ')
  return t[0]!.toUpperCase() + t.slice(1) + '.'
}

function stamp(sec: number, sep: string): string {
  const ms = Math.round(sec * 1000)
  const p = (n: number, w = 2) => String(n).padStart(w, '0')
  return `${p(Math.floor(ms / 3_600_000))}:${p(Math.floor(ms / 60_000) % 60)}:${p(Math.floor(ms / 1000) % 60)}${sep}${p(ms % 1000, 3)}`
}

function audioAnswer(ctx: Ctx, kind: Kind, form: Form): void {
  const file = form.files.get('file')?.[0]
  if (!file) throw new Refused(400, "'file' is a required property (mock)", 'file')
  const model = form.fields.model
  if (!model) throw new Refused(400, "'model' is a required property (mock)", 'model')
  const format = form.fields.response_format ?? 'json'
  const seconds = audioSeconds(file.data)
  const text = transcript(seconds)
  const tokens = /gpt-4o/.test(model)
  if (tokens && !['json', 'text'].includes(format)) throw new Refused(400, `response_format '${format}' is not compatible with model '${model}' (mock).`, 'response_format')
  const audioTokens = Math.ceil(seconds * 10)
  const outTokens = countTextTokens(text)
  const usage = tokens
    ? { type: 'tokens', input_tokens: audioTokens, input_token_details: { text_tokens: 0, audio_tokens: audioTokens }, output_tokens: outTokens, total_tokens: audioTokens + outTokens }
    : { type: 'duration', seconds: Math.ceil(seconds) }
  const translate = kind === 'audio/translations'
  if ((form.fields.stream === 'true') && !translate) {
    if (!tokens) throw new Refused(400, 'Streaming is not supported for whisper-1 (mock).', 'stream')
    const words = text.split(' ')
    const events = words.map((w, i) => sse('transcript.text.delta', { type: 'transcript.text.delta', delta: i === 0 ? w : ' ' + w }))
    events.push(sse('transcript.text.done', { type: 'transcript.text.done', text, usage }))
    return streamOut(ctx, 'text/event-stream', events.map((e) => Buffer.from(e)))
  }
  const segment = { id: 0, seek: 0, start: 0, end: seconds, text: ' ' + text, tokens: [50364, 440, 50414], temperature: 0, avg_logprob: -0.25, compression_ratio: 1.2, no_speech_prob: 0.01 }
  switch (format) {
    case 'json':
      return sendJson(ctx, 200, translate ? { text } : { text, usage })
    case 'verbose_json':
      return sendJson(ctx, 200, { task: translate ? 'translate' : 'transcribe', language: 'english', duration: seconds, text, segments: [segment], ...(translate ? {} : { usage }) })
    case 'text':
      return sendText(ctx, 'text/plain; charset=utf-8', text + '\n')
    case 'srt':
      return sendText(ctx, 'text/plain; charset=utf-8', `1\n${stamp(0, ',')} --> ${stamp(seconds, ',')}\n${text}\n\n`)
    case 'vtt':
      return sendText(ctx, 'text/vtt; charset=utf-8', `WEBVTT\n\n${stamp(0, '.')} --> ${stamp(seconds, '.')}\n${text}\n\n`)
    default:
      throw new Refused(400, `Invalid response_format '${format}' (mock).`, 'response_format')
  }
}

function sendText(ctx: Ctx, type: string, text: string): void {
  ctx.res.writeHead(200, { 'content-type': type, 'content-length': String(Buffer.byteLength(text)), 'x-request-id': ctx.requestId })
  ctx.res.end(text)
}

function speechAnswer(ctx: Ctx, body: Json): void {
  if (typeof body.input !== 'string' || body.input === '') throw new Refused(400, "'input' is a required property (mock)", 'input')
  if (body.input.length > 4096) throw new Refused(400, "'input' is longer than 4096 characters (mock)", 'input')
  if (typeof body.voice !== 'string' && (typeof body.voice !== 'object' || body.voice === null)) throw new Refused(400, "'voice' is a required property (mock)", 'voice')
  const format = typeof body.response_format === 'string' ? body.response_format : 'mp3'
  const type = SPEECH_TYPES[format]
  if (!type) throw new Refused(400, `Invalid response_format '${format}' (mock).`, 'response_format')
  const pcm = speechPcm(body.input)
  const audio = format === 'wav' ? Buffer.concat([wavHeader(pcm.length), pcm]) : pcm
  const pieces: Buffer[] = []
  for (let i = 0; i < audio.length; i += SPEECH_CHUNK) pieces.push(audio.subarray(i, i + SPEECH_CHUNK))
  if (body.stream_format === 'sse') {
    const input = countTextTokens(body.input)
    const output = Math.ceil(pcm.length / 2 / 1200) // 20 audio tokens per second of 24 kHz audio
    const events = pieces.map((p) => Buffer.from(sse('speech.audio.delta', { type: 'speech.audio.delta', audio: p.toString('base64') })))
    events.push(Buffer.from(sse('speech.audio.done', { type: 'speech.audio.done', usage: { input_tokens: input, output_tokens: output, total_tokens: input + output } })))
    return streamOut(ctx, 'text/event-stream', events)
  }
  streamOut(ctx, type, pieces)
}

function rerankAnswer(ctx: Ctx, body: Json): void {
  if (typeof body.query !== 'string') throw new Refused(400, "'query' is a required property (mock)", 'query')
  if (!Array.isArray(body.documents)) throw new Refused(400, "'documents' is a required property (mock)", 'documents')
  const docs = body.documents.map((d) => (typeof d === 'string' ? d : typeof (d as Json)?.text === 'string' ? String((d as Json).text) : ''))
  const q = new Set(body.query.toLowerCase().match(/[a-z0-9]+/g) ?? [])
  const scored = docs.map((text, index) => {
    const words = text.toLowerCase().match(/[a-z0-9]+/g) ?? []
    const hits = words.filter((w) => q.has(w)).length
    return { index, relevance_score: words.length ? Math.round((hits / words.length) * 1e6) / 1e6 : 0, text }
  }).sort((a, b) => b.relevance_score - a.relevance_score || a.index - b.index)
  const top = typeof body.top_n === 'number' ? scored.slice(0, Math.max(0, body.top_n)) : scored
  const withDocs = body.return_documents !== false
  const tokens = countTextTokens(body.query) + docs.reduce((n, d) => n + countTextTokens(d), 0)
  sendJson(ctx, 200, {
    id: `rerank-${rid(12)}`, model: body.model ?? null, usage: { total_tokens: tokens },
    results: top.map((r) => ({ index: r.index, ...(withDocs ? { document: { text: r.text } } : {}), relevance_score: r.relevance_score })),
  })
}

export const openaiMediaDialect: MockDialect = {
  name: 'openai-media',
  matches(method, path) {
    if (method === 'GET' && path.startsWith('/mock/images/')) return true
    return method === 'POST' && PATH_RE.test(path)
  },
  handle(ctx, raw, path) {
    if (ctx.req.method === 'GET') {
      ctx.res.writeHead(200, { 'content-type': 'image/png', 'content-length': String(TINY_PNG.length) })
      ctx.res.end(TINY_PNG)
      return
    }
    const m = PATH_RE.exec(path)!
    const kind = m[2] as Kind
    if (!KINDS.has(kind)) return refuse(ctx, new Refused(404, `Invalid URL (POST ${path})`))
    const eff = ctx.eff
    if (eff.hang) return
    if (eff.fail !== undefined) {
      const status = eff.fail
      const extra: Record<string, string> = eff.retryAfter !== undefined ? { 'retry-after': String(eff.retryAfter) } : {}
      return after(ctx, eff.latencyMs - elapsed(ctx), () => sendJson(ctx, status, errorBody(status), extra))
    }
    const deployment = m[1] ? decodeURIComponent(m[1]) : undefined
    const multipart = kind === 'images/edits' || kind === 'audio/transcriptions' || kind === 'audio/translations'
    const run = async () => {
      if (multipart) {
        if (!/^multipart\/form-data/i.test(header(ctx.req, 'content-type') ?? '')) throw new Refused(400, 'Expected a multipart/form-data body (mock).')
        const form = await parseForm(ctx, raw)
        if (deployment && !form.fields.model) form.fields.model = deployment
        const files: Json = {}
        for (const [name, list] of form.files) files[name] = list.map((f) => ({ filename: f.filename, mimeType: f.mimeType, bytes: f.data.length, sha256: createHash('sha256').update(f.data).digest('hex') }))
        ctx.received.push({ path, body: { ...form.fields, files } })
        if (kind === 'images/edits') {
          const images = [...(form.files.get('image') ?? []), ...(form.files.get('image[]') ?? [])]
          if (!images.length) throw new Refused(400, "'image' is a required property (mock)", 'image')
          return imageAnswer(ctx, kind, { ...form.fields }, images.length)
        }
        return audioAnswer(ctx, kind, form)
      }
      let body: Json
      try {
        const v: unknown = JSON.parse(raw.toString('utf8'))
        if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object')
        body = v as Json
      } catch {
        throw new Refused(400, 'We could not parse the JSON body of your request. (mock)')
      }
      if (deployment && body.model === undefined) body.model = deployment
      ctx.received.push({ path, body })
      if (kind === 'images/generations') return imageAnswer(ctx, kind, body, 0)
      if (kind === 'audio/speech') return speechAnswer(ctx, body)
      return rerankAnswer(ctx, body)
    }
    after(ctx, eff.latencyMs - elapsed(ctx), () => {
      run().catch((e: unknown) => {
        if (e instanceof Refused) return refuse(ctx, e)
        if (!ctx.res.headersSent) sendJson(ctx, 500, errorBody(500, `Mock internal error: ${(e as Error).message}`))
      })
    })
  },
}
