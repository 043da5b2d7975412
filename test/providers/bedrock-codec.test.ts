// Hub ⇄ Bedrock Converse, and the event-stream parser, on recorded Bedrock traffic and AWS's framing test
// vectors (test/fixtures/providers/bedrock/SOURCES.md). Expected values come from the fixtures themselves.
import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { EventStreamCodec } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'
import { EventStreamParser, MALFORMED_EVENT } from '../../src/translate/helpers/aws-eventstream.ts'
import { bedrockCodec } from '../../src/translate/openai-to-bedrock.ts'
import type { TranslateContext, UpstreamEvent } from '../../src/translate/types.ts'
import { GatewayError } from '../../src/core/errors.ts'
import { UpstreamFailure } from '../../src/upstream/failure.ts'

const FIX = join(import.meta.dirname, '..', 'fixtures', 'providers', 'bedrock')
const tc: TranslateContext = { upstreamModel: 'anthropic.claude-3-7-sonnet-20250219-v1:0', publicModel: 'claude', stream: true, requestId: 'r1', created: 1700000000, backendId: 'bed' }
const codec = new EventStreamCodec(toUtf8, fromUtf8)

type Json = Record<string, any>

/** A recorded `.jsonl` (one `{ eventType: payload }` per line) framed as Bedrock sends it. */
function frame(file: string): { lines: [string, Json][]; bytes: Uint8Array } {
  const lines = readFileSync(join(FIX, file), 'utf8').split('\n').filter(Boolean).map((l) => Object.entries(JSON.parse(l) as Json)[0] as [string, Json])
  const parts = lines.map(([type, payload]) => codec.encode({
    headers: { ':event-type': { type: 'string', value: type }, ':content-type': { type: 'string', value: 'application/json' }, ':message-type': { type: 'string', value: 'event' } },
    body: fromUtf8(JSON.stringify(payload)),
  }))
  const bytes = new Uint8Array(parts.reduce((n, p) => n + p.length, 0))
  let off = 0
  for (const p of parts) { bytes.set(p, off); off += p.length }
  return { lines, bytes }
}

/** Feeds bytes in slices of `step` (splitting messages anywhere), returns the events. */
function parse(bytes: Uint8Array, step: number): UpstreamEvent[] {
  const p = new EventStreamParser()
  const out: UpstreamEvent[] = []
  for (let i = 0; i < bytes.length; i += step) out.push(...p.push(bytes.slice(i, i + step)))
  out.push(...p.end())
  return out
}

function decode(events: UpstreamEvent[]): Json[] {
  const d = bedrockCodec.decoder(tc)
  const chunks: Json[] = []
  for (const e of events) chunks.push(...d.push(e))
  chunks.push(...d.end())
  return chunks
}

const deltas = (chunks: Json[]) => chunks.flatMap((c) => (c.choices.length ? [c.choices[0].delta] : []))

describe('event-stream parser', () => {
  const vectors = JSON.parse(readFileSync(join(FIX, 'eventstream-vectors.json'), 'utf8')) as Record<string, { expectation: string; encoded: number[]; body?: number[] }>
  for (const [name, v] of Object.entries(vectors)) {
    it(`AWS test vector ${name}: ${v.expectation}`, () => {
      for (const step of [1, 7, 1000]) {
        const events = parse(Uint8Array.from(v.encoded), step)
        assert.equal(events.length, 1, name)
        if (v.expectation === 'success') {
          assert.notEqual(events[0]!.event, MALFORMED_EVENT)
          assert.equal(events[0]!.data, Buffer.from(v.body!).toString('utf8'))
        } else {
          assert.equal(events[0]!.event, MALFORMED_EVENT)
        }
      }
    })
  }

  it('a recorded exception message becomes an exception event with its payload', () => {
    const bytes = Buffer.from(readFileSync(join(FIX, 'model-stream-error-exception.eventstream.base64.txt'), 'utf8').trim(), 'base64')
    const [e] = parse(bytes, 5)
    assert.equal(e!.event, 'exception:modelStreamErrorException')
    assert.equal(JSON.parse(e!.data).message, 'Model Stream Error')
    assert.throws(() => decode([e!]), (err: unknown) => err instanceof UpstreamFailure && err.retriable && err.backendId === 'bed')
  })

  it('a stream cut inside a message, and a length beyond the spec, are malformed; nothing is parsed after', () => {
    const { bytes } = frame('converse-stream-text.jsonl')
    const cut = parse(bytes.slice(0, bytes.length - 3), 64)
    assert.equal(cut.at(-1)!.event, MALFORMED_EVENT)
    assert.equal(cut.filter((e) => e.event === MALFORMED_EVENT).length, 1)
    const huge = new Uint8Array(16)
    new DataView(huge.buffer).setUint32(0, 0x7fffffff)
    const p = new EventStreamParser()
    assert.equal(p.push(huge)[0]!.event, MALFORMED_EVENT)
    assert.deepEqual(p.push(bytes), [])
  })
})

