import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import Anthropic from '@anthropic-ai/sdk'
import { SseParser } from '../../src/core/sse.ts'
import { GatewayError } from '../../src/core/errors.ts'
import { anthropicCodec, JSON_TOOL } from '../../src/translate/openai-to-anthropic.ts'
import { anthropicRequestToHub, hubToAnthropicMessage } from '../../src/translate/anthropic-to-openai.ts'
import { AnthropicStreamEncoder } from '../../src/translate/anthropic-to-openai-stream.ts'
import type { TranslateContext } from '../../src/translate/types.ts'

const fixture = (name: string) => readFileSync(new URL(`../fixtures/providers/anthropic/${name}`, import.meta.url), 'utf8')
const tc: TranslateContext = { upstreamModel: 'claude-up', publicModel: 'claude-public', stream: true, requestId: 'req1', created: 1700000000 }

function decode(sse: string): Record<string, any>[] {
  const d = anthropicCodec.decoder(tc)
  const out: Record<string, any>[] = []
  for (const f of new SseParser().push(sse)) out.push(...d.push(f))
  out.push(...d.end())
  return out
}

/** The Anthropic SDK's own accumulation of a stream given as text (its MessageStream over a canned fetch). */
function sdkFinal(sse: string): Promise<Anthropic.Message> {
  const fetch = async () => new Response(sse, { status: 200, headers: { 'content-type': 'text/event-stream' } })
  const client = new Anthropic({ apiKey: 'x', baseURL: 'http://127.0.0.1:9', maxRetries: 0, fetch })
  return client.messages.stream({ model: 'm', max_tokens: 10, messages: [{ role: 'user', content: 'x' }] }).finalMessage()
}

describe('Anthropic streams (the SDK repository fixtures) → hub chunks', () => {
  it('basic_response: role, three text deltas, stop, usage 11/6', () => {
    const chunks = decode(fixture('basic_response.sse'))
    assert.equal(chunks[0]!.choices[0].delta.role, 'assistant')
    assert.deepEqual(chunks.flatMap((c) => (c.choices[0]?.delta.content ? [c.choices[0].delta.content] : [])), ['Hello', ' there', '!'])
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)!.choices[0].finish_reason, 'stop')
    const usage = chunks.at(-1)!
    assert.deepEqual(usage.choices, [])
    assert.deepEqual([usage.usage.prompt_tokens, usage.usage.completion_tokens, usage.usage.total_tokens], [11, 6, 17])
    assert.equal(usage.model, 'claude-public')
  })

  it('tool_use_response: text, then one tool call with id, name and the arguments in pieces', () => {
    const chunks = decode(fixture('tool_use_response.sse'))
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
    assert.deepEqual([calls[0].index, calls[0].id, calls[0].function.name], [0, 'toolu_01NRLabsLyVHZPKxbKvkfSMn', 'get_weather'])
    assert.equal(calls.map((c: any) => c.function.arguments).join(''), '{"location": "Paris"}')
    assert.equal(calls.length, 5) // the opening fragment and four non-empty pieces
    assert.equal(chunks.find((c) => c.choices[0]?.finish_reason)!.choices[0].finish_reason, 'tool_calls')
    assert.deepEqual([chunks.at(-1)!.usage.prompt_tokens, chunks.at(-1)!.usage.completion_tokens], [377, 65])
  })

  it('hub → Anthropic again: the SDK accumulates the same message from the re-encoded stream', async () => {
    for (const name of ['basic_response.sse', 'tool_use_response.sse']) {
      const original = await sdkFinal(fixture(name))
      const enc = new AnthropicStreamEncoder('claude-public', 'req1')
      const again = decode(fixture(name)).map((c) => enc.chunk(c)).join('') + enc.end()
      const final = await sdkFinal(again)
      assert.deepEqual(final.content, original.content, name)
      assert.equal(final.stop_reason, original.stop_reason)
      assert.equal(final.usage.output_tokens, original.usage.output_tokens)
      assert.equal(final.usage.input_tokens, original.usage.input_tokens)
    }
  })

  it('thinking: reasoning deltas, then the block with its signature; a malformed event throws', () => {
    const ev = (o: object) => `event: x\ndata: ${JSON.stringify(o)}\n\n`
    const sse = [
      ev({ type: 'message_start', message: { usage: { input_tokens: 4, cache_read_input_tokens: 10, cache_creation_input_tokens: 6, output_tokens: 1 } } }),
      ev({ type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } }),
      ev({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'Let me think' } }),
      ev({ type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'EqQBsig==' } }),
      ev({ type: 'content_block_stop', index: 0 }),
      ev({ type: 'message_delta', delta: { stop_reason: 'end_turn' }, usage: { output_tokens: 9 } }),
      ev({ type: 'message_stop' }),
    ].join('')
    const chunks = decode(sse)
    assert.equal(chunks[1]!.choices[0].delta.reasoning_content, 'Let me think')
    assert.deepEqual(chunks[2]!.choices[0].delta.thinking_blocks, [{ type: 'thinking', thinking: 'Let me think', signature: 'EqQBsig==' }])
    // prompt = input + cache reads + cache writes
    assert.deepEqual(chunks.at(-1)!.usage, { prompt_tokens: 20, completion_tokens: 9, total_tokens: 29, prompt_tokens_details: { cached_tokens: 10, cache_write_tokens: 6 }, completion_tokens_details: { reasoning_tokens: 0 } })
    assert.throws(() => decode('event: content_block_delta\ndata: {"type":\n\n'), /malformed/)
  })

  it('text deltas in any spelling give the same text; the compact one (read without a full parse) is held to JSON', () => {
    const start = 'event: content_block_start\ndata: {"type":"content_block_start","index":3,"content_block":{"type":"text","text":""}}\n\n'
    const delta = (data: string) => `event: content_block_delta\ndata: ${data}\n\n`
    const texts = (sse: string) => decode(start + sse).flatMap((c) => (c.choices[0]?.delta.content !== undefined ? [c.choices[0].delta.content] : []))
    // Compact (as Anthropic sends it), with escapes and characters that look like the end of the event.
    assert.deepEqual(texts(delta('{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"a\\"}}b\\n\\u00e9"}}')), ['a"}}b\né'])
    // The same event spaced, reordered: the full parse, same text.
    assert.deepEqual(texts(delta('{"type": "content_block_delta", "index": 3, "delta": {"type": "text_delta", "text": "a\\"}}b"}}')), ['a"}}b'])
    assert.deepEqual(texts(delta('{"index":3,"type":"content_block_delta","delta":{"text":"x","type":"text_delta"}}')), ['x'])
    // Not one string after the head: parsed whole, so it is malformed exactly when JSON says so.
    assert.deepEqual(texts(delta('{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"a","extra":"c"}}')), ['a'])
    assert.throws(() => decode(start + delta('{"type":"content_block_delta","index":03,"delta":{"type":"text_delta","text":"a"}}')), /malformed/)
    assert.throws(() => decode(start + delta('{"type":"content_block_delta","index":3,"delta":{"type":"text_delta","text":"a}}')), /malformed/)
    // A delta for a block never started is refused on either path.
    assert.throws(() => decode(start + delta('{"type":"content_block_delta","index":4,"delta":{"type":"text_delta","text":"a"}}')), /never started/)
    assert.throws(() => decode(start + delta('{"type": "content_block_delta", "index": 4, "delta": {"type": "text_delta", "text": "a"}}')), /never started/)
    // Keep-alives are skipped by name (Anthropic's SDK does the same), whatever they carry; an unnamed event is parsed.
    assert.deepEqual(decode('event: ping\ndata: {not json\n\n'), [])
    assert.throws(() => decode('data: {not json\n\n'), /malformed/)
  })
})

