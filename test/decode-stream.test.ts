import { test } from 'node:test'
import assert from 'node:assert/strict'
import { decodeStream, passthroughStream, type PassthroughFrame } from '../src/translate/stream.ts'
import type { StreamResult } from '../src/core/pipeline.ts'
import type { SseFrame } from '../src/core/sse.ts'
import type { StreamDecoder } from '../src/translate/types.ts'

// decodeStream's iterator behaves as the async generator it replaced: frames in order (an event may give
// none or several), the decoder's rest and [DONE] at the end, a decoder error once and then done with
// the source closed, return() closing the source.
const ev = (data: string): SseFrame => ({ event: undefined, data, raw: `data: ${data}\n\n` })

function source(datas: string[]): { result: StreamResult; closed: () => boolean } {
  let i = 0
  let closed = false
  const it: AsyncIterableIterator<SseFrame> = {
    [Symbol.asyncIterator]() { return this },
    next: async () => (i < datas.length ? { value: ev(datas[i++]!), done: false } : { value: undefined, done: true }),
    return: async () => { closed = true; return { value: undefined, done: true } },
  }
  return { result: { kind: 'stream', status: 200, headers: {}, frames: it, abort: () => {} }, closed: () => closed }
}

/** Each event's data is a count of chunks ('x' fails); the end adds one chunk. */
const decoder = (): StreamDecoder => ({
  push: (e) => {
    if (e.data === 'x') throw new Error('malformed')
    return Array.from({ length: Number(e.data) }, (_, k) => ({ n: `${e.data}.${k}` }))
  },
  end: () => [{ n: 'end' }],
})

const ns = (frames: SseFrame[]) => frames.map((f) => (f.data === '[DONE]' ? 'DONE' : (JSON.parse(f.data) as { n: string }).n))

test('frames come out in order, an event with no chunk gives none, the rest and [DONE] end it', async () => {
  const { result } = source(['1', '0', '2', '0', '0', '1'])
  const got: SseFrame[] = []
  for await (const f of decodeStream(result, decoder()).frames) got.push(f)
  assert.deepEqual(ns(got), ['1.0', '2.0', '2.1', '1.0', 'end', 'DONE'])
})

test('a decoder error reaches the reader once; then the stream is done and its source closed', async () => {
  const { result, closed } = source(['1', 'x', '1'])
  const it = decodeStream(result, decoder()).frames[Symbol.asyncIterator]()
  assert.deepEqual(ns([(await it.next()).value!]), ['1.0'])
  await assert.rejects(it.next(), /malformed/)
  assert.deepEqual(await it.next(), { value: undefined, done: true })
  assert.equal(closed(), true)
})

test('return() mid-stream closes the source and ends the stream, even while a read waits', async () => {
  const { result, closed } = source(['2', '1'])
  const it = decodeStream(result, decoder()).frames[Symbol.asyncIterator]()
  assert.deepEqual(ns([(await it.next()).value!]), ['2.0'])
  assert.equal(closed(), false)
  await it.return!()
  assert.equal(closed(), true)
  assert.deepEqual(await it.next(), { value: undefined, done: true })
  // Two reads at once are served one after the other, in order.
  const two = decodeStream(source(['1', '1']).result, decoder()).frames[Symbol.asyncIterator]()
  const [a, b] = await Promise.all([two.next(), two.next()])
  assert.deepEqual(ns([a.value!, b.value!]), ['1.0', '1.0'])
  assert.deepEqual(ns([(await two.next()).value!, (await two.next()).value!]), ['end', 'DONE'])
})

test("passthrough: every event's own bytes on the last frame it gave (an event with no chunk still comes through), the end's rest for accounting only, no [DONE]", async () => {
  const { result } = source(['2', '0', '1'])
  const got: PassthroughFrame[] = []
  for await (const f of passthroughStream(result, decoder()).frames) got.push(f as PassthroughFrame)
  assert.deepEqual(got.map((f) => [f.data === '' ? '' : (JSON.parse(f.data) as { n: string }).n, f.native]), [
    ['2.0', ''], ['2.1', 'data: 2\n\n'], ['', 'data: 0\n\n'], ['1.0', 'data: 1\n\n'], ['end', ''],
  ])
})
