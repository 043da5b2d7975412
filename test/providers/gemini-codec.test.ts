import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { SseParser } from '../../src/core/sse.ts'
import { GatewayError } from '../../src/core/errors.ts'
import { UpstreamFailure } from '../../src/upstream/failure.ts'
import { geminiCodec } from '../../src/translate/openai-to-gemini.ts'
import type { TranslateContext } from '../../src/translate/types.ts'

// The Gemini codec against real Gemini/Vertex answers (fixtures from googleapis/js-genai, see
// test/fixtures/providers/gemini/SOURCE.md) and the edge cases of the mapping, with expected hub values
// written out by hand.

const tc: TranslateContext = { upstreamModel: 'gemini-2.5-flash', publicModel: 'gem', stream: false, requestId: 'req1', created: 1700000000 }
const fixture = (name: string) => readFileSync(new URL(`../fixtures/providers/gemini/${name}`, import.meta.url), 'utf8')
const json = (name: string) => JSON.parse(fixture(name)) as Record<string, unknown>

function decode(sse: string, ctx = tc): Record<string, any>[] {
  const d = geminiCodec.decoder(ctx)
  const out: Record<string, any>[] = []
  for (const f of new SseParser().push(sse)) out.push(...d.push(f))
  out.push(...d.end())
  return out
}

test('a recorded Vertex function call: ids made, arguments as JSON text, finish tool_calls, usage', () => {
  const hub = geminiCodec.response(json('vertex_function_call.json'), tc)
  assert.deepEqual(hub, {
    id: 'chatcmpl-req1', object: 'chat.completion', created: 1700000000, model: 'gem',
    choices: [{
      index: 0, logprobs: null, finish_reason: 'tool_calls',
      message: { role: 'assistant', content: null, refusal: null, tool_calls: [{ id: 'call_req1_0_0', type: 'function', function: { name: 'customDivide', arguments: '{"denominator":2,"numerator":100}' } }] },
    }],
    usage: { prompt_tokens: 21, completion_tokens: 6, total_tokens: 27, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } },
  })
})

test('the SDK fixture of two calls, one without args', () => {
  const hub = geminiCodec.response(json('function_calls_two.json'), tc) as { choices: Array<{ message: { tool_calls: Array<{ id: string; function: { name: string; arguments: string } }> } }> }
  assert.deepEqual(hub.choices[0]!.message.tool_calls.map((c) => [c.id, c.function.name, c.function.arguments]), [['call_req1_0_0', 'print', '{"text":"Hello World","color":"red"}'], ['call_req1_0_1', 'beep', '{}']])
})

test('a recorded one-event Vertex stream: role, finish and the usage chunk', () => {
  const chunks = decode(fixture('vertex_stream_empty_stop.sse'))
  assert.deepEqual(chunks.map((c) => c.choices[0]?.delta ?? null), [{ role: 'assistant', content: '' }, {}, null])
  assert.equal(chunks[1]!.choices[0].finish_reason, 'stop')
  assert.deepEqual(chunks[2]!.usage, { prompt_tokens: 83, completion_tokens: 0, total_tokens: 83, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 } })
})

test('errors: the recorded API_KEY_INVALID 400 and a 429 with RetryInfo', () => {
  assert.deepEqual(geminiCodec.error(400, json('api_key_invalid.json')), {
    message: 'API key not valid. Please pass a valid API key.', type: 'invalid_request_error', code: 'invalid_argument', param: null, retriable: false, retryAfterMs: null,
  })
  const e = geminiCodec.error(429, json('rate_limit_429.json'))
  assert.deepEqual({ type: e.type, retriable: e.retriable, retryAfterMs: e.retryAfterMs }, { type: 'rate_limit_error', retriable: true, retryAfterMs: 37_000 })
  assert.equal(geminiCodec.error(503, { error: { code: 503, status: 'UNAVAILABLE', message: 'The model is overloaded.' } }).retriable, true)
  // A body that is not Google's envelope still maps by status.
  assert.equal(geminiCodec.error(404, { error: { message: 'x' } }).type, 'not_found_error')
})

