import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { spawn } from 'node:child_process'
import http from 'node:http'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { Redis } from 'ioredis'
import { TEST_KEY, TEST_KEY_B, serviceAvailable } from './helpers/gateway.ts'
import { spawnGateway, type GatewayProcess } from './helpers/process.ts'
import { parseProm, sumOf } from './helpers/prom.ts'

// `sluice start` with listen.workers: 2, real processes on a real Redis (src/cluster/).
const ADMIN_TOKEN = 'test-admin-token-workers'
const admin = { authorization: `Bearer ${ADMIN_TOKEN}` }
// Hand-derived (as in token-limit-multiprocess.test.ts): the message { role: 'user', content: 'Say hello.' } is
// 10 prompt tokens for gpt-4o-mini (3 per message + 3 priming + 'user' 1 + 'Say| hello|.' 3); with max_tokens: 16
// the mock writes 16, so each request reserves and is charged exactly 26. A 3000-token minute admits
// floor(3000 / 26) = 115 of them (2990 tokens) and refuses every other.
const TPM = 3000
const PER_REQUEST = 26
const ADMITTED = 115
const STORM = 140

const redisUp = await serviceAvailable('redis')
const dir = mkdtempSync(join(tmpdir(), 'sluice-workers-'))
const prefix = `sluice-workers-${randomUUID().slice(0, 8)}:`
const configFile = join(dir, 'sluice.yaml')
const running: GatewayProcess[] = []

function configText(extraModels: string[] = [], broken = false): string {
  return `
listen: { host: 127.0.0.1, port: 0, workers: 2, shutdownGrace: 20s }
admin: { host: 127.0.0.1, port: 0, token: ${ADMIN_TOKEN} }
store: { type: redis, url: "redis://127.0.0.1:6379", keyPrefix: "${prefix}", commandTimeout: 10s }
ledger: { type: sqlite, path: ${JSON.stringify(join(dir, 'ledger.db'))}, flushInterval: 50ms }
logging: { level: warn }
backends:
  - { id: mock-a, type: mock, completionTokens: 16, latency: 5ms }
  - { id: mock-slow, type: mock, completionTokens: 16, tokensPerSecond: 10 }
models:
  - { name: gpt-4o-mini, target: mock-a }
  - { name: slow-stream, target: mock-slow }
${extraModels.map((m) => `  - { name: ${m}, target: mock-a }`).join('\n')}
${broken ? '  - { name: broken, target: no-such-backend }' : ''}
products:
  - id: limited
    policies:
      - token-limit: { counterKey: consumer.id, tokensPerMinute: ${TPM} }
consumers:
  - id: team-a
    keys: [ { value: ${TEST_KEY} } ]
  - id: team-b
    product: limited
    # The storm is about the shared token limit: node:cluster hands a connection to whichever worker is free,
    # so on a loaded machine one worker may hold more of the 140 than the default 100 in flight per consumer.
    maxInflight: 1000
    keys: [ { value: ${TEST_KEY_B} } ]
`
}

interface Answer { status: number; worker: string; body: any; requestId: string }

