/**
 * What translating a Gemini stream costs per event, against relaying an OpenAI stream untranslated:
 * both sides parse the same SSE bytes; the translated side also runs the Gemini decoder and encodes the hub
 * chunk (what src/translate/stream.ts does per upstream event). The first event's extra cost is the
 * translation's share of time to first byte.
 *
 *   node --import tsx bench/gemini-decode.ts [events=256] [rounds=200]
 */
import { performance } from 'node:perf_hooks'
import { SseParser } from '../src/core/sse.ts'
import { geminiCodec } from '../src/translate/openai-to-gemini.ts'
import { hubFrame } from '../src/translate/stream.ts'

const events = Number(process.argv[2] ?? 256)
const rounds = Number(process.argv[3] ?? 200)
const tc = { upstreamModel: 'gemini-2.5-flash', publicModel: 'gemini', stream: true, requestId: 'bench', created: 1700000000 }

const gemini: string[] = []
const openai: string[] = []
for (let i = 0; i < events; i++) {
  gemini.push(`data: ${JSON.stringify({ candidates: [{ content: { parts: [{ text: ' word' }], role: 'model' }, index: 0 }], usageMetadata: { promptTokenCount: 12, totalTokenCount: 12 }, modelVersion: 'gemini-2.5-flash', responseId: 'abcdefghijk' })}\r\n\r\n`)
  openai.push(`data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { content: ' word' }, logprobs: null, finish_reason: null }] })}\n\n`)
}
const enc = new TextEncoder()
const gBytes = gemini.map((s) => enc.encode(s))
const oBytes = openai.map((s) => enc.encode(s))

function untranslated(): [number, number] {
  const p = new SseParser()
  const t0 = performance.now()
  let first = 0
  let n = 0
  for (let i = 0; i < oBytes.length; i++) {
    for (const f of p.push(oBytes[i]!)) n += f.raw.length
    if (i === 0) first = performance.now() - t0
  }
  if (n === 0) throw new Error('nothing relayed')
  return [first, performance.now() - t0]
}

function translated(): [number, number] {
  const p = new SseParser()
  const d = geminiCodec.decoder(tc)
  const t0 = performance.now()
  let first = 0
  let n = 0
  for (let i = 0; i < gBytes.length; i++) {
    for (const f of p.push(gBytes[i]!)) for (const c of d.push(f)) n += hubFrame(c).raw.length
    if (i === 0) first = performance.now() - t0
  }
  for (const c of d.end()) n += hubFrame(c).raw.length
  if (n === 0) throw new Error('nothing translated')
  return [first, performance.now() - t0]
}

const median = (a: number[]) => a.slice().sort((x, y) => x - y)[Math.floor(a.length / 2)]!
for (let i = 0; i < 50; i++) { untranslated(); translated() } // warm-up
const u: [number, number][] = []
const t: [number, number][] = []
for (let i = 0; i < rounds; i++) { u.push(untranslated()); t.push(translated()) }
const uf = median(u.map((x) => x[0])), tf = median(t.map((x) => x[0]))
const ua = median(u.map((x) => x[1])), ta = median(t.map((x) => x[1]))
console.log(`events per stream: ${events}, rounds: ${rounds}`)
console.log(`first event   untranslated ${(uf * 1000).toFixed(1)} µs   translated ${(tf * 1000).toFixed(1)} µs   delta ${((tf - uf) * 1000).toFixed(1)} µs`)
console.log(`whole stream  untranslated ${(ua * 1000).toFixed(0)} µs   translated ${(ta * 1000).toFixed(0)} µs   per event +${(((ta - ua) / events) * 1000).toFixed(2)} µs`)
