import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import http from 'node:http'
import net from 'node:net'
import { mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from '../helpers/process.ts'
import { rssMiB, startGatewayProcess, startHealthProbe, type ProbeStats } from './probe.ts'

/**
 * The abuse suite: a real `sluice start` process, hit as a hostile client would, on both planes, while a
 * worker thread probes /healthz every 20 ms. Every answer must carry the documented status and an
 * OpenAI-shaped error with an x-request-id; no answer and no log line may hold a key or a stack; the process
 * must stay up, /healthz under 100 ms throughout, and memory back on its plateau after repeated rounds.
 */

const KEY_A = 'sk-abuse-team-a-5f0c2e91d4'
const KEY_L = 'sk-abuse-limited-77aa01bc9e'
const BACKEND_KEY = 'sk-backend-SECRET-0b1c2d3e4f5a6b7c8d9e'
const AZURE_LIKE_KEY = '9f8e7d6c5b4a39281706f5e4d3c2b1a0'
const BODY_LIMIT = 2 * 1024 * 1024
const SECRETS = [KEY_A, KEY_L, BACKEND_KEY, AZURE_LIKE_KEY]

/** Stands in for a provider: echoes the gateway's credential in a 400 (as some do), or holds a slow stream. */
function fakeProvider(): http.Server {
  return http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => { body += d })
    req.on('end', () => {
      const model = (JSON.parse(body) as { model?: string }).model
      if (model === 'echo-4xx') {
        res.writeHead(400, { 'content-type': 'application/json' })
        res.end(JSON.stringify({
          error: { message: `Incorrect API key provided: ${req.headers.authorization}. Also ${AZURE_LIKE_KEY}.`, type: 'invalid_request_error', code: 'invalid_api_key', param: null, internal: { trace: 'at Object.<anonymous> (/srv/provider.js:1:1)' } },
          debug: { key: BACKEND_KEY },
        }))
        return
      }
      // 'hold': a stream that sends content at once, then a token every 100 ms for 20 s.
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      let i = 0
      const frame = () => `data: ${JSON.stringify({ id: 'x', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: `t${i++} ` }, finish_reason: null }] })}\n\n`
      res.write(frame())
      const t = setInterval(() => { if (i > 200) { clearInterval(t); res.end('data: [DONE]\n\n') } else res.write(frame()) }, 100)
      res.on('close', () => clearInterval(t))
    })
  })
}

interface Answer { status: number; headers: http.IncomingHttpHeaders; text: string }

function send(url: string, method: string, path: string, opts: { headers?: Record<string, string>; body?: string | Buffer; onHeaders?: () => void } = {}, tries = 3): Promise<Answer> {
  return sendOnce(url, method, path, opts).catch((err: NodeJS.ErrnoException) => {
    // A refusal sent before the upload was read closes the connection under the writer; when the reset
    // overtakes the answer (a race on loopback) the client never sees it, so the same request is sent again.
    if (tries > 1 && (err.code === 'EPIPE' || err.code === 'ECONNRESET')) return send(url, method, path, opts, tries - 1)
    throw err
  })
}

function sendOnce(url: string, method: string, path: string, opts: { headers?: Record<string, string>; body?: string | Buffer; onHeaders?: () => void }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, url)
    let answered: Answer | null = null
    const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, headers: opts.headers, agent: false }, (res) => {
      opts.onHeaders?.()
      const chunks: Buffer[] = []
      answered = { status: res.statusCode!, headers: res.headers, text: '' }
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ ...answered!, text: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', () => resolve({ ...answered!, text: Buffer.concat(chunks).toString('utf8') }))
    })
    // A gateway that answers before reading the whole upload closes the connection under the writer: the
    // answer already received is what counts.
    req.on('error', (err) => { if (answered === null) reject(err) })
    req.end(opts.body)
  })
}

