// The stream relay's fast path: frames that arrive in one upstream read leave in one write, unchanged frames
// are forwarded as their own bytes, chat deltas pass unparsed (their text taken only when it is needed), and
// the events that matter (usage, errors) are still read.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import type { AddressInfo } from 'node:net'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { WriteBatch } from '../src/server/write-batch.ts'
import { DEFERRED_MAX_CHARS, mayCarryUsageOrError, StreamAccounting } from '../src/server/stream-usage.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'
import { ledgerRow } from './helpers/ledger-row.ts'

/** A ServerResponse stand-in that records each write (the batch only calls write, cork and uncork). */
function recorder() {
  const writes: (string | Buffer)[] = []
  let corked = 0
  const res = {
    destroyed: false,
    writableEnded: false,
    writableNeedDrain: false,
    write(piece: string | Buffer) { writes.push(piece); return true },
    cork() { corked++ },
    uncork() {},
  }
  return { writes, res: res as unknown as http.ServerResponse, corks: () => corked }
}

describe('WriteBatch', () => {
  test('views adjacent in one buffer go out as one write of the same memory, no copy', () => {
    const read = Buffer.from('data: a\n\ndata: b\n\ndata: c\n\n')
    const { writes, res } = recorder()
    const batch = new WriteBatch(res)
    batch.add(read.subarray(0, 9))
    batch.add(read.subarray(9, 18))
    batch.add(read.subarray(18))
    assert.equal(batch.flush(), true)
    assert.equal(writes.length, 1)
    const w = writes[0] as Buffer
    assert.equal(w.toString(), 'data: a\n\ndata: b\n\ndata: c\n\n')
    assert.equal(w.buffer, read.buffer, 'a view of the upstream read itself')
    assert.equal(w.byteOffset, read.byteOffset)
  })

  test('a gap, another buffer or a string between pieces keeps them apart, in order, in one corked writev', () => {
    const read = Buffer.from('data: a\n\ndata: b\n\ndata: c\n\n')
    const other = Buffer.from('data: z\n\n')
    const { writes, res, corks } = recorder()
    const batch = new WriteBatch(res)
    batch.add(read.subarray(0, 9))
    batch.add(read.subarray(18)) // frame b skipped (a dropped usage chunk, say)
    batch.add('data: [DONE]')
    batch.add('\n\n')
    batch.add(other)
    batch.add('')
    batch.flush()
    assert.deepEqual(writes.map(String), ['data: a\n\n', 'data: c\n\n', 'data: [DONE]\n\n', 'data: z\n\n'])
    assert.equal(corks(), 1, 'several pieces: one corked write')
    assert.equal(batch.empty, true)
  })

  test('reports backpressure; nothing is written to an ended response', () => {
    const { writes, res } = recorder()
    const batch = new WriteBatch(res)
    ;(res as unknown as { writableNeedDrain: boolean }).writableNeedDrain = true
    batch.add('x')
    assert.equal(batch.flush(), false)
    assert.equal(writes.length, 1)
    ;(res as unknown as { writableEnded: boolean }).writableEnded = true
    batch.add('y')
    batch.flush()
    assert.equal(writes.length, 1)
  })
})

describe('which chat chunks must be parsed while the stream runs', () => {
  test('usage that is not null, and any error, are found whatever the JSON whitespace', () => {
    for (const data of [
      '{"choices":[],"usage":{"prompt_tokens":3}}',
      '{"choices":[], "usage" : {"prompt_tokens":3}}',
      '{"choices":[],"usage":\n\t{"prompt_tokens":3}}',
      '{"error":{"message":"overloaded"}}',
    ]) assert.equal(mayCarryUsageOrError(data), true, data)
  })

  test('plain deltas, and a null usage on every chunk (include_usage), are not', () => {
    for (const data of [
      '{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}',
      '{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null}',
      '{"id":"c","choices":[{"index":0,"delta":{"content":"Hi"}}],"usage" : null}',
    ]) assert.equal(mayCarryUsageOrError(data), false, data)
  })
})