describe('ConverseStream → hub chunks (recorded streams)', () => {
  it('text: one content delta per text event, finish stop, usage after the finish', () => {
    const { lines, bytes } = frame('converse-stream-text.jsonl')
    for (const step of [3, 100, 100_000]) {
      const chunks = decode(parse(bytes, step))
      const ds = deltas(chunks)
      assert.deepEqual(ds[0], { role: 'assistant', content: '' })
      const texts = lines.filter(([t, p]) => t === 'contentBlockDelta' && p.delta.text).map(([, p]) => p.delta.text)
      assert.deepEqual(ds.filter((d) => d.content).map((d) => d.content), texts)
      const finish = chunks.filter((c) => c.choices[0]?.finish_reason)
      assert.equal(finish.length, 1)
      assert.equal(finish[0]!.choices[0].finish_reason, 'stop')
      const last = chunks.at(-1)!
      assert.deepEqual(last.choices, [])
      assert.equal(last.usage.prompt_tokens, 22)
      assert.equal(last.usage.completion_tokens, 55)
      assert.equal(last.usage.total_tokens, 77)
      assert.equal(chunks.at(-2)!.choices[0].finish_reason, 'stop')
      assert.ok(chunks.every((c) => c.id === 'chatcmpl-r1' && c.model === 'claude' && c.object === 'chat.completion.chunk'))
    }
  })

  it('tool call: id and name first, argument pieces after, finish tool_calls, usage even though metadata came first', () => {
    const chunks = decode(parse(frame('converse-stream-tool-call.jsonl').bytes, 11))
    const calls = deltas(chunks).flatMap((d) => d.tool_calls ?? [])
    assert.deepEqual(calls[0], { index: 0, id: 'tool-use-id', type: 'function', function: { name: 'test-tool', arguments: '' } })
    assert.deepEqual(calls.slice(1).map((c) => c.function.arguments), ['{"value":', '"Sparkle Day"}'])
    assert.ok(calls.slice(1).every((c) => c.index === 0 && c.id === undefined))
    assert.equal(chunks.at(-2)!.choices[0].finish_reason, 'tool_calls')
    assert.equal(chunks.at(-1)!.usage.prompt_tokens, 125)
    assert.equal(chunks.at(-1)!.usage.completion_tokens, 45)
  })

  it('reasoning: reasoning_content deltas, then the thinking block with its signature, then text', () => {
    const { lines, bytes } = frame('converse-stream-reasoning.jsonl')
    const ds = deltas(decode(parse(bytes, 50)))
    const reasoning = lines.filter(([t, p]) => t === 'contentBlockDelta' && typeof p.delta.reasoningContent?.text === 'string').map(([, p]) => p.delta.reasoningContent.text).join('')
    assert.equal(ds.map((d) => d.reasoning_content ?? '').join(''), reasoning)
    const signature = lines.find(([, p]) => p.delta?.reasoningContent?.signature)![1].delta.reasoningContent.signature
    const blockAt = ds.findIndex((d) => d.thinking_blocks)
    assert.deepEqual(ds[blockAt]!.thinking_blocks, [{ type: 'thinking', thinking: reasoning, signature }])
    const firstText = ds.findIndex((d) => d.content)
    assert.ok(blockAt < firstText, 'the block closes before the answer text starts')
  })

  it('a stream that ends before messageStop is a failure, not a silent short answer', () => {
    const { bytes } = frame('converse-stream-text.jsonl')
    const events = parse(bytes, 1000).filter((e) => e.event !== 'messageStop' && e.event !== 'metadata')
    assert.throws(() => decode(events), (e: unknown) => e instanceof UpstreamFailure && e.status === 502)
  })

  it('in-stream exceptions map to the gateway\'s failures: throttling 429, validation 400 (not retried)', () => {
    const ev = (name: string): UpstreamEvent => ({ event: `exception:${name}`, data: '{"message":"bad input here"}', raw: '' })
    assert.throws(() => decode([ev('throttlingException')]), (e: unknown) => e instanceof UpstreamFailure && e.status === 429 && e.retriable)
    assert.throws(() => decode([ev('serviceUnavailableException')]), (e: unknown) => e instanceof UpstreamFailure && e.upstreamStatus === 503 && e.retriable)
    assert.throws(() => decode([ev('validationException')]), (e: unknown) => e instanceof UpstreamFailure && e.status === 400 && !e.retriable && e.message === 'bad input here')
  })
})

