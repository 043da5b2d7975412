import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { EventStreamCodec } from '@smithy/eventstream-codec'
import { fromUtf8, toUtf8 } from '@smithy/util-utf8'
import { UsageTap } from '../src/passthrough/usage-tap.ts'
import { unsafeSubPath } from '../src/passthrough/path.ts'

/** Feeds `text` to a tap in pieces of `size` bytes (events split across chunks, as on the wire). */
function tapOf(contentType: string, body: Buffer, size = 7, headers: Record<string, string> = {}) {
  const tap = new UsageTap(contentType, headers)
  for (let i = 0; i < body.length; i += size) tap.push(body.subarray(i, i + size))
  return tap.end()
}

describe('passthrough usage tap: the native answers of each provider', () => {
  it('Anthropic Messages stream: input from message_start, output from message_delta', () => {
    // The event sequence of Anthropic's "Streaming Messages" reference (docs.anthropic.com/en/api/messages-streaming), abridged.
    const sse = [
      'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}\n\n',
      'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n',
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}\n\n',
      'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}\n\n',
      'event: message_stop\ndata: {"type":"message_stop"}\n\n',
    ].join('')
    const u = tapOf('text/event-stream', Buffer.from(sse))
    assert.equal(u?.promptTokens, 25)
    assert.equal(u?.completionTokens, 15)
  })

  it('Anthropic cache reads and writes are part of the prompt', () => {
    const u = tapOf('application/json', Buffer.from('{"type":"message","usage":{"input_tokens":10,"cache_read_input_tokens":100,"cache_creation_input_tokens":50,"output_tokens":5}}'))
    assert.deepEqual([u?.promptTokens, u?.cachedTokens, u?.cacheWriteTokens, u?.completionTokens], [160, 100, 50, 5])
  })

  it('OpenAI Responses stream: the usage of response.completed', () => {
    const sse = 'event: response.created\ndata: {"type":"response.created","response":{"id":"r","usage":null}}\n\n'
      + 'event: response.completed\ndata: {"type":"response.completed","response":{"id":"r","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":8,"output_tokens_details":{"reasoning_tokens":3},"total_tokens":20}}}\n\n'
    const u = tapOf('text/event-stream; charset=utf-8', Buffer.from(sse))
    assert.deepEqual([u?.promptTokens, u?.cachedTokens, u?.completionTokens, u?.reasoningTokens], [12, 4, 8, 3])
  })

  it('Gemini streamGenerateContent: the last chunk\'s usageMetadata (thoughts billed as output)', () => {
    const sse = 'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":1}}\r\n\r\n'
      + 'data: {"candidates":[{"content":{"parts":[{"text":" there"}]},"finishReason":"STOP"}],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":2,"thoughtsTokenCount":5,"totalTokenCount":14}}\r\n\r\n'
    const u = tapOf('text/event-stream', Buffer.from(sse))
    assert.deepEqual([u?.promptTokens, u?.completionTokens, u?.reasoningTokens], [7, 7, 5])
  })

  it('Bedrock ConverseStream: the metadata event (AWS event stream, encoded here with @smithy/eventstream-codec)', () => {
    const codec = new EventStreamCodec(toUtf8, fromUtf8)
    const ev = (type: string, payload: unknown) => codec.encode({ headers: { ':event-type': { type: 'string', value: type }, ':message-type': { type: 'string', value: 'event' }, ':content-type': { type: 'string', value: 'application/json' } }, body: fromUtf8(JSON.stringify(payload)) })
    const body = Buffer.concat([ev('messageStart', { role: 'assistant' }), ev('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hi' } }), ev('messageStop', { stopReason: 'end_turn' }), ev('metadata', { usage: { inputTokens: 30, outputTokens: 9, totalTokens: 39 }, metrics: { latencyMs: 100 } })])
    const u = tapOf('application/vnd.amazon.eventstream', body, 13)
    assert.deepEqual([u?.promptTokens, u?.completionTokens], [30, 9])
  })

  it('Bedrock InvokeModel: the token-count headers; no usage at all is null, not zero', () => {
    const u = tapOf('application/json', Buffer.from('{"outputText":"x"}'), 7, { 'x-amzn-bedrock-input-token-count': '11', 'x-amzn-bedrock-output-token-count': '3' })
    assert.deepEqual([u?.promptTokens, u?.completionTokens], [11, 3])
    assert.equal(tapOf('application/json', Buffer.from('{"outputText":"x"}')), null)
    assert.equal(tapOf('application/octet-stream', Buffer.from('binary')), null)
  })
})

describe('passthrough sub-paths', () => {
  it('refuses dot segments and encoded traversal, passes ordinary native paths', () => {
    for (const bad of ['/..', '/a/../b', '/./a', '/a/%2e%2e/b', '/a/%2E./b', '/a%2fb', '/a%5Cb', '/a\\b', '/a%00', 'x/y', '/a\u0001b']) assert.notEqual(unsafeSubPath(bad), null, bad)
    for (const ok of ['', '/', '/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke', '/v1beta/models/gemini-2.0-flash:generateContent', '/a/b.c/d..e', '/x/...']) assert.equal(unsafeSubPath(ok), null, ok)
  })
})