test('usage: cached content, tool-use prompt and thoughts', () => {
  const hub = geminiCodec.response({ candidates: [{ content: { parts: [{ text: 'hmm', thought: true }, { text: 'hi' }], role: 'model' }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 100, cachedContentTokenCount: 40, toolUsePromptTokenCount: 5, candidatesTokenCount: 3, thoughtsTokenCount: 12, totalTokenCount: 120 } }, tc) as { choices: Array<{ message: Record<string, unknown> }>; usage: unknown }
  assert.deepEqual(hub.choices[0]!.message, { role: 'assistant', content: 'hi', refusal: null, reasoning_content: 'hmm' })
  assert.deepEqual(hub.usage, { prompt_tokens: 105, completion_tokens: 15, total_tokens: 120, prompt_tokens_details: { cached_tokens: 40, cache_write_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 12 } })
})

test('finish reasons: SAFETY and the like → content_filter; MAX_TOKENS → length; a blocked prompt', () => {
  const finish = (r: string) => (geminiCodec.response({ candidates: [{ content: { parts: [{ text: 'x' }] }, finishReason: r }] }, tc) as { choices: Array<{ finish_reason: string }> }).choices[0]!.finish_reason
  assert.deepEqual(['STOP', 'MAX_TOKENS', 'SAFETY', 'RECITATION', 'PROHIBITED_CONTENT', 'SPII', 'BLOCKLIST', 'OTHER'].map(finish), ['stop', 'length', 'content_filter', 'content_filter', 'content_filter', 'content_filter', 'content_filter', 'stop'])
  const blocked = geminiCodec.response({ promptFeedback: { blockReason: 'SAFETY' }, usageMetadata: { promptTokenCount: 7, totalTokenCount: 7 } }, tc) as { choices: Array<{ finish_reason: string; message: { content: unknown } }> }
  assert.deepEqual({ f: blocked.choices[0]!.finish_reason, c: blocked.choices[0]!.message.content }, { f: 'content_filter', c: null })
  const streamed = decode('data: {"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"},"usageMetadata":{"promptTokenCount":7}}\r\n\r\n')
  assert.equal(streamed[1]!.choices[0].finish_reason, 'content_filter')
})

test('streams: a call with its thought signature, then text; an error event mid-stream; a malformed event', () => {
  const sse = [
    'data: {"candidates":[{"content":{"parts":[{"text":"Let me look.","thought":true}],"role":"model"},"index":0}]}',
    'data: {"candidates":[{"content":{"parts":[{"functionCall":{"name":"lookup","args":{"q":"x"}},"thoughtSignature":"c2ln"}],"role":"model"},"finishReason":"STOP","index":0}],"usageMetadata":{"promptTokenCount":9,"candidatesTokenCount":4,"thoughtsTokenCount":3,"totalTokenCount":16}}',
  ].map((d) => d + '\r\n\r\n').join('')
  const chunks = decode(sse)
  assert.deepEqual(chunks.map((c) => c.choices[0]?.delta ?? null), [
    { role: 'assistant', reasoning_content: 'Let me look.' },
    { tool_calls: [{ index: 0, id: 'call_req1_0_0', type: 'function', function: { name: 'lookup', arguments: '' }, extra_content: { google: { thought_signature: 'c2ln' } } }] },
    { tool_calls: [{ index: 0, function: { arguments: '{"q":"x"}' } }] },
    {},
    null,
  ])
  assert.equal(chunks[3]!.choices[0].finish_reason, 'tool_calls')
  assert.equal(chunks[4]!.usage.completion_tokens, 7)

  const d = geminiCodec.decoder(tc)
  d.push(new SseParser().push('data: {"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}\n\n')[0]!)
  assert.throws(() => d.push(new SseParser().push('data: {"error":{"code":500,"status":"INTERNAL","message":"boom"}}\n\n')[0]!), (e: unknown) => e instanceof UpstreamFailure && e.status === 502)
  assert.throws(() => geminiCodec.decoder(tc).push(new SseParser().push('data: [1,2]\n\n')[0]!), UpstreamFailure)
})

test('requests: assistant history with signatures and without (Google\'s skip value), roles merged, function results by name', () => {
  const { body } = geminiCodec.request({
    model: 'gem',
    messages: [
      { role: 'developer', content: [{ type: 'text', text: 'Rules.' }] },
      { role: 'user', content: 'a' },
      { role: 'user', content: 'b' },
      { role: 'assistant', content: 'calling', tool_calls: [
        { id: 'x1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } },
        { id: 'x2', type: 'function', function: { name: 'g', arguments: '{}' }, extra_content: { google: { thought_signature: 'sig-g' } } },
      ] },
      { role: 'tool', tool_call_id: 'x2', content: [{ type: 'text', text: 'G' }] },
      { role: 'tool', tool_call_id: 'x1', content: '[1,2]' },
    ],
  }, tc)
  assert.deepEqual(body, {
    systemInstruction: { parts: [{ text: 'Rules.' }] },
    contents: [
      { role: 'user', parts: [{ text: 'a' }, { text: 'b' }] },
      { role: 'model', parts: [{ text: 'calling' }, { functionCall: { name: 'f', args: { a: 1 } }, thoughtSignature: 'skip_thought_signature_validator' }, { functionCall: { name: 'g', args: {} }, thoughtSignature: 'sig-g' }] },
      { role: 'user', parts: [{ functionResponse: { name: 'g', response: { output: 'G' } } }, { functionResponse: { name: 'f', response: { output: '[1,2]' } } }] },
    ],
  })
  const refuse = (hub: Record<string, unknown>, param: string) => assert.throws(() => geminiCodec.request(hub, tc), (e: unknown) => e instanceof GatewayError && e.status === 400 && e.param === param)
  refuse({ messages: [{ role: 'tool', tool_call_id: 'nope', content: 'x' }] }, 'messages[0].tool_call_id')
  refuse({ messages: [{ role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{bad' } }] }] }, 'messages[0].tool_calls[0].function.arguments')
  refuse({ messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA' } }] }] }, 'messages[0].content[0].type')
  refuse({ messages: [{ role: 'user', content: 'x' }], reasoning_effort: 'extreme' }, 'reasoning_effort')
  refuse({ messages: [{ role: 'user', content: 'x' }], logprobs: true }, 'logprobs')
  refuse({ messages: [] }, 'messages')
})

test('tool choice, thinking controls and the generation knobs', () => {
  const req = (extra: Record<string, unknown>) => geminiCodec.request({ messages: [{ role: 'user', content: 'x' }], ...extra }, tc).body
  assert.deepEqual(req({ tool_choice: 'none' }).toolConfig, { functionCallingConfig: { mode: 'NONE' } })
  assert.deepEqual(req({ tool_choice: 'auto' }).toolConfig, { functionCallingConfig: { mode: 'AUTO' } })
  assert.deepEqual(req({ thinking: { type: 'disabled' } }).generationConfig, { thinkingConfig: { thinkingBudget: 0 } })
  assert.deepEqual(req({ thinking: { type: 'enabled', budget_tokens: 3000 } }).generationConfig, { thinkingConfig: { thinkingBudget: 3000, includeThoughts: true } })
  assert.deepEqual(req({ top_p: 0.9, top_k: 40, seed: 7, n: 2, presence_penalty: 0.1, frequency_penalty: 0.2, max_completion_tokens: 50, stop: 'X', response_format: { type: 'json_object' } }).generationConfig, {
    topP: 0.9, topK: 40, seed: 7, candidateCount: 2, presencePenalty: 0.1, frequencyPenalty: 0.2, maxOutputTokens: 50, stopSequences: ['X'], responseMimeType: 'application/json',
  })
  const { omitted, body } = geminiCodec.request({ messages: [{ role: 'user', content: [{ type: 'text', text: 'x', cache_control: { type: 'ephemeral' } }] }], tools: [{ type: 'web_search' }], metadata: { a: 1 } }, tc)
  assert.deepEqual(omitted, ['metadata', 'messages[].content[].cache_control', 'tools[0]'])
  assert.equal(body.tools, undefined)
})

test('a malformed complete answer is a 502-class failure, not a crash', () => {
  assert.throws(() => geminiCodec.response({ candidates: [null] }, tc), UpstreamFailure)
  assert.throws(() => geminiCodec.response({ candidates: [{ content: { parts: [7] } }] }, tc), UpstreamFailure)
  // Odd but well-formed: no candidates and no feedback is an empty answer.
  assert.equal((geminiCodec.response({}, tc) as { choices: unknown[] }).choices.length, 1)
})