describe('Converse answers and errors', () => {
  it('a recorded answer → chat.completion with usage', () => {
    const body = JSON.parse(readFileSync(join(FIX, 'converse-text.json'), 'utf8')) as Json
    const hub = bedrockCodec.response(body, tc) as Json
    assert.equal(hub.choices[0].message.content, body.output.message.content[0].text)
    assert.equal(hub.choices[0].finish_reason, 'stop')
    assert.deepEqual([hub.usage.prompt_tokens, hub.usage.completion_tokens, hub.usage.total_tokens], [22, 57, 79])
  })

  it('tool use, reasoning and cache usage: prompt_tokens counts cache reads and writes, as the hub defines', () => {
    const hub = bedrockCodec.response({
      output: { message: { role: 'assistant', content: [
        { reasoningContent: { reasoningText: { text: 'think', signature: 'sig' } } },
        { reasoningContent: { redactedContent: 'cmVkYWN0ZWQ=' } },
        { toolUse: { toolUseId: 't1', name: 'f', input: { a: 1 } } },
      ] } },
      stopReason: 'tool_use',
      usage: { inputTokens: 10, outputTokens: 5, cacheReadInputTokens: 100, cacheWriteInputTokens: 20, totalTokens: 135 },
    }, tc) as Json
    const m = hub.choices[0].message
    assert.equal(m.content, null)
    assert.deepEqual(m.tool_calls, [{ id: 't1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }])
    assert.equal(m.reasoning_content, 'think')
    assert.deepEqual(m.thinking_blocks, [{ type: 'thinking', thinking: 'think', signature: 'sig' }, { type: 'redacted_thinking', data: 'cmVkYWN0ZWQ=' }])
    assert.equal(hub.choices[0].finish_reason, 'tool_calls')
    assert.equal(hub.usage.prompt_tokens, 130)
    assert.equal(hub.usage.prompt_tokens_details.cached_tokens, 100)
    assert.equal(hub.usage.prompt_tokens_details.cache_write_tokens, 20)
    assert.equal(hub.usage.total_tokens, 135)
  })

  it('stop reasons: max_tokens → length, guardrail_intervened and content_filtered → content_filter, stop_sequence → stop', () => {
    const fr = (stopReason: string) => (bedrockCodec.response({ output: { message: { content: [{ text: 'x' }] } }, stopReason }, tc) as Json).choices[0].finish_reason
    assert.equal(fr('max_tokens'), 'length')
    assert.equal(fr('guardrail_intervened'), 'content_filter')
    assert.equal(fr('content_filtered'), 'content_filter')
    assert.equal(fr('stop_sequence'), 'stop')
    assert.equal(fr('end_turn'), 'stop')
  })

  it('errors: the type from x-amzn-errortype or __type; throttling, unavailability and model errors are retriable, validation is not', () => {
    const e1 = bedrockCodec.error(429, { message: 'Too many requests' }, { 'x-amzn-errortype': 'ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/' })
    assert.deepEqual([e1.code, e1.type, e1.retriable, e1.message], ['ThrottlingException', 'rate_limit_error', true, 'Too many requests'])
    const e2 = bedrockCodec.error(400, { __type: 'com.amazon.coral.validate#ValidationException', message: 'bad' })
    assert.deepEqual([e2.code, e2.type, e2.retriable], ['ValidationException', 'invalid_request_error', false])
    const e3 = bedrockCodec.error(503, { message: 'busy' }, { 'x-amzn-errortype': 'ServiceUnavailableException' })
    assert.equal(e3.retriable, true)
    const e4 = bedrockCodec.error(424, { message: 'model failed' }, { 'x-amzn-errortype': 'ModelErrorException' })
    assert.equal(e4.retriable, true)
    const e5 = bedrockCodec.error(403, { Message: 'denied' }, { 'x-amzn-errortype': 'AccessDeniedException' })
    assert.deepEqual([e5.code, e5.retriable, e5.message], ['AccessDeniedException', false, 'denied'])
  })
})

describe('hub request → Converse request', () => {
  const req = (body: Json) => bedrockCodec.request({ model: 'claude', ...body }, tc) as { body: Json; omitted: readonly string[] }
  const refused = (body: Json, param: string) => assert.throws(() => req(body), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.param === param)

  it('system prompts, merged same-role turns, tool calls and results, inference settings', () => {
    const { body, omitted } = req({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Weather?' },
        { role: 'user', content: [{ type: 'text', text: 'In Paris.' }] },
        { role: 'assistant', content: 'Let me look.', tool_calls: [{ id: 'c1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }, { id: 'c2', type: 'function', function: { name: 'time', arguments: '' } }] },
        { role: 'tool', tool_call_id: 'c1', content: 'Sunny' },
        { role: 'tool', tool_call_id: 'c2', content: [{ type: 'text', text: 'noon' }] },
        { role: 'user', content: 'Thanks' },
      ],
      tools: [{ type: 'function', function: { name: 'weather', description: 'Weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }, { type: 'function', function: { name: 'time' } }],
      tool_choice: 'required',
      max_tokens: 100, temperature: 0.2, top_p: 0.9, stop: 'END', top_k: 40, seed: 7,
    })
    assert.deepEqual(body.system, [{ text: 'Be brief.' }])
    assert.deepEqual(body.messages, [
      { role: 'user', content: [{ text: 'Weather?' }, { text: 'In Paris.' }] },
      { role: 'assistant', content: [{ text: 'Let me look.' }, { toolUse: { toolUseId: 'c1', name: 'weather', input: { city: 'Paris' } } }, { toolUse: { toolUseId: 'c2', name: 'time', input: {} } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 'c1', content: [{ text: 'Sunny' }] } }, { toolResult: { toolUseId: 'c2', content: [{ text: 'noon' }] } }, { text: 'Thanks' }] },
    ])
    assert.deepEqual(body.toolConfig, {
      tools: [{ toolSpec: { name: 'weather', description: 'Weather', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } } } } } }, { toolSpec: { name: 'time', inputSchema: { json: { type: 'object', properties: {} } } } }],
      toolChoice: { any: {} },
    })
    assert.deepEqual(body.inferenceConfig, { maxTokens: 100, temperature: 0.2, topP: 0.9, stopSequences: ['END'] })
    assert.deepEqual(body.additionalModelRequestFields, { top_k: 40 })
    assert.deepEqual(omitted, ['seed'])
    assert.equal(body.model, undefined)
  })

  it('images as bytes from data: URLs; cache_control marks become cachePoint blocks; thinking blocks replay first', () => {
    const png = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=='
    const { body } = req({
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Long system prompt', cache_control: { type: 'ephemeral' } }] },
        { role: 'user', content: [{ type: 'text', text: 'What is this?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${png}` } }] },
        { role: 'assistant', content: 'A pixel.', thinking_blocks: [{ type: 'thinking', thinking: 'hmm', signature: 'S1' }, { type: 'redacted_thinking', data: 'R1' }] },
        { role: 'user', content: 'Sure?' },
      ],
      tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } }, cache_control: { type: 'ephemeral' } }],
      thinking: { type: 'enabled', budget_tokens: 2048 },
    })
    assert.deepEqual(body.system, [{ text: 'Long system prompt' }, { cachePoint: { type: 'default' } }])
    assert.deepEqual(body.messages[0].content[1], { image: { format: 'png', source: { bytes: png } } })
    assert.deepEqual(body.messages[1].content, [{ reasoningContent: { reasoningText: { text: 'hmm', signature: 'S1' } } }, { reasoningContent: { redactedContent: 'R1' } }, { text: 'A pixel.' }])
    assert.deepEqual(body.toolConfig.tools[1], { cachePoint: { type: 'default' } })
    assert.deepEqual(body.additionalModelRequestFields, { thinking: { type: 'enabled', budget_tokens: 2048 } })
  })

  it('reasoning_effort: thinking budgets for Claude, reasoningConfig for other models', () => {
    assert.deepEqual(req({ messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'high' }).body.additionalModelRequestFields, { thinking: { type: 'enabled', budget_tokens: 16384 } })
    const nova = bedrockCodec.request({ messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'medium' }, { ...tc, upstreamModel: 'us.amazon.nova-2-lite-v1:0' })
    assert.deepEqual(nova.body.additionalModelRequestFields, { reasoningConfig: { type: 'enabled', maxReasoningEffort: 'medium' } })
  })

  it('tool_choice: auto → auto, a function → tool; none leaves tools out (and is refused once tools are in the history)', () => {
    const tools = [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }]
    assert.deepEqual(req({ messages: [{ role: 'user', content: 'x' }], tools }).body.toolConfig.toolChoice, { auto: {} })
    assert.deepEqual(req({ messages: [{ role: 'user', content: 'x' }], tools, tool_choice: { type: 'function', function: { name: 'f' } } }).body.toolConfig.toolChoice, { tool: { name: 'f' } })
    assert.equal(req({ messages: [{ role: 'user', content: 'x' }], tools, tool_choice: 'none' }).body.toolConfig, undefined)
    refused({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{}' } }] }, { role: 'tool', tool_call_id: 'a', content: 'r' }], tools, tool_choice: 'none' }, 'tool_choice')
  })

  it('400s naming what Converse cannot keep', () => {
    refused({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/cat.png' } }] }] }, 'messages[0].content[0].image_url.url')
    refused({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'x', format: 'wav' } }] }] }, 'messages[0].content[0].type')
    refused({ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'json_object' } }, 'response_format')
    refused({ messages: [{ role: 'user', content: 'x' }], n: 2 }, 'n')
    refused({ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'string' } } }] }, 'tools[0].function.parameters')
    refused({ messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'custom', custom: { name: 'g' } }] }, 'tools[0].type')
    refused({ messages: [{ role: 'user', content: 'x' }, { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{oops' } }] }] }, 'messages[1].tool_calls[0].function.arguments')
    refused({ messages: [{ role: 'function', content: 'x', name: 'f' }] }, 'messages[0].role')
    refused({ messages: [{ role: 'user', content: 'x' }], parallel_tool_calls: false }, 'parallel_tool_calls')
    // The contrast: the same requests without the unkeepable field translate.
    assert.ok(req({ messages: [{ role: 'user', content: 'x' }], response_format: { type: 'text' }, n: 1, parallel_tool_calls: true }).body.messages)
  })
})
