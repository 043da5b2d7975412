import { describe, it, before, after } from 'node:test'
import assert from 'node:assert/strict'
import net from 'node:net'
import OpenAI, { toFile } from 'openai'
import { startMockServer, type MockServer } from '../src/mock/llm.ts'
import { startTestGateway, type TestGateway } from './helpers/gateway.ts'

const KEY = 'sk-files-bad-input-a'
const BOUNDARY = '----sluiceTestBoundary7MA4YWxkTrZu0gW'
const LIMIT = 64 * 1024

/** The opening of a multipart upload (purpose field, then the file part's headers). */
function multipartHead(): string {
  return `--${BOUNDARY}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="big.jsonl"\r\nContent-Type: application/jsonl\r\n\r\n`
}

interface RawAnswer { status: number | null; text: string; closed: boolean }

/**
 * Speaks HTTP/1.1 by hand: sends the head and `body`, then either waits for the answer or (`cut`) closes the
 * write side / destroys the socket before the declared body is complete.
 */
function rawUpload(url: string, head: Record<string, string>, body: Buffer, opts: { cut?: 'end' | 'destroy'; timeoutMs?: number } = {}): Promise<RawAnswer> {
  const u = new URL(url)
  return new Promise((resolve) => {
    const s = net.connect(Number(u.port), u.hostname)
    let text = ''
    const timer = setTimeout(() => { s.destroy(); resolve({ status: null, text, closed: false }) }, opts.timeoutMs ?? 10_000)
    s.on('data', (c) => { text += c.toString('latin1') })
    s.on('error', () => {})
    s.on('close', () => {
      clearTimeout(timer)
      const m = /^HTTP\/1\.1 (\d{3})/.exec(text)
      resolve({ status: m ? Number(m[1]) : null, text, closed: true })
    })
    s.on('connect', () => {
      const lines = [`POST /v1/files HTTP/1.1`, `Host: ${u.host}`, ...Object.entries(head).map(([k, v]) => `${k}: ${v}`), '', '']
      s.write(lines.join('\r\n'))
      s.write(body)
      if (opts.cut === 'end') s.end()
      else if (opts.cut === 'destroy') setTimeout(() => s.destroy(), 50)
    })
  })
}

describe('files: bad input', () => {
  let mock: MockServer
  let gw: TestGateway
  let client: OpenAI

  /** Files the backend holds (read from the mock directly: what the gateway let through). */
  const backendFiles = async (): Promise<number> => {
    const r = await fetch(`${mock.url}/v1/files`, { headers: { authorization: 'Bearer test' } })
    return ((await r.json()) as { data: unknown[] }).data.length
  }
  const alive = async () => assert.equal((await fetch(`${gw.url}/healthz`)).status, 200)

  before(async () => {
    mock = await startMockServer()
    gw = await startTestGateway(`
backends:
  - { id: oai, type: openai, url: ${mock.url}/v1, auth: { apiKey: sk-backend-bad-input } }
files: { backend: oai, maxUploadBytes: ${LIMIT} }
products: [ { id: standard } ]
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY} } ] }
`)
    client = new OpenAI({ apiKey: KEY, baseURL: `${gw.url}/v1`, maxRetries: 0 })
  })
  after(async () => {
    await gw.close()
    await mock.close()
  })

  it('a 2 GB upload declared is refused with 413 before its body is read (an upload under the limit passes)', async () => {
    const ok = await client.files.create({ file: await toFile(Buffer.from('{"a":1}\n'), 'ok.jsonl'), purpose: 'batch' })
    assert.match(ok.id, /^file-/)
    const before = mock.stats.requests
    const filesBefore = await backendFiles()
    const t0 = Date.now()
    const res = await rawUpload(gw.url, {
      authorization: `Bearer ${KEY}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(2 * 1024 ** 3),
    }, Buffer.from(multipartHead()))
    assert.equal(res.status, 413)
    assert.match(res.text, /"code":"request_too_large"/)
    assert.match(res.text, /connection: close/i)
    assert.ok(res.closed, 'the gateway closed the connection rather than drain 2 GB')
    assert.ok(Date.now() - t0 < 5_000)
    assert.equal(mock.stats.requests - before, 1, 'only the listing above reached the backend') // backendFiles() itself
    assert.equal(await backendFiles(), filesBefore)
    await alive()
  })

  it('a streamed (chunked) upload past the limit is cut with 413 and nothing is stored', async () => {
    const filesBefore = await backendFiles()
    const payload = Buffer.concat([Buffer.from(multipartHead()), Buffer.alloc(LIMIT + 10_000, 0x61), Buffer.from(`\r\n--${BOUNDARY}--\r\n`)])
    // Chunked framing by hand: 16 KiB chunks.
    const parts: Buffer[] = []
    for (let i = 0; i < payload.length; i += 16_384) {
      const c = payload.subarray(i, i + 16_384)
      parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'))
    }
    parts.push(Buffer.from('0\r\n\r\n'))
    const res = await rawUpload(gw.url, { authorization: `Bearer ${KEY}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'transfer-encoding': 'chunked' }, Buffer.concat(parts))
    assert.equal(res.status, 413)
    assert.match(res.text, /"code":"request_too_large"/)
    assert.equal(await backendFiles(), filesBefore)
    await alive()
  })

  it('a multipart body cut midway stores nothing, answers 400 when the client can still read, and the process lives', async () => {
    const filesBefore = await backendFiles()
    const head = { authorization: `Bearer ${KEY}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': '20000' }
    const partial = Buffer.concat([Buffer.from(multipartHead()), Buffer.alloc(3000, 0x62)])
    // The client stops sending and half-closes: it may still read the answer.
    const ended = await rawUpload(gw.url, head, partial, { cut: 'end' })
    // Node's parser meets the end of the stream inside the declared body: the documented 400, then close.
    assert.equal(ended.status, 400)
    assert.match(ended.text, /"code":"invalid_request_error"/)
    // The client vanishes mid-body.
    await rawUpload(gw.url, head, partial, { cut: 'destroy' })
    assert.equal(await backendFiles(), filesBefore, 'the backend kept no partial file')
    assert.ok(!(await client.files.list()).data.some((f) => f.filename === 'big.jsonl'))
    await alive()
    // And the gateway still uploads.
    const ok = await client.files.create({ file: await toFile(Buffer.from('{"b":2}\n'), 'after.jsonl'), purpose: 'batch' })
    assert.equal((await client.files.retrieve(ok.id)).filename, 'after.jsonl')
  })

  it('a multipart body complete in length but malformed is the backend\'s 400, nothing stored', async () => {
    const filesBefore = await backendFiles()
    const body = Buffer.concat([Buffer.from(multipartHead()), Buffer.from('no closing boundary')])
    const res = await rawUpload(gw.url, { authorization: `Bearer ${KEY}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}`, 'content-length': String(body.length), connection: 'close' }, body)
    assert.equal(res.status, 400)
    assert.equal(await backendFiles(), filesBefore)
  })

  it('an id that is not an id (or another consumer\'s) is 404 and never forwarded', async () => {
    const before = mock.stats.requests
    for (const id of ['..%2F..%2Fadmin', 'file-doesnotexist', 'x'.repeat(200)]) {
      const r = await fetch(`${gw.url}/v1/files/${id}`, { headers: { authorization: `Bearer ${KEY}` } })
      assert.equal(r.status, 404, id)
      assert.equal(((await r.json()) as { error: { code: string } }).error.code, 'not_found')
    }
    assert.equal(mock.stats.requests, before)
  })
})