/** One request on its own connection (no keep-alive pool), so node:cluster hands each to the next worker. */
function post(base: string, path: string, body: unknown, key = TEST_KEY, requestId: string = randomUUID()): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}${path}`, {
      method: 'POST', agent: false,
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'x-request-id': requestId },
    }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d) => { text += d })
      res.on('end', () => {
        let parsed: unknown = text
        try { parsed = JSON.parse(text) } catch { /* kept as text */ }
        resolve({ status: res.statusCode!, worker: String(res.headers['x-sluice-worker'] ?? ''), body: parsed, requestId })
      })
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

const chat = (base: string, extra: Record<string, unknown> = {}, key = TEST_KEY, requestId?: string) =>
  post(base, '/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], ...extra }, key, requestId)

async function adminGet(gw: GatewayProcess, path: string): Promise<any> {
  const res = await fetch(`${gw.adminUrl}${path}`, { headers: admin })
  assert.equal(res.status, 200, `${path}: ${res.status}`)
  return path === '/metrics' ? res.text() : res.json()
}

/** Waits for a line of the gateway's output (fails past the deadline). */
async function waitOutput(gw: GatewayProcess, pattern: RegExp, ms = 60_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + ms
  while (Date.now() < deadline) {
    const m = pattern.exec(gw.output())
    if (m) return m
    if (gw.child.exitCode !== null) break
    await new Promise((r) => setTimeout(r, 25))
  }
  assert.fail(`never printed ${pattern}:\n${gw.output()}`)
}

/** Requests (one connection each) until both workers have answered; every answer is returned. */
async function untilBothWorkers(send: () => Promise<Answer>, max = 20): Promise<Answer[]> {
  const out: Answer[] = []
  for (let i = 0; i < max && new Set(out.map((a) => a.worker)).size < 2; i++) out.push(await send())
  assert.deepEqual(new Set(out.map((a) => a.worker)), new Set(['0', '1']), `answered by workers ${out.map((a) => a.worker)}`)
  return out
}

after(async () => {
  for (const p of running) if (p.child.exitCode === null) p.child.kill('SIGKILL')
  rmSync(dir, { recursive: true, force: true })
  if (redisUp) {
    const r = new Redis('redis://127.0.0.1:6379', { lazyConnect: true })
    await r.connect()
    const keys = await r.keys(`${prefix}*`)
    if (keys.length) await r.del(...keys)
    await r.quit()
  }
})

describe('listen.workers: 2 on Redis', { skip: !redisUp }, () => {
  let gw: GatewayProcess
  let pids: number[] = []
  const served = { '0': 0, '1': 0 } as Record<string, number>

  before(async () => {
    writeFileSync(configFile, configText())
    gw = await spawnGateway(configFile)
    running.push(gw)
  })

  it('answers from two worker processes, not the primary, each with its own journal slot in one SQLite ledger', { timeout: 60_000 }, async () => {
    assert.match(gw.output(), /2 workers \(pids \d+, \d+; primary \d+\)/)
    const v = await adminGet(gw, '/admin/workers')
    assert.equal(v.size, 2)
    assert.equal(v.primaryPid, gw.child.pid)
    pids = v.workers.map((w: { pid: number }) => w.pid)
    assert.deepEqual(v.workers.map((w: { index: number }) => w.index), [0, 1])
    assert.equal(new Set(pids).size, 2)
    assert.ok(!pids.includes(gw.child.pid!), 'the primary serves no requests')
    assert.deepEqual(v.missing, [])
    // Workers start with glibc's malloc arenas capped; the primary, started without a value, has none.
    const environ = (pid: number) => readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')
    const arenas = process.env.MALLOC_ARENA_MAX ?? '2'
    for (const pid of pids) assert.ok(environ(pid).includes(`MALLOC_ARENA_MAX=${arenas}`), `worker ${pid} has MALLOC_ARENA_MAX=${arenas}`)
    if (process.env.MALLOC_ARENA_MAX === undefined) {
      assert.ok(!environ(gw.child.pid!).some((e) => e.startsWith('MALLOC_ARENA_MAX=')), 'the primary was started without it')
    }

    const answers = await Promise.all(Array.from({ length: 20 }, () => chat(gw.url)))
    for (const a of answers) assert.equal(a.status, 200, JSON.stringify(a.body))
    for (const a of answers) served[a.worker] = (served[a.worker] ?? 0) + 1
    assert.ok(served['0']! > 0 && served['1']! > 0, `both workers answered: ${JSON.stringify(served)}`)
    assert.equal(served['0']! + served['1']!, 20)

    // Both workers write the one SQLite ledger (WAL, busy timeout): every request's row is there, from each writer.
    const db = new Database(join(dir, 'ledger.db'), { readonly: true, fileMustExist: true })
    try {
      const ids = answers.map((a) => a.requestId)
      let found: string[] = []
      const deadline = Date.now() + 15_000
      while (Date.now() < deadline) {
        found = (db.prepare(`SELECT request_id FROM usage_records WHERE request_id IN (${ids.map(() => '?').join(',')})`).all(...ids) as { request_id: string }[]).map((r) => r.request_id)
        if (found.length === ids.length) break
        await new Promise((r) => setTimeout(r, 50))
      }
      assert.deepEqual(new Set(found), new Set(ids), 'one ledger row per request')
      assert.equal(found.length, 20, 'and no duplicate')
    } finally {
      db.close()
    }
    // Each worker holds its own slot of the crash journal (the lock names its pid), so neither replays the other's.
    const lockPid = (slot: string) => JSON.parse(readFileSync(join(dir, 'journal', `ledger-${slot}.lock`), 'utf8')).pid
    assert.deepEqual([lockPid('w0'), lockPid('w1')], pids)
  })

  it('one token limit across both workers: exactly 115 requests of 26 tokens admitted in a 3000-token minute, the rest refused', { timeout: 120_000 }, async () => {
    const answers = await Promise.all(Array.from({ length: STORM }, () => chat(gw.url, { max_tokens: 16 }, TEST_KEY_B)))
    const ok = answers.filter((a) => a.status === 200)
    const refused = answers.filter((a) => a.status === 429)
    assert.equal(ok.length + refused.length, STORM, JSON.stringify(answers.filter((a) => a.status !== 200 && a.status !== 429).map((a) => [a.status, a.body])))
    for (const a of ok) assert.equal(a.body.usage.total_tokens, PER_REQUEST, 'the mock charged the hand-derived figure')
    assert.equal(ok.length, ADMITTED, `admitted ${ok.length}, expected exactly ${ADMITTED}`)
    assert.equal(refused.length, STORM - ADMITTED)
    for (const a of refused) assert.equal(a.body.error.code, 'rate_limit_exceeded')
    // Both workers admitted and both refused: one counter, not one each (each alone would admit 115).
    assert.deepEqual(new Set(ok.map((a) => a.worker)), new Set(['0', '1']))
    assert.ok(ADMITTED * PER_REQUEST <= TPM && (ADMITTED + 1) * PER_REQUEST > TPM)
    const limits = await adminGet(gw, '/admin/limits?key=team-b')
    assert.equal(limits.store, 'redis')
    assert.equal(limits.limits[0].windows[0].used, ADMITTED * PER_REQUEST)
    for (const a of ok) served[a.worker] = (served[a.worker] ?? 0) + 1
  })

  it('/metrics is one scrape over both workers: their request counts summed', { timeout: 60_000 }, async () => {
    const samples = parseProm(await adminGet(gw, '/metrics'))
    // 20 of team-a's requests, split between the workers (neither served all of them alone).
    assert.equal(sumOf(samples, 'sluice_requests_total', { consumer: 'team-a', status: '200' }), 20)
    assert.equal(sumOf(samples, 'sluice_requests_total', { consumer: 'team-b', status: '200' }), ADMITTED)
    assert.equal(sumOf(samples, 'sluice_tokens_total', { consumer: 'team-b', type: 'completion' }), ADMITTED * 16)
    const admitted = served['0']! + served['1']!
    assert.equal(admitted, 20 + ADMITTED)
    assert.ok(Math.max(served['0']!, served['1']!) < admitted, 'no single worker holds the total')
    // A gauge shared through the store (the circuit state) is not summed over the workers.
    for (const s of samples.filter((x) => x.name === 'sluice_backend_circuit_state')) assert.equal(s.value, 0)
  })

  it('a reload (admin API, then SIGHUP to the primary) reaches both workers; a refused one changes neither', { timeout: 120_000 }, async () => {
    const body = (model: string) => ({ model, messages: [{ role: 'user', content: 'Say hello.' }], max_tokens: 4 })
    // Before: neither worker knows the model.
    const before = await untilBothWorkers(() => post(gw.url, '/v1/chat/completions', body('added-by-api')))
    for (const a of before) assert.equal(a.status, 404, JSON.stringify(a.body))

    writeFileSync(configFile, configText(['added-by-api']))
    const res = await fetch(`${gw.adminUrl}/admin/config/reload`, { method: 'POST', headers: admin })
    assert.equal(res.status, 200, await res.clone().text())
    assert.equal(((await res.json()) as { status: string }).status, 'reloaded')
    const afterApi = await untilBothWorkers(() => post(gw.url, '/v1/chat/completions', body('added-by-api')))
    for (const a of afterApi) assert.equal(a.status, 200, JSON.stringify(a.body))

    writeFileSync(configFile, configText(['added-by-api', 'added-by-sighup']))
    const beforeHup = await untilBothWorkers(() => post(gw.url, '/v1/chat/completions', body('added-by-sighup')))
    for (const a of beforeHup) assert.equal(a.status, 404)
    const marks = gw.output().split('configuration reloaded on 2 workers').length
    gw.child.kill('SIGHUP')
    await waitOutput(gw, new RegExp(`(configuration reloaded on 2 workers[\\s\\S]*){${marks}}`))
    const afterHup = await untilBothWorkers(() => post(gw.url, '/v1/chat/completions', body('added-by-sighup')))
    for (const a of afterHup) assert.equal(a.status, 200, JSON.stringify(a.body))

    // An invalid file is refused by every worker, answered as one 400 naming the problem; both keep serving.
    writeFileSync(configFile, configText(['added-by-api', 'added-by-sighup'], true))
    const bad = await fetch(`${gw.adminUrl}/admin/config/reload`, { method: 'POST', headers: admin })
    assert.equal(bad.status, 400)
    assert.match(((await bad.json()) as { error: { message: string } }).error.message, /unknown target "no-such-backend"/)
    const still = await untilBothWorkers(() => post(gw.url, '/v1/chat/completions', body('added-by-sighup')))
    for (const a of still) assert.equal(a.status, 200)
    writeFileSync(configFile, configText(['added-by-api', 'added-by-sighup']))
  })

  it('a crashed worker is restarted in its slot, takes its journal over and serves the current configuration', { timeout: 120_000 }, async () => {
    const victim = pids[1]!
    process.kill(victim, 'SIGKILL')
    const m = await waitOutput(gw, /worker 1 ready \(pid (\d+)\)/)
    const fresh = Number(m[1])
    assert.notEqual(fresh, victim)
    assert.match(gw.output(), new RegExp(`worker 1 \\(pid ${victim}\\) exited \\(signal SIGKILL\\); restarting in \\d+ ms`))
    const v = await adminGet(gw, '/admin/workers')
    assert.deepEqual(v.workers.map((w: { pid: number }) => w.pid), [pids[0], fresh])
    assert.deepEqual(v.workers.map((w: { restarts: number }) => w.restarts), [0, 1])
    assert.equal(JSON.parse(readFileSync(join(dir, 'journal', 'ledger-w1.lock'), 'utf8')).pid, fresh)
    // It read the file as it is now: the models added by the reloads are served by the restarted worker too.
    const answers = await untilBothWorkers(() => post(gw.url, '/v1/chat/completions', { model: 'added-by-sighup', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 }))
    for (const a of answers) assert.equal(a.status, 200)
    pids = [pids[0]!, fresh]
  })

  it('SIGTERM to the primary drains every worker: streams in flight on both finish, then all exit 0', { timeout: 120_000 }, async () => {
    // Streams of 16 tokens at 10 tokens/s: ~1.6 s each, opened one connection each until both workers hold one.
    const streams: Array<{ worker: string; text: Promise<string> }> = []
    for (let i = 0; i < 12 && new Set(streams.map((s) => s.worker)).size < 2; i++) {
      streams.push(await openStream(gw.url))
    }
    assert.deepEqual(new Set(streams.map((s) => s.worker)), new Set(['0', '1']))
    gw.child.kill('SIGTERM')
    const texts = await Promise.all(streams.map((s) => s.text))
    for (const t of texts) {
      assert.ok(t.trimEnd().endsWith('data: [DONE]'), `stream ended early: ${t.slice(-200)}`)
      const content = t.split('\n').filter((l) => l.startsWith('data: {')).map((l) => JSON.parse(l.slice(6)).choices?.[0]?.delta?.content ?? '').join('')
      assert.ok(content.length > 0)
    }
    assert.equal(await gw.exited, 0)
    assert.match(gw.output(), /SIGTERM: every worker finishes its requests in flight, then stops/)
    assert.match(gw.output(), /all workers stopped/)
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} is gone`)
  })
})

