import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { SseParser } from '../src/core/sse.ts'
import { HubChunkJson } from '../src/translate/hub-chunk-json.ts'
import { hubFrame } from '../src/translate/stream.ts'
import { anthropicCodec } from '../src/translate/openai-to-anthropic.ts'
import { geminiCodec } from '../src/translate/openai-to-gemini.ts'
import type { TranslateContext } from '../src/translate/types.ts'

// A translated stream's frames are written by HubChunkJson, which must give exactly JSON.stringify's text
// (the oracle here is JSON.stringify itself, never the class): over the chunks the decoders make of real
// provider streams (the SDK repositories' fixtures, see test/fixtures/providers/*/SOURCE.md) and over the
// shapes its fast paths must refuse.
const tc: TranslateContext = { upstreamModel: 'up', publicModel: 'public "model" ✓', stream: true, requestId: 'req-1', created: 1700000000 }
const fixture = (dir: string, name: string) => readFileSync(new URL(`./fixtures/providers/${dir}/${name}`, import.meta.url), 'utf8')

function decoded(codec: typeof anthropicCodec, sse: string): Record<string, unknown>[] {
  const d = codec.decoder(tc)
  const out: Record<string, unknown>[] = []
  for (const f of new SseParser().push(sse)) out.push(...(d.push(f) as Record<string, unknown>[]))
  out.push(...(d.end() as Record<string, unknown>[]))
  return out
}

test('the chunks of real Anthropic and Gemini streams serialise exactly as JSON.stringify does', () => {
  const streams = [
    decoded(anthropicCodec, fixture('anthropic', 'basic_response.sse')),
    decoded(anthropicCodec, fixture('anthropic', 'tool_use_response.sse')),
    decoded(geminiCodec as unknown as typeof anthropicCodec, fixture('gemini', 'vertex_stream_empty_stop.sse')),
  ]
  let contentDeltas = 0
  for (const chunks of streams) {
    assert.ok(chunks.length >= 3)
    const text = new HubChunkJson()
    for (const c of chunks) {
      assert.equal(text.text(c), JSON.stringify(c))
      const f = hubFrame(c, text)
      assert.equal(f.raw, `data: ${JSON.stringify(c)}\n\n`)
      assert.equal(f.json, c)
      const delta = (c.choices as { delta?: Record<string, unknown> }[])[0]?.delta
      if (delta && Object.keys(delta).join() === 'content') contentDeltas++
    }
  }
  // The fixtures do exercise the template: basic_response's three text deltas at least.
  assert.ok(contentDeltas >= 3, `only ${contentDeltas} content deltas`)
})

test('every shape the fast paths must not take still serialises exactly as JSON.stringify does', () => {
  const env = (rest: Record<string, unknown>) => ({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', ...rest })
  const content = (s: unknown) => env({ choices: [{ index: 0, delta: { content: s }, logprobs: null, finish_reason: null }] })
  const cases: Record<string, unknown>[] = [
    content('plain'), content(''), content('quotes " and \\ and \n newline \u2028 \u0000'), content('lone \ud800 surrogate'), content('emoji 😀'),
    content(undefined), content(null), content(42),
    env({ choices: [{ index: 0, delta: { content: 'a', role: 'assistant' }, logprobs: null, finish_reason: null }] }),
    env({ choices: [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }] }),
    env({ choices: [{ index: 1, delta: { content: 'a' }, logprobs: null, finish_reason: null }] }),
    env({ choices: [{ index: 0, delta: { content: 'a' }, logprobs: null, finish_reason: 'stop' }] }),
    env({ choices: [{ delta: { content: 'a' }, index: 0, logprobs: null, finish_reason: null }] }),
    env({ choices: [{ index: 0, delta: { content: 'a' }, logprobs: null, finish_reason: null, extra: undefined }] }),
    env({ choices: [{ index: 0, delta: { content: 'a' }, logprobs: null }] }),
    env({ choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'length' }] }),
    env({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{"a":' } }] }, logprobs: null, finish_reason: null }] }),
    env({ choices: [] }), env({ choices: [], usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 } }),
    env({ choices: [], usage: undefined }), env({ choices: [], usage: null }),
    env({ choices: [undefined] }), env({ choices: [null] }), env({ choices: ['x'] }), env({ choices: [content('a'), content('b')] }),
    env({ choices: 'not an array' }),
    { object: 'chat.completion.chunk', id: 'x', created: 1, model: 'm', choices: [] },
    { ...env({ choices: [] }), system_fingerprint: 'fp' },
    { id: 'x', object: 'chat.completion.chunk', created: 1, model: 'm' },
    { ...env({ choices: [] }), created: 1.5 }, { ...env({ choices: [] }), created: Number.NaN }, { ...env({ choices: [] }), created: -0 },
    { ...env({ choices: [] }), id: undefined }, { ...env({ choices: [] }), model: 7 },
    Object.assign(Object.create({ inherited: 1 }), env({ choices: [] })),
  ]
  // One serializer for all of them, in order: its envelope cache must follow every change of envelope.
  const text = new HubChunkJson()
  for (const c of cases) assert.equal(text.text(c), JSON.stringify(c), JSON.stringify(c))
  for (const c of cases.reverse()) assert.equal(text.text(c), JSON.stringify(c), JSON.stringify(c))
})
