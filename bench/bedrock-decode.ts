// Cost of the Bedrock stream path per event: binary event-stream framing + CRC checks (@smithy/eventstream-codec)
// + ConverseStream → hub chunk + hub frame serialisation, against the SSE parse an untranslated OpenAI stream costs.
//   node --import tsx bench/bedrock-decode.ts
import { performance } from 'node:perf_hooks'
import { SseParser } from '../src/core/sse.ts'
import { eventStreamCodec, encodeEvent, EventStreamParser } from '../src/translate/helpers/aws-eventstream.ts'
import { bedrockDecoder } from '../src/translate/openai-to-bedrock-stream.ts'
import { hubFrame } from '../src/translate/stream.ts'

const TOKENS = 1000
const codec = eventStreamCodec()
const parts: Uint8Array[] = [encodeEvent(codec, 'messageStart', { role: 'assistant' })]
for (let i = 0; i < TOKENS; i++) parts.push(encodeEvent(codec, 'contentBlockDelta', { contentBlockIndex: 0, delta: { text: ' word' }, p: 'abcdefghij' }))
parts.push(encodeEvent(codec, 'contentBlockStop', { contentBlockIndex: 0 }), encodeEvent(codec, 'messageStop', { stopReason: 'end_turn' }), encodeEvent(codec, 'metadata', { usage: { inputTokens: 10, outputTokens: TOKENS } }))
const bedrockBytes = Buffer.concat(parts)
let sse = ''
for (let i = 0; i < TOKENS; i++) sse += `data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":" word"},"finish_reason":null}]}\n\n`
const sseBytes = Buffer.from(sse)
const CHUNK = 1400 // about one TCP segment per read

function bedrockRun(): number {
  const p = new EventStreamParser()
  const d = bedrockDecoder({ upstreamModel: 'm', publicModel: 'm', stream: true, requestId: 'r', created: 1, backendId: 'b' })
  let n = 0
  for (let i = 0; i < bedrockBytes.length; i += CHUNK) for (const e of p.push(bedrockBytes.subarray(i, i + CHUNK))) for (const c of d.push(e)) n += hubFrame(c).raw.length
  for (const c of d.end()) n += hubFrame(c).raw.length
  return n
}
function sseRun(): number {
  const p = new SseParser()
  let n = 0
  for (let i = 0; i < sseBytes.length; i += CHUNK) for (const f of p.push(sseBytes.subarray(i, i + CHUNK))) n += f.raw.length
  return n
}
function measure(name: string, fn: () => number): void {
  for (let i = 0; i < 50; i++) fn()
  const rounds = 200
  const t0 = performance.now()
  for (let i = 0; i < rounds; i++) fn()
  const us = ((performance.now() - t0) * 1000) / (rounds * TOKENS)
  console.log(`${name}: ${us.toFixed(2)} µs per token event`)
}
measure('bedrock event stream → hub frames', bedrockRun)
measure('openai SSE parse (untranslated)', sseRun)
