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

test('byte path: every frame keeps exactly the bytes it arrived as, whatever the chunk boundaries', () => {
  const frames = ['data: {"a":"héllo ✓"}\n\n', 'event: done\ndata: x\ndata: y\n\n', 'data: [DONE]\n\n']
  const bytes = Buffer.from(frames.join(''))
  for (let cut = 1; cut < bytes.length; cut++) {
    const p = new SseParser()
    const out = [...p.push(bytes.subarray(0, cut)), ...p.push(bytes.subarray(cut)), ...p.end()]
    assert.deepEqual(out.map((f) => f.data), ['{"a":"héllo ✓"}', 'x\ny', '[DONE]'], `cut at ${cut}`)
    // Where a frame ends is known at once on the byte path: the bytes are those of the frame as sent.
    assert.deepEqual(out.filter((f) => f.bytes).map((f) => Buffer.from(f.bytes!).toString('utf8')), frames, `cut at ${cut}`)
    assert.deepEqual(out.map((f) => f.raw), frames)
  }
})

test('a stream with CR line ends takes the text path for good: frames normalised, no bytes claimed', () => {
  const p = new SseParser()
  const out = [...p.push(Buffer.from('data: one\n\n')), ...p.push(Buffer.from('data: two\r\n\r\ndata: thr')), ...p.push(Buffer.from('ee\n\n')), ...p.end()]
  assert.deepEqual(out.map((f) => f.data), ['one', 'two', 'three'])
  assert.deepEqual(out.map((f) => f.bytes === undefined), [false, true, true])
  assert.deepEqual(out.map((f) => f.raw), ['data: one\n\n', 'data: two\n\n', 'data: three\n\n'])
})

test('an event name and one data line (the shortcut) read as the general rules do; other shapes still parse', () => {
  const text = 'event: a:b\ndata: x\n\nevent:  spaced\ndata: y\n\nevent: e\ndata: 1\ndata: 2\n\nevent: e\nid: 5\ndata: z\n\nevent: only\n\nevent: \ndata: q\n\nevent: n\ndata:\n\n'
  for (const input of [Buffer.from(text), text]) {
    const frames = new SseParser().push(input)
    assert.deepEqual(frames.map((f) => [f.event, f.data]), [
      ['a:b', 'x'], [' spaced', 'y'], ['e', '1\n2'], ['e', 'z'], ['only', ''], ['', 'q'], ['n', ''],
    ])
    assert.equal(frames[0]!.raw, 'event: a:b\ndata: x\n\n')
  }
})