/** Sends only the headers of a POST declaring `length` bytes, and reads the answer off the raw socket. */
function declaredOnly(url: string, path: string, length: number, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const socket = net.connect(Number(u.port), u.hostname)
    let text = ''
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      text += d
      const end = text.indexOf('\r\n\r\n')
      const len = /content-length: (\d+)/i.exec(text)?.[1]
      if (end > 0 && len && text.length >= end + 4 + Number(len)) {
        socket.destroy()
        const head = text.slice(0, end).split('\r\n')
        const hs: http.IncomingHttpHeaders = {}
        for (const line of head.slice(1)) { const i = line.indexOf(':'); hs[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim() }
        resolve({ status: Number(head[0]!.split(' ')[1]), headers: hs, text: text.slice(end + 4, end + 4 + Number(len)) })
      }
    })
    socket.on('error', reject)
    const lines = Object.entries({ host: 'x', ...headers, 'content-length': String(length) }).map(([k, v]) => `${k}: ${v}`).join('\r\n')
    socket.write(`POST ${path} HTTP/1.1\r\n${lines}\r\n\r\n`)
  })
}

/** An error answer as the contract has it: OpenAI-shaped, bounded, with an x-request-id and nothing secret. */
function assertErrorShape(a: Answer, status: number, code: string | null, what: string): void {
  assert.equal(a.status, status, `${what}: status (body ${a.text.slice(0, 200)})`)
  assert.ok(a.headers['x-request-id'], `${what}: x-request-id`)
  const body = JSON.parse(a.text) as { error?: { message?: unknown; type?: unknown; param?: unknown; code?: unknown } }
  assert.ok(body.error, `${what}: error envelope`)
  assert.equal(typeof body.error.message, 'string', `${what}: message`)
  assert.ok((body.error.message as string).length <= 600, `${what}: message bounded (${(body.error.message as string).length})`)
  assert.equal(typeof body.error.type, 'string', `${what}: type`)
  if (code !== null) assert.equal(body.error.code, code, `${what}: code`)
}

function assertClean(text: string, what: string): void {
  for (const s of SECRETS) assert.ok(!text.includes(s), `${what}: holds a key`)
  assert.ok(!/\n\s+at [^\n]+:\d+:\d+/.test(text) && !text.includes('"stack"'), `${what}: holds a stack`)
}

const json = (v: unknown) => JSON.stringify(v)
const deep = (n: number) => '{"model":"gpt-4o-mini","messages":[{"role":"user","content":' + '['.repeat(n) + ']'.repeat(n) + '}]}'
const chat = (extra: Record<string, unknown>) => json({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...extra })
const randomLetters = (n: number) => { let s = ''; for (let i = 0; i < n; i++) s += String.fromCharCode(97 + ((i * 7919 + (i >> 3) * 31) % 26)); return s }