describe('hub → Anthropic requests', () => {
  it('system hoisted, tool results merged into one user turn, images, tool choice, stops, thinking blocks kept', () => {
    const { body, omitted } = anthropicCodec.request({
      model: 'claude-public', max_tokens: 64, seed: 1, stop: 'END', parallel_tool_calls: false, tool_choice: 'required',
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }],
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'look', cache_control: { type: 'ephemeral' } }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'image_url', image_url: { url: 'https://x/y.png' } }] },
        { role: 'assistant', content: null, thinking_blocks: [{ type: 'thinking', thinking: 'hm', signature: 'SIG' }], tool_calls: [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }, { id: 't2', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 't1', content: 'one' },
        { role: 'tool', tool_call_id: 't2', content: 'two' },
        { role: 'user', content: 'and?' },
      ],
    }, tc)
    assert.deepEqual(omitted, ['seed'])
    assert.equal(body.model, 'claude-up')
    assert.deepEqual(body.system, [{ type: 'text', text: 'Be brief.' }])
    assert.deepEqual(body.stop_sequences, ['END'])
    assert.deepEqual(body.tool_choice, { type: 'any', disable_parallel_tool_use: true })
    assert.deepEqual(body.tools, [{ name: 'f', input_schema: { type: 'object' } }])
    const m = body.messages as any[]
    assert.deepEqual(m.map((x) => x.role), ['user', 'assistant', 'user'])
    assert.deepEqual(m[0].content, [
      { type: 'text', text: 'look', cache_control: { type: 'ephemeral' } },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAAA' } },
      { type: 'image', source: { type: 'url', url: 'https://x/y.png' } },
    ])
    assert.deepEqual(m[1].content, [{ type: 'thinking', thinking: 'hm', signature: 'SIG' }, { type: 'tool_use', id: 't1', name: 'f', input: { a: 1 } }, { type: 'tool_use', id: 't2', name: 'f', input: {} }])
    assert.deepEqual(m[2].content, [{ type: 'tool_result', tool_use_id: 't1', content: 'one' }, { type: 'tool_result', tool_use_id: 't2', content: 'two' }, { type: 'text', text: 'and?' }])
  })

  it('JSON mode becomes a forced tool; what Anthropic cannot keep is a 400 naming it', () => {
    const json = anthropicCodec.request({ model: 'x', messages: [{ role: 'user', content: 'q' }], response_format: { type: 'json_schema', json_schema: { name: 'w', schema: { type: 'object', properties: { a: { type: 'string' } } } } } }, tc).body
    assert.deepEqual(json.tool_choice, { type: 'tool', name: JSON_TOOL })
    assert.equal((json.tools as any[])[0].name, JSON_TOOL)
    assert.equal(json.max_tokens, 4096) // Anthropic requires one
    const hub = anthropicCodec.response({ content: [{ type: 'tool_use', id: 't', name: JSON_TOOL, input: { a: 'b' } }], stop_reason: 'tool_use', usage: { input_tokens: 3, output_tokens: 2 } }, tc)
    assert.deepEqual([(hub.choices as any)[0].message.content, (hub.choices as any)[0].finish_reason], ['{"a":"b"}', 'stop'])
    for (const [field, value, param] of [['n', 2, 'n'], ['logprobs', true, 'logprobs'], ['frequency_penalty', 0.5, 'frequency_penalty'], ['messages', [{ role: 'user', content: [{ type: 'input_audio' }] }], 'messages[0].content[0].type']] as const) {
      assert.throws(() => anthropicCodec.request({ model: 'x', messages: [{ role: 'user', content: 'q' }], [field]: value }, tc), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.param === param)
    }
    const ok = anthropicCodec.request({ model: 'x', messages: [{ role: 'user', content: 'q' }], n: 1 }, tc)
    assert.equal(ok.body.max_tokens, 4096) // n: 1 is fine
  })

  it('errors: overloaded is retriable, a 400 is not', () => {
    assert.equal(anthropicCodec.error(529, { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }).retriable, true)
    const bad = anthropicCodec.error(400, JSON.parse(readFileSync(new URL('../fixtures/providers/anthropic/rate_limit_error.json', import.meta.url), 'utf8')))
    assert.deepEqual([bad.type, bad.retriable], ['rate_limit_error', false])
  })
})