/** Opens a streamed chat completion on its own connection; resolves once its first bytes arrived. */
function openStream(base: string): Promise<{ worker: string; text: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${base}/v1/chat/completions`, {
      method: 'POST', agent: false, headers: { authorization: `Bearer ${TEST_KEY}`, 'content-type': 'application/json' },
    }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`stream answered ${res.statusCode}`))
      let text = ''
      res.setEncoding('utf8')
      const done = new Promise<string>((ok, bad) => { res.on('end', () => ok(text)); res.on('error', bad) })
      res.once('data', (d) => {
        text += d
        res.on('data', (more) => { text += more })
        resolve({ worker: String(res.headers['x-sluice-worker']), text: done })
      })
    })
    req.on('error', reject)
    req.end(JSON.stringify({ model: 'slow-stream', stream: true, messages: [{ role: 'user', content: 'Say hello.' }] }))
  })
}

describe('listen.workers with per-process state is refused', () => {
  const run = (args: string[], cwd = process.cwd()) => new Promise<{ code: number | null; out: string }>((resolve) => {
    const child = spawn(process.execPath, [join(process.cwd(), 'bin/sluice.js'), ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d) => { out += d })
    child.stderr.on('data', (d) => { out += d })
    child.on('exit', (code) => resolve({ code, out }))
  })
  const file = (name: string, text: string) => { const p = join(dir, name); writeFileSync(p, text); return p }
  const base = `
admin: { token: ${ADMIN_TOKEN} }
backends: [ { id: m, type: mock } ]
models: [ { name: gpt-4o-mini, target: m } ]
`

  it('sluice check: workers: 2 with store: memory fails naming the store and the fix; workers: 1 passes', { timeout: 120_000 }, async () => {
    const bad = await run(['check', '--config', file('mem2.yaml', `listen: { workers: 2 }\nstore: { type: memory }\n${base}`)])
    assert.equal(bad.code, 1)
    assert.match(bad.out, /store.*listen\.workers: 2 runs 2 processes.*store: memory.*admit 2 times its budget.*store: \{ type: redis/)
    const one = await run(['check', '--config', file('mem1.yaml', `listen: { workers: 1 }\nstore: { type: memory }\n${base}`)])
    assert.equal(one.code, 0, one.out)
    const redis = await run(['check', '--config', file('redis2.yaml', `listen: { workers: 2 }\nstore: { type: redis }\n${base}`)])
    assert.equal(redis.code, 0, redis.out)
  })

  it('a memory cache and an in-memory ledger are refused with workers; the shared forms pass', { timeout: 120_000 }, async () => {
    const bad = await run(['check', '--config', file('caches.yaml', `listen: { workers: 3 }\nstore: { type: redis }\nledger: { type: sqlite, path: ":memory:" }\n${base}policies:\n  - cache: { ttl: 60s }\n`)])
    assert.equal(bad.code, 1)
    assert.match(bad.out, /ledger\.path.*in-memory SQLite ledger/)
    assert.match(bad.out, /policies\[0\]\.cache\.store.*1\/3 of the hits.*store: redis/)
    // Without a ledger, stored Responses conversations and file owners would live in each worker.
    const none = await run(['check', '--config', file('ledger-none.yaml', `listen: { workers: 3 }\nstore: { type: redis }\nledger: { type: none }\n${base}`)])
    assert.equal(none.code, 1)
    assert.match(none.out, /ledger\.type.*ledger: none.*Responses conversations.*files and batches/)
    const good = await run(['check', '--config', file('caches-ok.yaml', `listen: { workers: 3 }\nstore: { type: redis }\n${base}policies:\n  - cache: { ttl: 60s, store: redis }\n`)])
    assert.equal(good.code, 0, good.out)
  })

  it('sluice start --workers 2 on the memory store exits 1 before listening', { timeout: 120_000 }, async () => {
    const r = await run(['start', '--workers', '2', '--config', file('start-mem.yaml', `listen: { host: 127.0.0.1, port: 0 }\nstore: { type: memory }\n${base}`)])
    assert.equal(r.code, 1)
    assert.match(r.out, /cannot run with --workers 2/)
    assert.match(r.out, /store: memory keeps limits, budgets, breakers and caches inside each process/)
    assert.doesNotMatch(r.out, /listening/)
    const bad = await run(['start', '--workers', 'many', '--config', join(dir, 'start-mem.yaml')])
    assert.equal(bad.code, 1)
    assert.match(bad.out, /--workers takes a number/)
  })
})

describe('a cluster whose workers cannot start', { skip: !redisUp }, () => {
  it('stops with exit 1 and says which worker failed (the port is taken)', { timeout: 120_000 }, async () => {
    const { createServer } = await import('node:net')
    const squatter = createServer()
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', () => r()))
    const port = (squatter.address() as { port: number }).port
    try {
      const file = join(dir, 'taken.yaml')
      writeFileSync(file, configText().replace('port: 0, workers: 2', `port: ${port}, workers: 2`))
      const child = spawn(process.execPath, ['bin/sluice.js', 'start', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] })
      let out = ''
      child.stdout.on('data', (d) => { out += d })
      child.stderr.on('data', (d) => { out += d })
      const code = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)))
      assert.equal(code, 1, out)
      assert.match(out, /worker [01] exited during start-up \(code 1\); stopping/)
      assert.doesNotMatch(out, /sluice listening on/)
    } finally {
      squatter.close()
    }
  })
})