describe('StreamAccounting with deferred events', () => {
  const delta = (content: string) => JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: null }] })

  test('the text of deferred events is the same, in order, as if every event had been parsed', () => {
    const acct = new StreamAccounting('chat.completions')
    acct.observe(JSON.parse(delta('One')))
    acct.defer(delta(' two'))
    acct.observe(JSON.parse(delta(' three')))
    acct.defer(delta(' four'))
    acct.defer(JSON.stringify({ choices: [{ index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{}' } }] } }] }))
    assert.equal(acct.generatedText, 'One two three four[{"index":0,"function":{"arguments":"{}"}}]')
    assert.equal(acct.generatedText, 'One two three four[{"index":0,"function":{"arguments":"{}"}}]', 'read twice, the same')
  })

  test('an event with several choices gives each its piece, and what follows it keeps its place', () => {
    const acct = new StreamAccounting('chat.completions')
    acct.defer(JSON.stringify({ choices: [{ index: 0, delta: { content: 'A' } }, { index: 1, delta: { content: 'B' } }, { index: 2, delta: { content: 'C' } }] }))
    acct.observe(JSON.parse(delta('-x')))
    acct.defer(delta('-y'))
    assert.equal(acct.generatedText, 'ABC-x-y')
  })

  test('a long stream keeps its text, not its events: past the bound the deferred events are read', () => {
    const acct = new StreamAccounting('chat.completions')
    const one = delta('x')
    const n = Math.floor(DEFERRED_MAX_CHARS / one.length) + 1 // the defer that crosses the bound
    for (let i = 0; i < n; i++) acct.defer(one)
    const held = (acct as unknown as { parts: unknown[] }).parts
    assert.ok(held.every((p) => typeof p === 'string'), 'no event text held past the bound')
    assert.equal(acct.generatedText, 'x'.repeat(n))
  })
})

/**
 * An OpenAI-shaped upstream: the role chunk with the headers, then every other event in one write on the next
 * turn, as the benchmark upstream and real servers under load do. A prompt with `mode:no-usage` ignores
 * include_usage; `mode:error` sends an error event after five content pieces.
 */
const PIECES = Array.from({ length: 30 }, (_, i) => [' the', ' cat', ' sat'][i % 3]!)
function chunk(delta: Record<string, unknown>, finish: string | null): string {
  return `data: ${JSON.stringify({ id: 'chatcmpl-relay', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], usage: null })}\n\n`
}
const ROLE = chunk({ role: 'assistant', content: '' }, null)
const USAGE = `data: ${JSON.stringify({ id: 'chatcmpl-relay', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [], usage: { prompt_tokens: 11, completion_tokens: 30, total_tokens: 41 } })}\n\n`
const ERROR = `data: ${JSON.stringify({ error: { message: 'the model is overloaded', type: 'server_error' } })}\n\n`
const CONTENT = PIECES.map((p) => chunk({ content: p }, null)).join('') + chunk({}, 'stop')

let upstream: http.Server
let upstreamUrl = ''
before(async () => {
  upstream = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => { body += d })
    req.on('end', () => {
      const mode = /mode:([a-z-]+)/.exec(body)?.[1] ?? '' // from the prompt: the gateway forwards no client header
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(ROLE)
      if (mode === 'late-end') {
        // The last frames in one turn, `[DONE]` and the end of the body in a later one.
        setImmediate(() => { res.write(CONTENT + (/"include_usage":true/.test(body) ? USAGE : '')); setImmediate(() => res.end('data: [DONE]\n\n')) })
        return
      }
      const rest = mode === 'no-usage' ? CONTENT + 'data: [DONE]\n\n'
        : mode === 'error' ? PIECES.slice(0, 5).map((p) => chunk({ content: p }, null)).join('') + ERROR + 'data: [DONE]\n\n'
          : CONTENT + (/"include_usage":true/.test(body) ? USAGE : '') + 'data: [DONE]\n\n'
      setImmediate(() => res.end(rest))
    })
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/v1`
})
after(() => new Promise<void>((r) => { upstream.closeAllConnections(); upstream.close(() => r()) }))

/** The response of one raw HTTP/1.1 request: its head, and the chunks of its chunked body as sent. */
async function rawStream(port: number, headers: Record<string, string>, body: string): Promise<{ head: string; chunks: string[] }> {
  const socket = net.connect(port, '127.0.0.1')
  const lines = [`POST /v1/chat/completions HTTP/1.1`, 'host: 127.0.0.1', 'connection: close', `content-length: ${Buffer.byteLength(body)}`,
    'content-type: application/json', ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)]
  socket.write(lines.join('\r\n') + '\r\n\r\n' + body) // no half-close: the server closes after the answer
  const parts: Buffer[] = []
  for await (const d of socket) parts.push(d as Buffer)
  const all = Buffer.concat(parts).toString('utf8')
  const split = all.indexOf('\r\n\r\n')
  const head = all.slice(0, split)
  const chunks: string[] = []
  let at = split + 4
  for (;;) {
    const eol = all.indexOf('\r\n', at)
    const size = parseInt(all.slice(at, eol), 16)
    if (!(size > 0)) break
    chunks.push(all.slice(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
  return { head, chunks }
}

describe('the relay through the gateway', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sluice-stream-relay-'))
  let tg: TestGateway
  let port = 0
  const key = 'sk-stream-relay-0123456789'
  before(async () => {
    tg = await startTestGateway(`
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')}, flushInterval: 20ms }
backends:
  - { id: up, type: openai-compatible, url: "${upstreamUrl}" }
models:
  - { name: gpt-4o-mini, target: up }
products:
  - id: logged
    policies:
      - log-messages: { maxChars: 1000 }
consumers:
  - { id: plain, keys: [ { value: ${key} } ] }
  - { id: logger, product: logged, keys: [ { value: ${key}-logged } ] }
`)
    port = Number(new URL(tg.url).port)
  })
  after(async () => { await tg?.close(); rmSync(dir, { recursive: true, force: true }) })

  const body = (extra: Record<string, unknown> = {}, mode = '') => JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages: [{ role: 'user', content: `hello ${mode}` }], ...extra })

  test('the client gets the upstream bytes unchanged, our usage chunk left out, in a few writes rather than one per event', async () => {
    const { head, chunks } = await rawStream(port, { authorization: `Bearer ${key}`, 'x-request-id': 'relay-1' }, body())
    assert.match(head, /^HTTP\/1.1 200/, head)
    assert.equal(chunks.join(''), ROLE + CONTENT + 'data: [DONE]\n\n', 'byte for byte, without the usage chunk the client did not ask for')
    // 33 events: a relay writing per event sends ≥ 33 chunks; held role + first content, the rest, [DONE].
    assert.ok(chunks.length >= 1 && chunks.length <= 4, `${chunks.length} chunks`)
    const row = await ledgerRow(tg.gw, 'relay-1')
    assert.equal(row.status, 200)
    assert.equal(row.completionTokens, 30, "the backend's usage, read from the chunk that carries it")
    assert.equal(row.promptTokens, 11)
  })

  /** Counts the socket writes (syscall-level: `_write` / `_writev`) of the next connection the gateway accepts. */
  function nextConnectionWrites(): () => number {
    let writes = 0
    tg.gw.app.server.once('connection', (socket: net.Socket) => {
      const s = socket as net.Socket & { _write: (...a: unknown[]) => void; _writev: (...a: unknown[]) => void }
      const write = s._write, writev = s._writev
      s._write = function (...a) { writes++; return write.apply(this, a) }
      s._writev = function (...a) { writes++; return writev.apply(this, a) }
    })
    return () => writes
  }

  test("a stream whose end comes with its last frames leaves in one socket write; one that ends a turn later, in two", async () => {
    // The upstream sends its role frame, then (next turn) every other frame, [DONE] and the end of its body:
    // the role frame is held until the first content, and the end's turn writes the frames, [DONE] and the
    // chunked terminator corked together, the headers with them.
    const together = nextConnectionWrites()
    const one = await rawStream(port, { authorization: `Bearer ${key}`, 'x-request-id': 'relay-6' }, body())
    assert.equal(one.chunks.join(''), ROLE + CONTENT + 'data: [DONE]\n\n')
    assert.equal(together(), 1, 'headers, frames, [DONE] and the terminator in one write')
    // The frames of a turn are not held for an end that comes later: they go out in their turn, the end in its own.
    const apart = nextConnectionWrites()
    const two = await rawStream(port, { authorization: `Bearer ${key}`, 'x-request-id': 'relay-7' }, body({}, 'mode:late-end'))
    assert.equal(two.chunks.join(''), ROLE + CONTENT + 'data: [DONE]\n\n')
    assert.equal(apart(), 2, 'the frames in their turn, then [DONE] with the end')
    assert.equal((await ledgerRow(tg.gw, 'relay-7')).completionTokens, 30)
  })

  test('a client that asked for usage gets the usage chunk too', async () => {
    const { chunks } = await rawStream(port, { authorization: `Bearer ${key}` }, body({ stream_options: { include_usage: true } }))
    assert.equal(chunks.join(''), ROLE + CONTENT + USAGE + 'data: [DONE]\n\n')
  })

  test('with no usage from the backend, the unparsed deltas are counted: 30 one-token pieces', async () => {
    const { chunks } = await rawStream(port, { authorization: `Bearer ${key}`, 'x-request-id': 'relay-2' }, body({}, 'mode:no-usage'))
    assert.equal(chunks.join(''), ROLE + CONTENT + 'data: [DONE]\n\n')
    const row = await ledgerRow(tg.gw, 'relay-2')
    assert.equal(row.status, 200)
    assert.equal(row.completionTokens, 30)
  })

  test('an error event after the first content is still seen: the row says 502; the same stream without it says 200', async () => {
    const { chunks } = await rawStream(port, { authorization: `Bearer ${key}`, 'x-request-id': 'relay-3' }, body({}, 'mode:error'))
    assert.ok(chunks.join('').includes('the model is overloaded'), chunks.join(''))
    assert.equal((await ledgerRow(tg.gw, 'relay-3')).status, 502)
    await rawStream(port, { authorization: `Bearer ${key}`, 'x-request-id': 'relay-4' }, body())
    assert.equal((await ledgerRow(tg.gw, 'relay-4')).status, 200)
  })

  test('log-messages gets the whole streamed completion, taken from the deltas the relay did not parse', async () => {
    await rawStream(port, { authorization: `Bearer ${key}-logged`, 'x-request-id': 'relay-5' }, body())
    assert.equal(await tg.gw.ledger!.flush(10_000), true)
    const m = (await tg.gw.ledger!.store.messages()).find((r) => r.requestId === 'relay-5')
    assert.ok(m, 'logged')
    assert.equal(m.completion, PIECES.join(''))
  })
})