describe('Anthropic → hub requests and hub → Anthropic answers (the front door)', () => {
  it('tool results split out as tool messages, thinking blocks kept, choices mapped', () => {
    const { hub, omitted } = anthropicRequestToHub({
      model: 'm', max_tokens: 10, system: [{ type: 'text', text: 'S', cache_control: { type: 'ephemeral' } }], stop_sequences: ['X'], top_k: 5,
      metadata: { user_id: 'u1' }, tool_choice: { type: 'tool', name: 'f', disable_parallel_tool_use: true }, service_tier: 'auto',
      tools: [{ name: 'f', input_schema: { type: 'object' } }, { type: 'web_search_20250305', name: 'web_search' }],
      messages: [
        { role: 'user', content: 'q' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 't', signature: 'S1' }, { type: 'text', text: 'a' }, { type: 'tool_use', id: 'c', name: 'f', input: { x: 1 } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'c', content: 'r', is_error: true }, { type: 'text', text: 'next' }] },
      ],
    })
    assert.deepEqual(omitted.sort(), ['service_tier', 'tools[1]'])
    assert.deepEqual([hub.stop, hub.top_k, hub.user, hub.parallel_tool_calls], [['X'], 5, 'u1', false])
    assert.deepEqual(hub.tool_choice, { type: 'function', function: { name: 'f' } })
    const m = hub.messages as any[]
    assert.deepEqual(m.map((x) => x.role), ['system', 'user', 'assistant', 'tool', 'user'])
    assert.deepEqual(m[0].content, [{ type: 'text', text: 'S', cache_control: { type: 'ephemeral' } }])
    assert.deepEqual(m[2], { role: 'assistant', content: 'a', reasoning_content: 't', thinking_blocks: [{ type: 'thinking', thinking: 't', signature: 'S1' }], tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] })
    assert.deepEqual(m[3], { role: 'tool', tool_call_id: 'c', content: 'r', is_error: true })
  })

  it('a hub answer as a message: blocks in order, stop reason, usage split back into input and cache', () => {
    const msg = hubToAnthropicMessage({
      model: 'claude-public',
      choices: [{ message: { content: 'hi', thinking_blocks: [{ type: 'thinking', thinking: 't', signature: 'S' }], tool_calls: [{ id: 'c', function: { name: 'f', arguments: '{"a":2}' } }] }, finish_reason: 'tool_calls' }],
      usage: { prompt_tokens: 20, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 10, cache_write_tokens: 6 } },
    }, 'req9')
    assert.deepEqual(msg.content, [{ type: 'thinking', thinking: 't', signature: 'S' }, { type: 'text', text: 'hi' }, { type: 'tool_use', id: 'c', name: 'f', input: { a: 2 } }])
    assert.equal(msg.stop_reason, 'tool_use')
    assert.deepEqual(msg.usage, { input_tokens: 4, output_tokens: 3, cache_creation_input_tokens: 6, cache_read_input_tokens: 10 })
  })
})
