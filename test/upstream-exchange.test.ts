import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Pool } from 'undici'
import { UpstreamExchange, type EventSplitter } from '../src/upstream/exchange.ts'

/** One event per line: enough framing to count events without the SSE parser. */
const lines = (): EventSplitter<string> => {
  let rest = ''
  return {
    push: (chunk) => { const parts = (rest + Buffer.from(chunk).toString()).split('\n'); rest = parts.pop()!; return parts },
    end: () => (rest ? [rest] : []),
  }
}
const asIs = (e: Error) => e

test('a reader that falls 256 events behind pauses the socket; reading resumes it', async () => {
  const ex = new UpstreamExchange<string>(() => lines(), asIs)
  let resumed = 0
  ex.onConnect(() => {})
  assert.equal(ex.onHeaders(200, [Buffer.from('Content-Type'), Buffer.from('text/plain')], () => { resumed++ }), true)
  assert.deepEqual((await ex.head).headers, { 'content-type': 'text/plain' })
  const it = ex.events()
  let accepted = 0
  for (let i = 0; i < 300; i++) if (ex.onData(Buffer.from(`e${i}\n`))) accepted++
  // The 256th queued event is the first one refused (returns false: undici pauses the socket).
  assert.equal(accepted, 255)
  assert.equal(resumed, 0)
  // 300 queued; the socket resumes once fewer than 128 (half the bound) are left: after the 173rd read, not the 172nd.
  for (let i = 0; i < 172; i++) assert.equal((await it.next()).value, `e${i}`)
  assert.equal(resumed, 0, '128 left: still paused')
  assert.equal((await it.next()).value, 'e172')
  assert.equal(resumed, 1, 'resumed once the queue fell below half the bound')
  ex.onComplete()
  let rest = 0
  for (let n = await it.next(); !n.done; n = await it.next()) rest++
  assert.equal(rest, 300 - 173, 'every event reached the reader, none dropped')
})

test('stopped before a connection: undici is told to abort as soon as it connects, and the reason is kept', async () => {
  const ex = new UpstreamExchange<string>(() => null, () => new Error('mapped: must not replace the reason'))
  const reason = new Error('timeout')
  ex.abort(reason)
  await assert.rejects(ex.head, (e) => e === reason)
  let abortedWith: Error | undefined
  ex.onConnect((e) => { abortedWith = e })
  assert.equal(abortedWith, reason)
  // undici reports the abort back through onError: the caller still sees the original reason.
  ex.onError(new Error('undici: aborted'))
  await assert.rejects(ex.body(), (e) => e === reason)
})

test('stopped while connected: undici reports the abort back, the first reason stands', async () => {
  const ex = new UpstreamExchange<string>(() => null, () => new Error('mapped'))
  const reason = new Error('timeout')
  ex.onConnect((e) => ex.onError(e ?? new Error('aborted'))) // undici calls onError synchronously from abort
  ex.abort(reason)
  await assert.rejects(ex.head, (e) => e === reason)
  // The contrast: an error undici raises on its own is mapped.
  const other = new UpstreamExchange<string>(() => null, (e) => new Error(`mapped: ${e.message}`))
  other.onConnect(() => {})
  other.onError(new Error('socket hang up'))
  await assert.rejects(other.head, /mapped: socket hang up/)
})

test('through a real undici pool: a JSON body collected whole, a streamed one event by event', async () => {
  const server = createServer((req, res) => {
    if (req.url === '/json') { res.setHeader('content-type', 'application/json'); res.end('{"ok":true,"n":42}'); return }
    res.setHeader('content-type', 'text/plain')
    let i = 0
    const tick = () => { if (i < 5) { res.write(`line${i++}\n`); setImmediate(tick) } else res.end() }
    tick()
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const pool = new Pool(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  try {
    const json = new UpstreamExchange<string>(() => null, asIs)
    pool.dispatch({ method: 'GET', path: '/json' }, json)
    assert.equal((await json.head).status, 200)
    assert.deepEqual(JSON.parse((await json.body()).toString()), { ok: true, n: 42 })
    const stream = new UpstreamExchange<string>(() => lines(), asIs)
    pool.dispatch({ method: 'GET', path: '/stream' }, stream)
    await stream.head
    const got: string[] = []
    for await (const e of stream.events()) got.push(e)
    assert.deepEqual(got, ['line0', 'line1', 'line2', 'line3', 'line4'])
  } finally {
    await pool.close()
    server.close()
  }
})
