import { test } from 'node:test'
import assert from 'node:assert/strict'
import { SseParser, encodeSse } from '../src/core/sse.ts'

test('frames split across arbitrary chunk boundaries come out whole and in order', () => {
  const text = 'data: {"a":1}\n\nevent: done\ndata: x\ndata: y\n\n: comment\n\ndata: [DONE]\n\n'
  for (let cut = 1; cut < text.length; cut++) {
    const p = new SseParser()
    const frames = [...p.push(Buffer.from(text.slice(0, cut))), ...p.push(Buffer.from(text.slice(cut))), ...p.end()]
    assert.deepEqual(frames.map((f) => [f.event, f.data]), [[undefined, '{"a":1}'], ['done', 'x\ny'], [undefined, '[DONE]']])
  }
})

test('CRLF line endings and a final unterminated frame are handled', () => {
  const p = new SseParser()
  const frames = [...p.push('data: one\r\n\r\ndata: two'), ...p.end()]
  assert.deepEqual(frames.map((f) => f.data), ['one', 'two'])
})

test('multi-byte UTF-8 split across chunks is decoded intact', () => {
  const bytes = Buffer.from('data: héllo wörld ✓\n\n')
  const p = new SseParser()
  const frames = [...p.push(bytes.subarray(0, 9)), ...p.push(bytes.subarray(9, 20)), ...p.push(bytes.subarray(20))]
  assert.equal(frames[0]!.data, 'héllo wörld ✓')
})

test('raw keeps the frame forwardable and encodeSse round-trips', () => {
  const p = new SseParser()
  const [f] = p.push(encodeSse('{"x":"a\\nb"}', 'message'))
  assert.equal(f!.event, 'message')
  assert.equal(f!.raw, 'event: message\ndata: {"x":"a\\nb"}\n\n')
})