describe('abuse: one hostile client cannot stall, fill or crash the gateway', { timeout: 240_000 }, () => {
  let dir: string
  let url: string
  let adminUrl: string
  let adminToken: string
  let gw: Awaited<ReturnType<typeof startGatewayProcess>>
  let provider: http.Server
  const answers: Answer[] = []
  const probes: ProbeStats[] = []

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-abuse-'))
    provider = fakeProvider()
    await new Promise<void>((r) => provider.listen(0, '127.0.0.1', () => r()))
    const providerPort = (provider.address() as net.AddressInfo).port
    const [port, adminPort] = [await freePort(), await freePort()]
    const file = join(dir, 'sluice.yaml')
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: ${port}, bodyLimit: ${BODY_LIMIT}, requestTimeout: 1500ms, headersTimeout: 1000ms, maxBodyBytesInFlight: 4MiB, maxJsonDepth: 64 }
admin: { host: 127.0.0.1, port: ${adminPort}, allowedHosts: [gateway-admin.internal] }
logging: { level: info }
ledger: { type: sqlite, path: ${join(dir, 'ledger.db')} }
requestLimits: { maxInflightPerConsumer: 20, maxStreamDuration: 3s }
backends:
  - { id: mock, type: mock }
  - { id: slowmock, type: mock, ttft: 10ms, tokensPerSecond: 20 }
  - id: provider
    type: openai-compatible
    url: http://127.0.0.1:${providerPort}/v1
    auth: { apiKey: ${BACKEND_KEY} }
    maxConnections: 1
    timeout: 800ms
models:
  - { name: gpt-4o-mini, target: mock }
  - { name: text-embedding-3-small, target: mock }
  - { name: echo-4xx, target: provider, maxAttempts: 1 }
  - { name: hold, target: provider, maxAttempts: 1 }
  - { name: slow, target: slowmock }
products:
  - id: standard
    policies:
      - token-limit: { counterKey: 'request.headers["x-team"]', tokensPerMinute: 100000000 }
      - log-messages: { maxChars: 4096 }
consumers:
  - { id: team-a, product: standard, keys: [ { value: ${KEY_A} } ] }
  - { id: limited, product: standard, maxInflight: 2, keys: [ { value: ${KEY_L} } ] }
`)
    gw = await startGatewayProcess(file)
    url = `http://127.0.0.1:${port}`
    adminUrl = `http://127.0.0.1:${adminPort}`
    const m = /admin token \(generated[^)]*\): (\S+)/.exec(gw.stderr())
    assert.ok(m, `a generated admin token is printed at start:\n${gw.stderr()}`)
    adminToken = m[1]!
    assert.ok(!gw.stdout().includes(adminToken), 'the generated token is printed once, on stderr, never in the log')
  })

  after(async () => {
    gw?.child.kill('SIGTERM')
    await gw?.exited
    await new Promise<void>((r) => provider?.close(() => r()))
    provider?.closeAllConnections()
    rmSync(dir, { recursive: true, force: true })
  })

  const auth = (key = KEY_A) => ({ authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-team': 't'.repeat(5000) })
  const DATA_POST = ['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/responses', '/openai/deployments/gpt-4o-mini/chat/completions', '/openai/deployments/gpt-4o-mini/completions', '/openai/deployments/text-embedding-3-small/embeddings']

  /** One round of the corpus on every route of both planes; returns when every answer has been checked. */
  async function corpusRound(): Promise<void> {
    const check = async (what: string, p: Promise<Answer>, status: number, code: string | null) => {
      const a = await p
      answers.push(a)
      assertErrorShape(a, status, code, what)
    }
    for (const path of DATA_POST) {
      // Keyless: refused from the headers, whatever the body.
      await check(`${path} keyless`, send(url, 'POST', path, { headers: { 'content-type': 'application/json' }, body: chat({ model: 'x'.repeat(100_000) }) }), 401, 'invalid_api_key')
      await check(`${path} wrong key`, send(url, 'POST', path, { headers: { authorization: 'Bearer sk-nobody', 'content-type': 'application/json' }, body: '{' }), 401, 'invalid_api_key')
      // Malformed, truncated, empty, wrongly typed, too deep, too big.
      for (const [name, body] of [['malformed', '{"model":'], ['truncated', chat({}).slice(0, 30)], ['nul bytes', '\u0000\u0000'], ['not an object', '[1,2,3]'], ['a number', '42'], ['empty', '']] as const) {
        await check(`${path} ${name}`, send(url, 'POST', path, { headers: auth(), body }), 400, 'invalid_request_error')
      }
      await check(`${path} nested 2000`, send(url, 'POST', path, { headers: auth(), body: deep(2000) }), 400, 'invalid_request_error')
      await check(`${path} 65 levels, over maxJsonDepth 64`, send(url, 'POST', path, { headers: auth(), body: deep(65) }), 400, 'invalid_request_error')
      // Declared over the limit: refused from the headers (the gateway closes the connection, so no body is sent).
      await check(`${path} over the body limit`, declaredOnly(url, path, BODY_LIMIT + 1, auth()), 413, 'request_too_large')
      await check(`${path} wrong method`, send(url, 'GET', path, { headers: auth() }), 405, 'method_not_allowed')
      await check(`${path} DELETE`, send(url, 'DELETE', path, { headers: auth() }), 405, 'method_not_allowed')
    }
    // Wrongly typed fields and absurd asks on the routes that take them.
    for (const [name, body, param] of [
      ['model a number', json({ model: 123, messages: [{ role: 'user', content: 'x' }] }), 'model'],
      ['messages a string', json({ model: 'gpt-4o-mini', messages: 'x' }), 'messages'],
      ['message not an object', json({ model: 'gpt-4o-mini', messages: [1] }), 'messages'],
      ['stream a string', chat({ stream: 'yes' }), 'stream'],
      ['max_tokens negative', chat({ max_tokens: -1 }), 'max_tokens'],
      ['max_tokens 1e12', chat({ max_tokens: 1e12 }), 'max_tokens'],
      ['n 1e9', chat({ n: 1e9 }), 'n'],
    ] as const) {
      const a = await send(url, 'POST', '/v1/chat/completions', { headers: auth(), body })
      answers.push(a)
      assertErrorShape(a, 400, 'invalid_request_error', name)
      assert.equal((JSON.parse(a.text) as { error: { param: string } }).error.param, param, name)
    }
    // A 1.5 MB model name: 404 with the name cut in the message, recorded as __unknown__.
    const huge = await send(url, 'POST', '/v1/chat/completions', { headers: auth(), body: chat({ model: 'm'.repeat(1_500_000) }) })
    answers.push(huge)
    assertErrorShape(huge, 404, 'model_not_found', 'huge model')
    // The quadratic-tokenizer prompts and the backtracking redaction input: answered, and fast (see the probe).
    for (const [name, content] of [['60k repeated letters', 'a'.repeat(60_000)], ['100k letters', randomLetters(100_000)], ['a.a.a. x 60KB', 'a.'.repeat(30_000)]] as const) {
      const a = await send(url, 'POST', '/v1/chat/completions', { headers: auth(), body: chat({ messages: [{ role: 'user', content }], max_tokens: 4 }) })
      answers.push(a)
      assert.equal(a.status, 200, `${name}: ${a.text.slice(0, 200)}`)
    }
    // Paired with the refusals above: a plain request on each route is served.
    for (const [path, body] of [['/v1/chat/completions', chat({ max_tokens: 4 })], ['/v1/embeddings', json({ model: 'text-embedding-3-small', input: 'x' })], ['/v1/completions', json({ model: 'gpt-4o-mini', prompt: 'x', max_tokens: 4 })]] as const) {
      const a = await send(url, 'POST', path, { headers: auth(), body })
      answers.push(a)
      assert.equal(a.status, 200, `${path} served: ${a.text.slice(0, 200)}`)
    }
    // GET routes of the data plane.
    await check('models keyless', send(url, 'GET', '/v1/models'), 401, 'invalid_api_key')
    await check('model huge name', send(url, 'GET', `/v1/models/${'z'.repeat(8000)}`, { headers: auth() }), 414, 'uri_too_long')
    await check('model unknown name', send(url, 'GET', `/v1/models/${'z'.repeat(200)}`, { headers: auth() }), 404, 'model_not_found')
    await check('deployment huge name', send(url, 'POST', `/openai/deployments/${'d'.repeat(3000)}/chat/completions`, { headers: auth(), body: chat({}) }), 414, 'uri_too_long')
    await check('unknown path', send(url, 'GET', `/v1/${'p'.repeat(8000)}`), 404, 'not_found')
    await check('healthz POST', send(url, 'POST', '/healthz', { body: '{}' }), 405, 'method_not_allowed')
    // The admin plane: Host first, then the token (header only), then the body.
    const adm = (method: string, path: string, o: { host?: string; token?: string | null; body?: string; type?: string } = {}) => send(adminUrl, method, path, {
      headers: { ...(o.host ? { host: o.host } : {}), ...(o.token === null ? {} : { authorization: `Bearer ${o.token ?? adminToken}` }), ...(o.body !== undefined ? { 'content-type': o.type ?? 'application/json' } : {}) },
      body: o.body,
    })
    for (const path of ['/admin/config', '/admin/backends', '/admin/consumers', '/admin/keys', '/admin/usage?by=consumer', '/metrics', '/admin/limits?key=team-a']) {
      await check(`${path} rebinding host`, adm('GET', path, { host: 'attacker.example' }), 403, 'host_not_allowed')
      await check(`${path} no token`, adm('GET', path, { token: null }), 401, 'invalid_admin_token')
      await check(`${path} token in the query`, adm('GET', `${path}${path.includes('?') ? '&' : '?'}token=${adminToken}`, { token: null }), 401, 'invalid_admin_token')
      const ok = await adm('GET', path)
      assert.equal(ok.status, 200, `${path} with the token: ${ok.text.slice(0, 200)}`)
      answers.push(ok)
      const named = await adm('GET', path, { host: 'gateway-admin.internal:8081' })
      assert.equal(named.status, 200, `${path} under a configured host name`)
    }
    await check('admin keys rebinding POST', adm('POST', '/admin/keys', { host: 'attacker.example', body: json({ consumer: 'team-a' }) }), 403, 'host_not_allowed')
    await check('admin keys malformed', adm('POST', '/admin/keys', { body: '{"consumer":' }), 400, 'invalid_request_error')
    await check('admin keys deep', adm('POST', '/admin/keys', { body: '{"consumer":' + '['.repeat(3000) + ']'.repeat(3000) + '}' }), 400, 'invalid_request_error')
    await check('admin keys wrongly typed', adm('POST', '/admin/keys', { body: json({ consumer: ['team-a'] }) }), 400, 'invalid_request_error')
    await check('admin keys oversize', adm('POST', '/admin/keys', { body: json({ consumer: 'team-a', label: 'l'.repeat(1_100_000) }) }), 413, 'request_too_large')
    await check('admin keys text body', adm('POST', '/admin/keys', { body: 'consumer=team-a', type: 'text/plain' }), 400, 'invalid_request_error')
    await check('admin keys wrong method', adm('PUT', '/admin/keys', { body: '{}' }), 405, 'method_not_allowed')
    await check('admin revoke unknown', adm('DELETE', `/admin/keys/${'k'.repeat(90)}`), 404, 'not_found')
    await check('admin revoke huge id', adm('DELETE', `/admin/keys/${'k'.repeat(5000)}`), 414, 'uri_too_long')
    await check('admin unknown path', adm('GET', `/admin/${'q'.repeat(3000)}`), 404, 'not_found')
    const created = await adm('POST', '/admin/keys', { body: json({ consumer: 'team-a', label: 'abuse' }) })
    assert.equal(created.status, 201, created.text)
  }

  it('answers the whole corpus with documented errors, keeps /healthz under 100 ms, and its memory on a plateau', async () => {
    // Every 5 ms: the corpus now runs in under a second, and a 20 ms probe came to fewer than the 50 probes asked below.
    const probe = startHealthProbe(url, { pid: gw.child.pid!, intervalMs: 5 })
    let plateau: number
    let afterRounds: number
    try {
      await corpusRound()
      plateau = rssMiB(gw.child.pid!)
      for (let round = 0; round < 3; round++) await corpusRound()
      afterRounds = rssMiB(gw.child.pid!)
    } finally {
      probes.push(await probe.stop()) // also when a check failed: a running probe would keep the test process alive
    }
    const p = probes[0]!
    assert.ok(p.count > 50, `the probe ran (${p.count} probes)`)
    assert.equal(p.failures, 0, 'every /healthz probe answered 200')
    // Wall-clock bound that holds on the shared, loaded 2-core machine; the 100 ms target is the next test.
    assert.ok(p.max < 3000, `/healthz never stalled for seconds (max ${p.max.toFixed(1)} ms)`)
    // Three more rounds of megabyte bodies leave the process where the first round did (within GC slack).
    assert.ok(afterRounds < plateau + 80, `memory back on its plateau: ${plateau.toFixed(0)} MiB after round 1, ${afterRounds.toFixed(0)} MiB after 4`)
    for (const a of answers) assertClean(a.text + JSON.stringify(a.headers), 'an answer')
    // Client-chosen strings were cut before they were stored: 8 × 1.5 MB model names left a small ledger.
    const ledgerBytes = ['ledger.db', 'ledger.db-wal'].reduce((n, f) => n + (existsSync(join(dir, f)) ? statSync(join(dir, f)).size : 0), 0)
    assert.ok(ledgerBytes < 4 * 1024 * 1024, `ledger stayed small (${ledgerBytes} bytes)`)
  })

  // The 100 ms bound, told apart from the scheduler: on a shared 2-core machine a probe can wait because the
  // gateway was not running at all. A probe over 100 ms during which the gateway's own main thread ran for
  // 100 ms or more is the gateway blocking its event loop on something a client sent (as the first
  // embeddings request did when it loaded a second tokenizer synchronously: 0.4-0.5 s of its own CPU).
  it('kept /healthz under 100 ms throughout the corpus, save for time the gateway was not scheduled', () => {
    const p = probes[0]
    assert.ok(p, 'the corpus ran to its end')
    assert.ok(p.count > 50 && p.maxOwnCpu > 0, `the probe read the gateway's own CPU time (${p.count} probes, longest own stretch ${p.maxOwnCpu.toFixed(1)} ms)`)
    assert.equal(p.ownOver, 0, `/healthz waited 100 ms or more on the gateway's own work: ${p.ownSamples.join(', ')} (all probes over 100 ms: ${p.samples.join(', ')})`)
  })

  it('rebuilds a backend 4xx from known fields: the echoed credential never reaches the client', async () => {
    const a = await send(url, 'POST', '/v1/chat/completions', { headers: auth(), body: chat({ model: 'echo-4xx' }) })
    assertErrorShape(a, 400, 'invalid_api_key', 'backend 400')
    assertClean(a.text, 'backend 400')
    const body = JSON.parse(a.text) as Record<string, unknown> & { error: Record<string, unknown> }
    assert.deepEqual(Object.keys(body), ['error'])
    assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message', 'param', 'type'])
    assert.match(body.error.message as string, /^Incorrect API key provided: Bearer \[REDACTED/)
  })

  it('times the whole attempt: a request waiting for a connection another consumer holds gets its 504; a long stream is cut', async () => {
    // team-a's stream holds the provider's only connection.
    const streamStart = Date.now()
    let hogStreaming!: () => void
    const streaming = new Promise<void>((r) => { hogStreaming = r })
    const hog = send(url, 'POST', '/v1/chat/completions', { headers: auth(), body: json({ model: 'hold', stream: true, messages: [{ role: 'user', content: 'x' }] }), onHeaders: () => hogStreaming() })
    await streaming // its stream has committed: it holds the connection
    const t0 = Date.now()
    const waiter = await send(url, 'POST', '/v1/chat/completions', { headers: auth(KEY_L), body: json({ model: 'hold', messages: [{ role: 'user', content: 'x' }] }) })
    const waited = Date.now() - t0
    assertErrorShape(waiter, 504, 'gateway_timeout', 'connection wait')
    assert.ok(waited >= 700 && waited < 2500, `504 after the backend's 800 ms timeout, connection wait included (${waited} ms)`)
    const cut = await hog
    const lasted = Date.now() - streamStart
    assert.equal(cut.status, 200)
    assert.match(cut.text, /"code":"stream_duration_exceeded"/)
    assert.ok(lasted >= 2800 && lasted < 6000, `the stream was ended at requestLimits.maxStreamDuration (3 s): ${lasted} ms`)
  })

  it('limits requests in flight per consumer: the third concurrent one is refused, the next after one ends is served', async () => {
    const started: Promise<void>[] = []
    const streams = [0, 1].map(() => {
      let up!: () => void
      started.push(new Promise<void>((r) => { up = r }))
      return send(url, 'POST', '/v1/chat/completions', { headers: auth(KEY_L), body: json({ model: 'slow', stream: true, max_tokens: 30, messages: [{ role: 'user', content: 'x' }] }), onHeaders: () => up() })
    })
    await Promise.all(started) // both streams are answering: both are in flight
    const third = await send(url, 'POST', '/v1/chat/completions', { headers: auth(KEY_L), body: chat({ max_tokens: 2 }) })
    assertErrorShape(third, 429, 'too_many_concurrent_requests', 'third in flight')
    const other = await send(url, 'POST', '/v1/chat/completions', { headers: auth(), body: chat({ max_tokens: 2 }) })
    assert.equal(other.status, 200, 'another consumer is not affected')
    for (const s of await Promise.all(streams)) assert.equal(s.status, 200)
    const next = await send(url, 'POST', '/v1/chat/completions', { headers: auth(KEY_L), body: chat({ max_tokens: 2 }) })
    assert.equal(next.status, 200, 'admitted again once its streams ended')
  })

  it('never logs a key or a stack, and cuts what it logs', () => {
    const out = gw.stdout()
    assert.ok(out.includes('"msg":"request"'), 'the access log was written')
    assertClean(out, 'the log')
    for (const line of out.split('\n')) assert.ok(line.length < 8192, `a log line of ${line.length} characters`)
    assert.equal(gw.child.exitCode, null, 'the process is alive')
  })
})

describe('abuse: connections that stall, trickle or break HTTP', { timeout: 120_000 }, () => {
  let dir: string
  let port: number
  let gw: Awaited<ReturnType<typeof startGatewayProcess>>

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sluice-abuse-conn-'))
    port = await freePort()
    const file = join(dir, 'sluice.yaml')
    writeFileSync(file, `
listen: { host: 127.0.0.1, port: ${port}, bodyLimit: 10MiB, requestTimeout: 1500ms, headersTimeout: 1000ms, maxBodyBytesInFlight: 20MiB }
admin: { enabled: false }
logging: { level: info }
ledger: { type: none }
backends: [ { id: mock, type: mock } ]
models: [ { name: gpt-4o-mini, target: mock } ]
consumers: [ { id: team-a, keys: [ { value: ${KEY_A} } ] } ]
`)
    gw = await startGatewayProcess(file)
  })
  after(async () => {
    gw?.child.kill('SIGTERM')
    await gw?.exited
    rmSync(dir, { recursive: true, force: true })
  })

  /** Opens a raw connection, writes `head` (and `body`), and resolves with what came back and when the socket closed. */
  function raw(head: string, body: Buffer | null = null): { done: Promise<{ text: string; closedAfterMs: number; answeredAfterMs: number }>; socket: net.Socket } {
    const socket = net.connect(port, '127.0.0.1')
    const t0 = Date.now()
    let text = ''
    let answeredAt = -1
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => { if (answeredAt < 0) answeredAt = Date.now(); text += d })
    socket.on('error', () => {})
    socket.write(head)
    if (body) socket.write(body)
    const done = new Promise<{ text: string; closedAfterMs: number; answeredAfterMs: number }>((resolve) => socket.once('close', () => resolve({ text, closedAfterMs: Date.now() - t0, answeredAfterMs: answeredAt - t0 })))
    return { done, socket }
  }
  const statusOf = (text: string) => Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1])
  const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf("\r\n\r\n") + 4)) as { error: { code: string; message: string; type: string } }
  const declare = (len: number, key: string | null) => `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: ${len}\r\n${key ? `authorization: Bearer ${key}\r\n` : ''}\r\n`

  it('keyless uploads are refused from their headers and their connections closed: they hold no memory', async () => {
    // Warm-up: the first refusal compiles its code path (sources run through tsx); that is start-up, not abuse.
    assert.equal(statusOf((await raw(declare(100, null), Buffer.alloc(100, 0x61)).done).text), 401)
    const probe = startHealthProbe(`http://127.0.0.1:${port}`, { pid: gw.child.pid! })
    const base = rssMiB(gw.child.pid!)
    const conns = Array.from({ length: 30 }, () => raw(declare(9 * 1024 * 1024, null), Buffer.alloc(1024 * 1024, 0x61)))
    const results = await Promise.all(conns.map((c) => c.done))
    const peak = rssMiB(gw.child.pid!)
    // Each connection either read its 401 or was reset by the close before it read it (the client was still
    // writing megabytes): never left open waiting for the body.
    const answered = results.filter((r) => r.text !== '')
    assert.ok(answered.length >= 1, 'refusals were answered')
    for (const r of answered) {
      assert.equal(statusOf(r.text), 401, `answered (${r.text.slice(0, 80)})`)
      assert.equal(bodyOf(r.text).error.code, 'invalid_api_key')
      assert.match(r.text, /x-request-id: /i)
    }
    for (const r of results) {
      // Answered before the body could have been read, and closed right after (not at the 1.5 s request timeout).
      assert.ok(r.closedAfterMs < 4000 && (r.answeredAfterMs < 0 || r.closedAfterMs - r.answeredAfterMs < 2000), `closed by the gateway right after its answer (answered ${r.answeredAfterMs} ms, closed ${r.closedAfterMs} ms)`)
    }
    assert.ok(peak < base + 100, `30 keyless 9 MiB uploads held no memory (${base.toFixed(0)} → ${peak.toFixed(0)} MiB)`)
    const p = await probe.stop()
    assert.equal(p.failures, 0)
    assert.ok(p.max < 3000, `/healthz never stalled for seconds (max ${p.max.toFixed(1)} ms)`)
    assert.equal(p.ownOver, 0, `/healthz waited 100 ms or more on the gateway's own work: ${p.ownSamples.join(', ')}`)
  })

  it('a stalled body is cut at requestTimeout with a 408; the bytes being read at once are bounded (503), and free again after', async () => {
    // Two keyed uploads that declare 10 MiB each and stall after 1 MiB fill the 20 MiB budget…
    const stalled = [0, 1].map(() => raw(declare(10 * 1024 * 1024, KEY_A), Buffer.alloc(1024 * 1024, 0x20)))
    // …so another is refused at once, before its body is read. Polled: an upload still admitted (the stalled
    // ones' headers not read yet) gets no answer within 150 ms and is dropped, which frees its reservation.
    const tryBusy = () => new Promise<{ status: number; code: string; ms: number } | null>((resolve) => {
      const t0 = Date.now()
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', agent: false, headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json', 'content-length': String(5 * 1024 * 1024) } }, (res) => {
        let b = ''
        res.on('data', (d) => { b += d })
        res.on('end', () => { clearTimeout(t); resolve({ status: res.statusCode!, code: (JSON.parse(b) as { error: { code: string } }).error.code, ms: Date.now() - t0 }) })
      })
      const t = setTimeout(() => { req.destroy(); resolve(null) }, 150)
      req.on('error', () => {})
      req.write('{')
    })
    let busy: { status: number; code: string; ms: number } | null = null
    for (const deadline = Date.now() + 3000; busy === null && Date.now() < deadline;) busy = await tryBusy()
    assert.ok(busy, 'an upload was refused while the budget was full')
    assert.equal(busy.status, 503)
    assert.equal(busy.code, 'server_busy')
    assert.ok(busy.ms < 1000, `refused at once (${busy.ms} ms)`)
    const cut = await Promise.all(stalled.map((s) => s.done))
    for (const c of cut) {
      assert.equal(statusOf(c.text), 408, c.text.slice(0, 200))
      assert.equal(bodyOf(c.text).error.code, 'request_timeout')
      assert.match(c.text, /x-request-id: /i)
      assert.ok(c.closedAfterMs >= 1400 && c.closedAfterMs < 4000, `cut at the 1.5 s request timeout (${c.closedAfterMs} ms)`)
    }
    // The budget is free again: a whole request is served.
    const ok = await send(`http://127.0.0.1:${port}`, 'POST', '/v1/chat/completions', { headers: { authorization: `Bearer ${KEY_A}`, 'content-type': 'application/json' }, body: chat({ max_tokens: 2 }) })
    assert.equal(ok.status, 200, ok.text)
  })

  it('slowloris headers get a 408, oversize headers a 431, broken HTTP a 400: OpenAI-shaped, with x-request-id', async () => {
    const slow = raw('POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n')
    const trickle = setInterval(() => slow.socket.write('x-b: 1\r\n'), 200)
    const s = await slow.done
    clearInterval(trickle)
    assert.equal(statusOf(s.text), 408)
    assert.equal(bodyOf(s.text).error.code, 'request_timeout')
    assert.ok(s.closedAfterMs >= 900 && s.closedAfterMs < 4000, `cut at the 1 s headers timeout (${s.closedAfterMs} ms)`)
    const big = await raw(`GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: ${'b'.repeat(20_000)}\r\n\r\n`).done
    assert.equal(statusOf(big.text), 431)
    assert.equal(bodyOf(big.text).error.code, 'request_header_fields_too_large')
    assert.match(big.text, /x-request-id: /i)
    const broken = await raw('GARBAGE / NOPE\r\n\r\n').done
    assert.equal(statusOf(broken.text), 400)
    assert.equal(bodyOf(broken.text).error.type, 'invalid_request_error')
    assert.match(broken.text, /x-request-id: /i)
    // Paired: a well-formed request on a fresh connection is answered.
    const fine = await raw('GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n').done
    assert.equal(statusOf(fine.text), 200)
    assert.equal(gw.child.exitCode, null)
    assertClean(gw.stdout(), 'the log')
  })
})
