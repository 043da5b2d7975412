// Translation cost in isolation (no network): CPU per streamed answer of 12 text deltas, per path the kernel takes.
//   untranslated  OpenAI frames → JSON.parse per frame (what the relay does for accounting) → raw bytes out
//   openai←anthropic  Anthropic events → AnthropicDecoder → hub frame text, the object kept on the frame (OpenAI client,
//                     Anthropic backend: the relay reads frame.json, it never parses the text again)
//   anthropic←openai  OpenAI frames → JSON.parse → AnthropicStreamEncoder (Anthropic client, OpenAI backend)
//   passthrough   Anthropic events → decoder for accounting → hub frame → the backend's bytes out (same schema)
// Run: node --import tsx bench/translation.ts [iterations]
import { performance } from 'node:perf_hooks'
import { SseParser } from '../src/core/sse.ts'
import { anthropicCodec } from '../src/translate/openai-to-anthropic.ts'
import { AnthropicStreamEncoder } from '../src/translate/anthropic-to-openai-stream.ts'
import { hubFrame } from '../src/translate/stream.ts'
import { HubChunkJson } from '../src/translate/hub-chunk-json.ts'

const N = Number(process.argv[2] ?? 20000)
const PIECES = ['Hello', '!', ' This', ' is', ' a', ' streamed', ' answer', ' from', ' the', ' bench', ' upstream', '.']
const oa = (delta: object, finish: string | null = null) => `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }] })}\n\n`
const OPENAI = oa({ role: 'assistant', content: '' }) + PIECES.map((p) => oa({ content: p })).join('') + oa({}, 'stop') +
  `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], usage: { prompt_tokens: 24, completion_tokens: 12, total_tokens: 36 } })}\n\ndata: [DONE]\n\n`
const aev = (type: string, o: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...o })}\n\n`
const ANTHROPIC = aev('message_start', { message: { id: 'msg', type: 'message', role: 'assistant', model: 'm', content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 24, output_tokens: 1 } } }) +
  aev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) + aev('ping', {}) +
  PIECES.map((p) => aev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: p } })).join('') +
  aev('content_block_stop', { index: 0 }) + aev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 12 } }) + aev('message_stop', {})
const tc = { upstreamModel: 'm', publicModel: 'm', stream: true, requestId: 'r', created: 1 }
const oaFrames = new SseParser().push(OPENAI)
const anFrames = new SseParser().push(ANTHROPIC)
let sink = 0

const paths: Record<string, () => void> = {
  untranslated() {
    for (const f of oaFrames) { if (f.data.charCodeAt(0) === 123) sink += (JSON.parse(f.data) as object) ? f.raw.length : 0 }
  },
  'openai←anthropic'() {
    const d = anthropicCodec.decoder(tc)
    const text = new HubChunkJson()
    for (const f of anFrames) for (const c of d.push(f)) sink += hubFrame(c, text).raw.length
    for (const c of d.end()) sink += hubFrame(c, text).raw.length
  },
  'anthropic←openai'() {
    const e = new AnthropicStreamEncoder('m', 'r')
    for (const f of oaFrames) if (f.data.charCodeAt(0) === 123) sink += e.chunk(JSON.parse(f.data)).length
    sink += e.end().length
  },
  passthrough() {
    const d = anthropicCodec.decoder(tc)
    const text = new HubChunkJson()
    for (const f of anFrames) { for (const c of d.push(f)) sink += hubFrame(c, text).data.length; sink += f.raw.length }
  },
}

for (const [name, run] of Object.entries(paths)) {
  for (let i = 0; i < 2000; i++) run() // warm-up for the JIT
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < N; i++) run()
  const wall = (performance.now() - t0) * 1000 / N
  const cpu = process.cpuUsage(cpu0)
  console.log(`${name.padEnd(18)} ${wall.toFixed(1).padStart(6)} µs wall/stream  ${((cpu.user + cpu.system) / N).toFixed(1).padStart(6)} µs CPU/stream`)
}
if (sink === 42) console.log('')
